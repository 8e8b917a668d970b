/**
 * The first call on a server that has done nothing yet, on both backends: a first `commit()`
 * once hung 30 s on a fresh embedded server because nothing had run before it, and suites that
 * create tables first could not see it. Every test here starts a brand-new server (on
 * PostgreSQL in a brand-new database: test/helpers/fresh.ts) whose very first call is the one
 * under test, within a tight limit so that a hang fails fast:
 *
 * - the first transaction (begin, query, commit), the first stream (1000 rows), the first query
 *   and the first keyed auto-commit write, over grpc:// and http:// (Connect); the first
 *   transaction over the Connect JSON and gRPC-Web protocols too;
 * - the same on a server restarted on a database an earlier server used (its schema there);
 * - a burst of first calls of every kind at once.
 *
 * The first use of every other feature: fresh-server-features.test.ts. Writes are checked in the
 * database (rows and idempotency records counted outside the client under test).
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { after, test, type TestContext } from 'node:test';
import type { ConnectionConfig, HeliosDBClient } from '@heliosdb/client';
import { describeEachBackend, type TestBackend } from './helpers/backends.js';
import { freshServer, freshTestOptions, type FreshTransport, keyRecords, methodsOf, removeFreshScratch, within } from './helpers/fresh.js';

after(() => removeFreshScratch());

/** The first transaction: begin, a query, DDL and rows, commit (its key recorded with it). */
async function firstTransaction(
  t: TestContext,
  backend: TestBackend,
  transport: FreshTransport,
  config: ConnectionConfig = {},
): Promise<void> {
  const f = await freshServer(t, backend);
  t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
  const { client, calls } = f.client(transport, config);
  const label = `${config.protocol ?? transport}: begin, query, commit`;
  await within(t, label, async () => {
    const tx = await client.begin();
    assert.equal((await tx.queryOne<{ n: number }>('SELECT 1 AS n')).n, 1);
    await tx.execute('CREATE TABLE fresh_tx (id int PRIMARY KEY, v text)');
    await tx.execute("INSERT INTO fresh_tx VALUES (1, 'a'), (2, 'b')");
    await tx.commit();
  });
  assert.equal(methodsOf(calls)[0], 'BeginTransaction', 'the transaction was the first call');
  const key = calls.find((c) => c.method === 'Commit')?.idempotencyKey;
  assert.ok(key, 'the commit carried an idempotency key');
  assert.equal(await f.count('fresh_tx'), 2);
  assert.equal(await keyRecords(f, key), 1, "the commit's key was recorded with it");
}

/** The first stream: 1000 rows of generate_series. */
async function firstStream(t: TestContext, backend: TestBackend, transport: FreshTransport): Promise<void> {
  const f = await freshServer(t, backend);
  t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
  const { client, calls } = f.client(transport);
  const stream = client.stream<{ n: number; pad: string }>("SELECT g::int4 AS n, repeat('x', 100) AS pad FROM generate_series(1, 1000) g");
  const { rows, sum } = await within(t, `${transport}: stream of 1000 rows`, async () => {
    let rows = 0;
    let sum = 0;
    for await (const row of stream) {
      rows++;
      sum += row.n;
      assert.equal(row.pad.length, 100);
    }
    return { rows, sum };
  });
  assert.deepEqual(methodsOf(calls), ['StreamQuery']);
  assert.equal(rows, 1000);
  assert.equal(sum, 500_500);
  assert.equal(stream.stats?.complete, true);
  assert.equal(stream.stats?.rowCount, 1000);
}

/** The first query (auto-commit, parameters). */
async function firstQuery(t: TestContext, backend: TestBackend, transport: FreshTransport): Promise<void> {
  const f = await freshServer(t, backend);
  t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
  const { client, calls } = f.client(transport);
  const r = await within(t, `${transport}: query`, () =>
    client.query<{ n: number; s: string }>('SELECT $1::int4 + 1 AS n, $2::text AS s', [41, 'fresh']),
  );
  assert.deepEqual(methodsOf(calls), ['Query']);
  assert.deepEqual(r.rows, [{ n: 42, s: 'fresh' }]);
  assert.equal(r.command, 'SELECT');
}

/** The first write: a keyed INSERT through execute, into a table made before the server started. */
async function firstKeyedWrite(t: TestContext, backend: TestBackend, transport: FreshTransport): Promise<void> {
  const f = await freshServer(t, backend, { withTables: true });
  t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
  const { client, calls } = f.client(transport);
  const r = await within(t, `${transport}: keyed INSERT`, () =>
    client.execute('INSERT INTO fresh_keyed (id, v) VALUES ($1, $2), ($3, $4)', [1, 'a', 2, 'b']),
  );
  assert.equal(r.rowCount, 2);
  assert.deepEqual(methodsOf(calls), ['Execute'], 'the write was the first call, sent once');
  const key = calls[0]?.idempotencyKey;
  assert.ok(key, 'the client sent an idempotency key');
  assert.equal(await f.count('fresh_keyed'), 2);
  assert.equal(await keyRecords(f, key), 1, 'the key was recorded with the write');
}

