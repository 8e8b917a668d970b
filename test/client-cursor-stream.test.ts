/**
 * `WHERE CURRENT OF` through a cursor, as PostgreSQL defines it (the last row fetched, no row
 * after a fetch that ran off the end, which the error now explains), and what a stream left
 * early reports: `stats` with the rows received and `complete: false`, counted in the metrics as
 * cancelled by the caller, not as an error.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CancelledError, createClient, type HeliosDBClient, QueryError, type StreamStats, TimeoutError } from '@heliosdb/client';
import { rejects } from './helpers/assert-error.js';
import { describeEachBackend } from './helpers/backends.js';
import { startTestServer, type TestServer, uniqueName } from './helpers/server.js';

describeEachBackend('WHERE CURRENT OF through a cursor', (backend) => {
  let ts: TestServer;
  let client: HeliosDBClient;
  const orders = uniqueName('orders');

  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
    client = createClient({ url: ts.server.grpcUrl, minConnections: 1 });
    await client.execute(`CREATE TABLE ${orders} (id int PRIMARY KEY, checked bool NOT NULL DEFAULT false)`);
  });

  after(async () => {
    await client?.execute(`DROP TABLE IF EXISTS ${orders}`).catch(() => {});
    await client?.close();
    await ts?.close();
  });

  const reset = async (n: number) => {
    await client.execute(`TRUNCATE ${orders}`);
    await client.execute(`INSERT INTO ${orders} (id) SELECT g FROM generate_series(1, ${n}) g`);
  };
  const checked = async () =>
    (await client.query<{ id: number }>(`SELECT id FROM ${orders} WHERE checked ORDER BY id`)).rows.map((r) => r.id);

  test("the README's example with fewer rows than the page: the fetch runs off the end, and the 24000 error says why and what to do", async () => {
    await reset(3);
    const e = await rejects(
      client.transaction(async (tx) => {
        await using cursor = await tx.cursor(`SELECT * FROM ${orders} ORDER BY id FOR UPDATE`);
        for (const _order of await cursor.fetch(100))
          await tx.execute(`UPDATE ${orders} SET checked = true WHERE CURRENT OF ${cursor.name}`);
      }),
      QueryError,
    );
    assert.equal(e.sqlstate, '24000');
    assert.match(
      e.message,
      /is not positioned on a row: a FETCH leaves the cursor on the last row it returned, or after the last row when it returned fewer rows/,
    );
    assert.match(e.message, /fetch one row at a time \(cursor\.fetch\(1\), or fetchSize: 1\)/);
    assert.deepEqual(await checked(), [], 'the transaction rolled back');
  });

  test('after a full page, CURRENT OF names the last row fetched: the README example updates one row per page, as PostgreSQL does', async () => {
    await reset(250);
    await client.transaction(async (tx) => {
      await using cursor = await tx.cursor<{ id: number }>(`SELECT * FROM ${orders} ORDER BY id FOR UPDATE`);
      const page = await cursor.fetch(100);
      assert.equal(page.length, 100);
      for (const _order of page) await tx.execute(`UPDATE ${orders} SET checked = true WHERE CURRENT OF ${cursor.name}`);
    });
    assert.deepEqual(await checked(), [100]);
  });

  test('one row at a time (fetch(1), or for await with fetchSize: 1) updates every row through the cursor; pages update by key', async () => {
    await reset(7);
    await client.transaction(async (tx) => {
      await using cursor = await tx.cursor(`SELECT * FROM ${orders} WHERE id <= 3 ORDER BY id FOR UPDATE`);
      for (let rows; (rows = await cursor.fetch(1)).length > 0; )
        await tx.execute(`UPDATE ${orders} SET checked = true WHERE CURRENT OF ${cursor.name}`);
    });
    assert.deepEqual(await checked(), [1, 2, 3]);
    await client.transaction(async (tx) => {
      await using cursor = await tx.cursor(`SELECT * FROM ${orders} WHERE id BETWEEN 4 AND 5 ORDER BY id FOR UPDATE`, [], { fetchSize: 1 });
      for await (const _order of cursor) await tx.execute(`UPDATE ${orders} SET checked = true WHERE CURRENT OF ${cursor.name}`);
    });
    assert.deepEqual(await checked(), [1, 2, 3, 4, 5]);
    await client.execute(`UPDATE ${orders} SET checked = false`);
    await client.transaction(async (tx) => {
      await using page = await tx.cursor<{ id: number }>(`SELECT id FROM ${orders} ORDER BY id FOR UPDATE`);
      for (let rows; (rows = await page.fetch(3)).length > 0; ) {
        await tx.execute(`UPDATE ${orders} SET checked = true WHERE id = ANY($1)`, [rows.map((r) => r.id)]);
      }
    });
    assert.deepEqual(await checked(), [1, 2, 3, 4, 5, 6, 7]);
  });
});

describeEachBackend('a stream left early', (backend) => {
  let ts: TestServer;
  const clients: HeliosDBClient[] = [];

  before(async () => {
    ts = await startTestServer(backend);
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await ts?.close();
  });

  for (const protocol of ['grpc', 'http'] as const) {
    const fresh = () => {
      const c = createClient({ url: protocol === 'grpc' ? ts.server.grpcUrl : ts.server.httpUrl!, minConnections: 1 });
      clients.push(c);
      return c;
    };
    const statsOf = (s: { stats: StreamStats | undefined }) => s.stats;

    test(`${protocol}: after break, stats hold the rows received with complete: false, and the metrics count a cancellation, not an error`, async () => {
      const client = fresh();
      const stream = client.stream<{ g: number }>('SELECT g FROM generate_series(1, 100000) g', [], { batchRows: 100 });
      let n = 0;
      for await (const _row of stream) if (++n === 250) break;
      const stats = statsOf(stream);
      assert.ok(stats, 'stats are set after break');
      assert.equal(stats.complete, false);
      assert.equal(stats.rowCount, 250 + ((100 - (250 % 100)) % 100), 'the rows of the batches received');
      assert.equal(stats.command, '');
      assert.ok(stats.roundTripMs > 0);
      const m = client.metrics.snapshot().StreamQuery;
      assert.deepEqual({ count: m.count, errors: m.errors, cancelled: m.cancelled }, { count: 1, errors: 0, cancelled: 1 });

      const whole = client.stream('SELECT g FROM generate_series(1, 300) g', [], { batchRows: 100 });
      assert.equal((await whole.toArray()).length, 300);
      assert.deepEqual(
        { ...statsOf(whole), executionTimeMs: 0, roundTripMs: 0 },
        { command: 'SELECT', rowCount: 300, executionTimeMs: 0, roundTripMs: 0, complete: true },
      );
      const after = client.metrics.snapshot().StreamQuery;
      assert.deepEqual({ count: after.count, errors: after.errors, cancelled: after.cancelled }, { count: 2, errors: 0, cancelled: 1 });
    });

    test(`${protocol}: an aborted signal is a cancellation; a failure and a deadline are errors; stats say how far each got`, async () => {
      const client = fresh();
      const ac = new AbortController();
      const aborted = client.stream('SELECT g FROM generate_series(1, 100000) g', [], { batchRows: 100, signal: ac.signal });
      await rejects(
        (async () => {
          for await (const _ of aborted) ac.abort();
        })(),
        CancelledError,
      );
      assert.equal(statsOf(aborted)?.complete, false);
      assert.equal(statsOf(aborted)?.rowCount, 100);

      const failing = client.stream<{ q: number }>('SELECT 1 / (g - 150) AS q FROM generate_series(1, 1000) g', [], { batchRows: 50 });
      const received: unknown[] = [];
      await rejects(
        (async () => {
          for await (const r of failing) received.push(r);
        })(),
        QueryError,
      );
      assert.equal(statsOf(failing)?.complete, false);
      assert.equal(statsOf(failing)?.rowCount, received.length);

      const slow = client.stream('SELECT pg_sleep(0.2)', [], { timeoutMs: 5 });
      await rejects(slow.toArray(), TimeoutError);
      assert.equal(statsOf(slow)?.complete, false);

      const unstarted = client.stream('SELECT 1');
      await unstarted.cancel();
      assert.deepEqual(statsOf(unstarted), { command: '', rowCount: 0, executionTimeMs: 0, roundTripMs: 0, complete: false });

      const m = client.metrics.snapshot().StreamQuery;
      assert.deepEqual({ count: m.count, errors: m.errors, cancelled: m.cancelled }, { count: 3, errors: 2, cancelled: 1 });
    });
  }
});
