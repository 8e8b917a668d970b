/**
 * `client.stream()` against a real server on both backends: rows and batches, fields and final
 * stats, cancellation by break / throw / AbortSignal / deadline leaving nothing open on the server,
 * a million rows in bounded memory, a failure in the middle of a result, streams inside a
 * transaction, and gzip compression.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  CancelledError,
  createClient,
  type HeliosDBClient,
  HeliosDBError,
  QueryError,
  ResultStream,
  resolveConfig,
  type StreamStats,
  TimeoutError,
} from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { rejects } from './helpers/assert-error.js';
import { startTestServer, type TestServer, waitFor } from './helpers/server.js';

/** Reads `stats` without the narrowing of an earlier assertion. */
function statsOf(stream: ResultStream<unknown>): StreamStats | undefined {
  return stream.stats;
}

describeEachBackend('client streams', (backend) => {
  let ts: TestServer;
  let client: HeliosDBClient;
  const app = `client-stream-${randomBytes(4).toString('hex')}`;
  const t = `cs_${randomBytes(4).toString('hex')}`;

  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
    client = createClient({ url: ts.server.grpcUrl, minConnections: 2, applicationName: app });
    await client.execute(`CREATE TABLE ${t} (id int PRIMARY KEY, name text)`);
    await client.execute(`INSERT INTO ${t} SELECT g, 'n' || g FROM generate_series(1, 500) g`);
  });

  after(async () => {
    await client?.execute(`DROP TABLE IF EXISTS ${t}`).catch(() => {});
    await client?.close();
    await ts?.close();
  });

  /** Nothing of this test's streams is left on the server or in the client. */
  async function assertNothingOpen(what: string): Promise<void> {
    const settled = await waitFor(() => {
      const p = ts.server.poolStats();
      return (
        p.idle === p.total &&
        ts.server.openTransactions() === 0 &&
        client.stats().openStreams === 0 &&
        client.pool.getStats().inFlight === 0
      );
    }, 5000);
    assert.ok(
      settled,
      `${what}: server pool ${JSON.stringify(ts.server.poolStats())}, open transactions ${ts.server.openTransactions()}, client ${JSON.stringify(client.stats())}, in flight ${client.pool.getStats().inFlight}`,
    );
    if (ts.admin) {
      // No session of ours is still running the stream's query or sitting inside its transaction.
      const busy = async () =>
        (
          await ts.admin!.query(
            `SELECT state, query FROM pg_stat_activity WHERE application_name = $1 AND (state = 'active' OR state LIKE 'idle in transaction%')`,
            [app],
          )
        ).rows;
      assert.ok(
        await waitFor(async () => (await busy()).length === 0, 5000),
        `${what}: sessions still busy: ${JSON.stringify(await busy())}`,
      );
    }
    // The connection works for the next statement.
    assert.equal((await client.queryOne<{ n: number }>('SELECT 1::int AS n')).n, 1);
  }

  test('rows as objects, fields, and final stats after the end', async () => {
    const stream = client.stream<{ id: number; name: string }>(`SELECT id, name FROM ${t} WHERE id <= $1 ORDER BY id`, [300], {
      batchRows: 64,
    });
    assert.ok(stream instanceof ResultStream);
    assert.equal(stream.stats, undefined, 'no stats before the end');
    const fields = await stream.fields;
    assert.deepEqual(
      fields.map((f) => [f.name, f.type]),
      [
        ['id', 'int4'],
        ['name', 'text'],
      ],
    );
    const ids: number[] = [];
    for await (const row of stream) {
      ids.push(row.id);
      assert.equal(row.name, `n${row.id}`);
    }
    assert.deepEqual(
      ids,
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
    const stats = statsOf(stream);
    assert.ok(stats, 'stats after the end');
    assert.equal(stats.command, 'SELECT');
    assert.equal(stats.rowCount, 300);
    assert.ok(stats.executionTimeMs >= 0);
    assert.equal(stream.rowCount, 300);
    assert.ok(stream.finished);
  });

  test('array rows and batches()', async () => {
    const stream = client.stream<[number, string]>(`SELECT id, name FROM ${t} ORDER BY id`, [], { rowMode: 'array', batchRows: 100 });
    const sizes: number[] = [];
    let first: [number, string] | undefined;
    for await (const batch of stream.batches()) {
      sizes.push(batch.length);
      first ??= batch[0];
    }
    assert.deepEqual(first, [1, 'n1']);
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      500,
    );
    assert.ok(sizes.length >= 5, `several batches (${sizes.join(',')})`);
    assert.ok(
      sizes.every((n) => n <= 100),
      `batchRows is honoured (${sizes.join(',')})`,
    );
    assert.equal(stream.stats?.rowCount, 500);
  });

  test('a statement without rows and an empty result', async () => {
    const empty = client.stream(`SELECT id FROM ${t} WHERE id < 0`);
    assert.deepEqual(await empty.toArray(), []);
    assert.equal(empty.stats?.rowCount, 0);
    assert.deepEqual(
      (await empty.fields).map((f) => f.name),
      ['id'],
    );
  });

  test('a stream is read once', async () => {
    const stream = client.stream('SELECT 1 AS n');
    assert.equal((await stream.toArray()).length, 1);
    const err = await rejects(stream.toArray(), HeliosDBError);
    assert.equal(err.code, 'STREAM_CONSUMED');
  });

  test('breaking out of the loop early cancels the query and frees the server connection', async () => {
    const stream = client.stream<{ g: number }>('SELECT g FROM generate_series(1, 5000000) g', [], { batchRows: 500 });
    let n = 0;
    for await (const row of stream) {
      n++;
      assert.equal(row.g, n);
      if (n === 2000) break;
    }
    assert.equal(n, 2000);
    assert.ok(stream.finished);
    assert.equal(stream.stats?.complete, false, 'a stream left early says it is incomplete');
    assert.equal(stream.stats?.rowCount, stream.rowCount);
    await assertNothingOpen('after break');
  });

  test('a throw inside the loop cancels the query', async () => {
    const stream = client.stream<{ g: number }>('SELECT g FROM generate_series(1, 5000000) g', [], { batchRows: 500 });
    await assert.rejects(
      (async () => {
        for await (const row of stream) if (row.g === 1000) throw new Error('boom');
      })(),
      /boom/,
    );
    await assertNothingOpen('after throw');
  });

  test('aborting the signal mid-stream rejects the loop with CancelledError', async () => {
    const ac = new AbortController();
    const stream = client.stream<{ g: number }>('SELECT g FROM generate_series(1, 5000000) g', [], { signal: ac.signal, batchRows: 500 });
    let n = 0;
    const err = await rejects(
      (async () => {
        for await (const _ of stream) if (++n === 1500) ac.abort();
      })(),
      CancelledError,
    );
    assert.ok(n >= 1500, 'rows before the abort were delivered');
    assert.equal(stream.error, err);
    await assertNothingOpen('after abort');
  });

  test('cancel() and await using end a stream that was started but not read', async () => {
    const stream = client.stream('SELECT g FROM generate_series(1, 5000000) g');
    await stream.fields;
    await stream.cancel();
    assert.ok(stream.finished);
    {
      await using s2 = client.stream('SELECT g FROM generate_series(1, 5000000) g');
      await s2.fields;
    }
    await assertNothingOpen('after cancel()/dispose');
  });

  test('a deadline (timeoutMs) stops a slow stream with TimeoutError', async () => {
    const stream = client.stream<{ g: number }>('SELECT g, pg_sleep(0.05) FROM generate_series(1, 40) g', [], {
      timeoutMs: 300,
      batchRows: 1,
    });
    let n = 0;
    await rejects(
      (async () => {
        for await (const _ of stream) n++;
      })(),
      TimeoutError,
    );
    assert.ok(n < 40, `the stream stopped early (${n} rows)`);
    await assertNothingOpen('after deadline');
  });

  test('a failure in the middle of the result comes after the rows already delivered, as a typed error', async () => {
    const stream = client.stream<{ v: number }>(
      'SELECT CASE WHEN g < 3000 THEN g ELSE 1 / (g - g) END AS v FROM generate_series(1, 5000) g',
      [],
      {
        batchRows: 100,
      },
    );
    const seen: number[] = [];
    const err = await rejects(
      (async () => {
        for await (const row of stream) seen.push(row.v);
      })(),
      QueryError,
    );
    assert.equal(err.sqlstate, '22012', 'division_by_zero');
    assert.ok(seen.length > 0, 'rows came before the error');
    assert.ok(seen.length < 3000);
    assert.deepEqual(
      seen,
      Array.from({ length: seen.length }, (_, i) => i + 1),
      'the delivered rows are the first ones, in order, once',
    );
    assert.equal(stream.error, err);
    await assertNothingOpen('after a mid-stream failure');
  });

  test('a failure before the first row rejects fields and the loop', async () => {
    const stream = client.stream(`SELECT nope FROM ${t}`);
    const err = await rejects(stream.fields, QueryError);
    assert.equal(err.sqlstate, '42703');
    await rejects(stream.toArray(), QueryError);
  });

  test('one million rows arrive complete with bounded client memory', async () => {
    const heapBefore = process.memoryUsage().heapUsed;
    let peak = heapBefore;
    let n = 0;
    let sum = 0;
    // Keeping every row would take about 280 MB of heap; streaming keeps a few batches.
    const stream = client.stream<{ g: number; pad: string }>("SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 1000000) g");
    for await (const row of stream) {
      n++;
      sum += row.g;
      if (n % 50_000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed);
    }
    assert.equal(n, 1_000_000);
    assert.equal(sum, 500_000_500_000);
    assert.equal(stream.stats?.rowCount, 1_000_000);
    const growthMb = (peak - heapBefore) / 1e6;
    assert.ok(growthMb < 150, `heap grew ${growthMb.toFixed(0)} MB while streaming (the server shares this process on PGlite)`);
  });

  test('streams inside a transaction see its writes; the transaction goes on after a cancelled stream', async () => {
    const tx = await client.begin();
    try {
      await tx.execute(`INSERT INTO ${t} VALUES (10001, 'tx')`);
      const rows = await tx.stream<{ id: number }>(`SELECT id FROM ${t} WHERE id > 10000`).toArray();
      assert.deepEqual(rows, [{ id: 10001 }]);
      let n = 0;
      for await (const _ of tx.stream('SELECT g FROM generate_series(1, 1000000) g', [], { batchRows: 200 })) if (++n === 500) break;
      assert.equal((await tx.queryOne<{ n: bigint }>(`SELECT count(*) AS n FROM ${t} WHERE id > 10000`)).n, 1n);
    } finally {
      await tx.rollback();
    }
    assert.equal((await client.queryOne<{ n: bigint }>(`SELECT count(*) AS n FROM ${t} WHERE id > 10000`)).n, 0n);
    await assertNothingOpen('after a transaction stream');
  });

  test('commit and rollback cancel the transaction streams still open instead of waiting for them', async () => {
    const tx = await client.begin();
    await tx.execute(`INSERT INTO ${t} VALUES (20001, 'committed')`);
    let n = 0;
    const stream = tx.stream('SELECT g FROM generate_series(1, 1000000) g', [], { batchRows: 100 });
    for await (const _ of stream) {
      if (++n === 300) {
        await tx.commit(); // would wait forever for the unread stream if it were not cancelled
        break;
      }
    }
    assert.equal(tx.state, 'committed');
    assert.ok(stream.finished);
    const started = await client.begin();
    const open = started.stream('SELECT g FROM generate_series(1, 1000000) g');
    await open.fields;
    await started.rollback();
    assert.ok(open.finished);
    assert.equal((await client.queryOne<{ name: string }>(`SELECT name FROM ${t} WHERE id = 20001`)).name, 'committed');
    await client.execute(`DELETE FROM ${t} WHERE id = 20001`);
    await assertNothingOpen('after ending transactions with open streams');
  });

  test('compression: gzip clients stream and send large parameters', async () => {
    const gz = createClient({ url: ts.server.grpcUrl, minConnections: 1, compression: 'gzip' });
    try {
      assert.equal(gz.config.compression, 'gzip');
      const big = 'y'.repeat(2_000_000);
      assert.equal((await gz.queryOne<{ n: number }>('SELECT length($1::text) AS n', [big])).n, 2_000_000);
      let n = 0;
      for await (const _ of gz.stream("SELECT g, repeat('z', 50) FROM generate_series(1, 20000) g")) n++;
      assert.equal(n, 20000);
    } finally {
      await gz.close();
    }
    assert.equal(resolveConfig({}).compression, 'none', "default 'none'");
  });
});