describeEachBackend('a fresh server: its first call', (backend) => {
  for (const transport of ['grpc', 'http'] as const) {
    test(`${transport}: the first transaction (begin, query, commit)`, freshTestOptions, (t) => firstTransaction(t, backend, transport));
    test(`${transport}: the first stream (1000 rows)`, freshTestOptions, (t) => firstStream(t, backend, transport));
    test(`${transport}: the first query`, freshTestOptions, (t) => firstQuery(t, backend, transport));
    test(`${transport}: the first keyed write (INSERT through execute)`, freshTestOptions, (t) => firstKeyedWrite(t, backend, transport));
  }
  for (const protocol of ['connect-json', 'grpc-web'] as const) {
    test(`http (${protocol}): the first transaction (begin, query, commit)`, freshTestOptions, (t) =>
      firstTransaction(t, backend, 'http', { protocol }),
    );
  }

  /**
   * What an earlier server leaves on the database: its schema, a table, a keyed row. On PGlite
   * this runs on an empty data directory, so its own first calls are timed as well.
   */
  const usedBefore = (t: TestContext) => async (c: HeliosDBClient) => {
    await within(t, 'the earlier server (empty database): keyed DDL, keyed INSERT', async () => {
      await c.execute('CREATE TABLE fresh_again (id int PRIMARY KEY, v text)');
      await c.execute("INSERT INTO fresh_again VALUES (1, 'first server')");
    });
  };

  test('grpc: a server restarted on a used database: the first transaction', freshTestOptions, async (t) => {
    const f = await freshServer(t, backend, { previousServer: usedBefore(t) });
    t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
    const { client, calls } = f.client('grpc');
    await within(t, 'restarted: begin, insert, commit', async () => {
      const tx = await client.begin();
      await tx.execute("INSERT INTO fresh_again VALUES (2, 'second server')");
      assert.equal((await tx.queryOne<{ n: number }>('SELECT count(*)::int AS n FROM fresh_again')).n, 2);
      await tx.commit();
    });
    assert.equal(methodsOf(calls)[0], 'BeginTransaction');
    assert.equal(await f.count('fresh_again'), 2);
    assert.equal(await keyRecords(f, calls.find((c) => c.method === 'Commit')?.idempotencyKey ?? '?'), 1);
  });

  test('grpc: a server restarted on a used database: the first keyed write', freshTestOptions, async (t) => {
    const f = await freshServer(t, backend, { previousServer: usedBefore(t) });
    t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
    const { client, calls } = f.client('grpc');
    const r = await within(t, 'restarted: keyed INSERT', () =>
      client.execute('INSERT INTO fresh_again VALUES ($1, $2)', [2, 'second server']),
    );
    assert.equal(r.rowCount, 1);
    assert.deepEqual(methodsOf(calls), ['Execute']);
    assert.equal(await f.count('fresh_again'), 2);
    assert.equal(await keyRecords(f, calls[0]?.idempotencyKey ?? '?'), 1);
  });

  test('grpc: a burst of first calls at once (transactions, queries, streams, keyed writes)', freshTestOptions, async (t) => {
    const f = await freshServer(t, backend, { withTables: true });
    t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
    const { client, calls } = f.client('grpc');
    const n = 6;
    const results = await within(t, `burst of ${4 * n} first calls`, () =>
      Promise.all([
        ...Array.from({ length: n }, (_, i) =>
          client.transaction(async (tx) => {
            await tx.execute(`INSERT INTO fresh_many VALUES ($1, 'tx')`, [i]);
            return 'tx';
          }),
        ),
        ...Array.from({ length: n }, (_, i) =>
          client.queryOne<{ n: number }>('SELECT $1::int4 AS n', [i]).then((r) => (r.n === i ? 'query' : 'wrong')),
        ),
        ...Array.from({ length: n }, async () => {
          let rows = 0;
          for await (const _ of client.stream('SELECT g FROM generate_series(1, 1000) g')) rows++;
          return rows === 1000 ? 'stream' : 'short';
        }),
        ...Array.from({ length: n }, (_, i) => client.execute('INSERT INTO fresh_keyed VALUES ($1, $2)', [i, 'keyed']).then(() => 'keyed')),
      ]),
    );
    assert.deepEqual(results.sort(), [
      ...Array(n).fill('keyed'),
      ...Array(n).fill('query'),
      ...Array(n).fill('stream'),
      ...Array(n).fill('tx'),
    ]);
    assert.ok(calls.length >= 4 * n);
    assert.equal(await f.count('fresh_many'), n);
    assert.equal(await f.count('fresh_keyed'), n);
    const keys = calls.flatMap((c) => (c.idempotencyKey ? [c.idempotencyKey] : []));
    assert.equal(keys.length, 2 * n, 'each auto-commit write and each commit carried a key');
    for (const key of keys) assert.equal(await keyRecords(f, key), 1, `key ${key} recorded once`);
  });
});
