/**
 * The client's query cache against a real server: a hit (no call reaches the server), expiry at
 * the TTL, invalidation by the client's own writes (auto-commit, in a transaction at commit, DDL),
 * what it cannot see (another client's write), nothing cached or served inside a transaction,
 * the per-client default and opting out, and the memory bound with least-recently-used eviction.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Interceptor } from '@connectrpc/connect';
import { type ConnectionConfig, createClient, type HeliosDBClient } from '@heliosdb/client';
import { cacheKey, principalKey } from '../src/client/cache/cache-key.js';
import { namesIn, tablesWritten } from '../src/client/cache/sql-tables.js';
import { describeEachBackend } from './helpers/backends.js';
import { startTestServer, type TestServer, uniqueName } from './helpers/server.js';

describeEachBackend('query cache', (backend) => {
  let ts: TestServer;
  let other: HeliosDBClient;
  const t = uniqueName('observe_c');
  const u = uniqueName('observe_cu');
  const opened: HeliosDBClient[] = [];
  const sent: string[] = [];
  const countQueries: Interceptor = (next) => (req) => {
    if (req.method.name === 'Query') sent.push((req.message as unknown as { sql: string }).sql);
    return next(req);
  };
  const open = (config: ConnectionConfig = {}) => {
    const c = createClient({ url: ts.server.grpcUrl, minConnections: 1, interceptors: [countQueries], ...config });
    opened.push(c);
    return c;
  };
  const read = `SELECT v FROM ${t} WHERE id = $1`;
  const v = async (c: HeliosDBClient, id: number, options = {}) => (await c.query<{ v: string }>(read, [id], options)).rows[0]?.v;

  before(async () => {
    ts = await startTestServer(backend);
    other = createClient({ url: ts.server.grpcUrl, minConnections: 1, queryCache: false });
    await other.execute(`CREATE TABLE ${t} (id int PRIMARY KEY, v text)`);
    await other.execute(`CREATE TABLE ${u} (id int PRIMARY KEY, v text)`);
    await other.execute(`INSERT INTO ${t} SELECT g, 'v' || g FROM generate_series(1, 200) g`);
  });

  after(async () => {
    await Promise.all(opened.map((c) => c.close()));
    await other?.execute(`DROP TABLE IF EXISTS ${t}, ${u}`).catch(() => {});
    await other?.close();
    await ts?.close();
  });

  test('a hit is served without a call; another client’s write is not seen until the TTL passes', async () => {
    const c = open();
    sent.length = 0;
    assert.equal(await v(c, 1, { cache: { ttlMs: 60_000 } }), 'v1');
    // A write the client cannot see: another client's.
    await other.execute(`UPDATE ${t} SET v = 'changed' WHERE id = 1`);
    assert.equal(await v(c, 1, { cache: { ttlMs: 60_000 } }), 'v1', 'served from the cache');
    assert.deepEqual(sent, [read], 'one call reached the server');
    const s = c.stats();
    assert.equal(s.cacheHits, 1);
    assert.equal(s.cacheMisses, 1);
    assert.equal(s.cacheEntries, 1);
    assert.ok(s.cacheBytes > 0);
    // Other parameters are another entry.
    assert.equal(await v(c, 2, { cache: { ttlMs: 60_000 } }), 'v2');
    assert.equal(c.stats().cacheMisses, 2);
    // Without `cache` the call goes to the server (no client-wide TTL).
    assert.equal(await v(c, 1), 'changed');
    // clearQueryCache(tables) is how an application tells it about writes it learnt of.
    c.clearQueryCache([t.toUpperCase()]);
    assert.equal(await v(c, 1, { cache: { ttlMs: 60_000 } }), 'changed');
    await other.execute(`UPDATE ${t} SET v = 'v1' WHERE id = 1`);
  });

  test('an entry expires at its TTL', async (tc) => {
    const c = open();
    tc.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    try {
      sent.length = 0;
      await v(c, 3, { cache: { ttlMs: 1000 } });
      tc.mock.timers.tick(999);
      await v(c, 3, { cache: { ttlMs: 1000 } });
      assert.equal(sent.length, 1, 'still cached 1 ms before the TTL');
      tc.mock.timers.tick(1);
      await v(c, 3, { cache: { ttlMs: 1000 } });
      assert.equal(sent.length, 2, 'gone at the TTL');
      assert.deepEqual([c.stats().cacheHits, c.stats().cacheMisses], [1, 2]);
    } finally {
      tc.mock.timers.reset();
    }
  });

  test('writes through the client invalidate the entries that read the tables they write', async () => {
    const c = open({ queryCache: { ttlMs: 60_000 } });
    assert.equal(await v(c, 4), 'v4');
    const other = `SELECT count(*)::int AS n FROM ${u}`;
    await c.query(other);
    // A write to another table leaves the entry of t alone.
    await c.execute(`INSERT INTO ${u} VALUES ($1, $2)`, [1, 'x']);
    assert.equal(await v(c, 4), 'v4');
    assert.equal(c.stats().cacheHits, 1);
    assert.equal((await c.query<{ n: number }>(other)).rows[0].n, 1, 'the entry of u was dropped by the insert into u');
    // An auto-commit write to t.
    await c.execute(`UPDATE ${t} SET v = $1 WHERE id = $2`, ['w4', 4]);
    assert.equal(await v(c, 4), 'w4');
    // A write in a transaction: invalidated at the write and again at the commit.
    await c.transaction(async (tx) => {
      await tx.execute(`UPDATE ${t} SET v = $1 WHERE id = $2`, ['x4', 4]);
      // A read outside the transaction caches the committed value (PostgreSQL: the embedded
      // engine's one connection is the transaction's until it ends).
      if (backend.name === 'postgresql') assert.equal(await v(c, 4), 'w4', 'outside the transaction, the committed value');
    });
    assert.equal(await v(c, 4), 'x4', 'the committed write invalidated the entry read during the transaction');
    // A batch and DDL.
    await c.batch([{ sql: `UPDATE ${t} SET v = 'y4' WHERE id = 4` }]);
    assert.equal(await v(c, 4), 'y4');
    await c.query(other);
    await c.execute(`CREATE INDEX ON ${u} (v)`);
    assert.equal(c.stats().cacheEntries, 0, 'DDL may change anything: everything is dropped');
    assert.ok(c.stats().cacheInvalidations >= 4);
    // A query that writes is never cached.
    const entries = c.stats().cacheEntries;
    await c.query(`UPDATE ${t} SET v = 'v4' WHERE id = 4 RETURNING v`);
    assert.equal(c.stats().cacheEntries, entries);
    // Opting out of the client-wide TTL.
    sent.length = 0;
    await v(c, 4, { cache: false });
    await v(c, 4, { cache: false });
    assert.equal(sent.length, 2);
  });

  test('prepared statements, executeMany, reserved sessions and copyFrom invalidate too', async () => {
    const c = open({ queryCache: { ttlMs: 60_000 } });
    const count = `SELECT count(*)::int AS n FROM ${u}`;
    const n = async () => (await c.query<{ n: number }>(count)).rows[0].n;
    const start = await n();
    const p = await c.prepare(`INSERT INTO ${u} VALUES ($1, 'p')`);
    await p.execute([100]);
    assert.equal(await n(), start + 1, 'a prepared statement');
    await c.executeMany(`INSERT INTO ${u} VALUES ($1, 'm')`, [[101], [102]]);
    assert.equal(await n(), start + 3, 'executeMany');
    {
      const session = await c.reserve();
      await session.execute(`INSERT INTO ${u} VALUES (103, 's')`);
      await session.release();
    }
    assert.equal(await n(), start + 4, 'a reserved session');
    await c.copyFrom(`COPY ${u} (id, v) FROM STDIN`, '104\tc\n');
    assert.equal(c.stats().cacheEntries, 0, 'copyFrom drops everything');
    assert.equal(await n(), start + 5);
    await n();
    c.clearQueryCache();
    assert.equal(c.stats().cacheEntries, 0, 'clearQueryCache() drops everything');
    await c.execute(`DELETE FROM ${u} WHERE id >= 100`);
  });

  test('a read that overlaps a write to its table is not served stale afterwards', async () => {
    const c = open({ queryCache: { ttlMs: 60_000 } });
    const slow = `SELECT v, pg_sleep(0.05) IS NULL AS slept FROM ${t} WHERE id = $1`;
    const both = await Promise.all([c.query<{ v: string }>(slow, [9]), c.execute(`UPDATE ${t} SET v = 'o9' WHERE id = 9`)]);
    assert.ok(['v9', 'o9'].includes(both[0].rows[0].v));
    // Whichever ran first, the next read sees the write.
    assert.equal((await c.query<{ v: string }>(slow, [9])).rows[0].v, 'o9');
  });

  test('the cache is per client; a view is read through names the write does not use', async () => {
    const a = open({ queryCache: { ttlMs: 60_000 } });
    const b = open({ queryCache: { ttlMs: 60_000 } });
    await a.query(read, [10]);
    sent.length = 0;
    await b.query(read, [10]);
    assert.equal(sent.length, 1, 'another client has its own cache');
    const view = uniqueName('observe_cv');
    await a.execute(`CREATE VIEW ${view} AS SELECT id, v FROM ${t}`);
    const viaView = `SELECT v FROM ${view} WHERE id = $1`;
    assert.equal((await a.query<{ v: string }>(viaView, [10])).rows[0].v, 'v10');
    await a.execute(`UPDATE ${t} SET v = 'z10' WHERE id = 10`);
    assert.equal((await a.query<{ v: string }>(viaView, [10])).rows[0].v, 'v10', 'stale: the view names no table the write targets');
    assert.equal(await v(a, 10), 'z10');
    await a.execute(`DROP VIEW ${view}`);
    await a.execute(`UPDATE ${t} SET v = 'v10' WHERE id = 10`);
  });

  test('nothing is cached or served inside a transaction', async () => {
    const c = open({ queryCache: { ttlMs: 60_000 } });
    assert.equal(await v(c, 5), 'v5');
    const before = c.stats();
    sent.length = 0;
    await c.transaction(async (tx) => {
      assert.equal((await tx.query<{ v: string }>(read, [5], { cache: { ttlMs: 60_000 } })).rows[0].v, 'v5');
      await tx.execute(`UPDATE ${t} SET v = 'tx5' WHERE id = 5`);
      assert.equal(
        (await tx.query<{ v: string }>(read, [5], { cache: { ttlMs: 60_000 } })).rows[0].v,
        'tx5',
        'the transaction sees its own write',
      );
      assert.equal((await tx.query<{ v: string }>(read, [6])).rows[0].v, 'v6');
      await tx.rollback();
    });
    assert.equal(sent.length, 3, 'every transaction query reached the server');
    const after = c.stats();
    assert.equal(after.cacheHits, before.cacheHits);
    assert.equal(after.cacheMisses, before.cacheMisses);
    assert.ok(after.cacheEntries <= before.cacheEntries, 'nothing stored by the transaction');
    assert.equal(await v(c, 5), 'v5');
    // Nor in a reserved session.
    const session = await c.reserve();
    sent.length = 0;
    await session.query(read, [5], { cache: { ttlMs: 60_000 } });
    await session.query(read, [5], { cache: { ttlMs: 60_000 } });
    await session.release();
    assert.equal(sent.length, 2, 'both session queries reached the server');
  });

  test('the cache stays under maxBytes, dropping the least recently used first', async () => {
    const maxBytes = 20_000;
    const c = open({ queryCache: { ttlMs: 60_000, maxBytes } });
    const wide = `SELECT id, repeat(v, 50) AS big FROM ${t} WHERE id BETWEEN $1 AND $1 + 4`;
    await c.query(wide, [1]);
    const one = c.stats().cacheBytes;
    assert.ok(one > 1000 && one < maxBytes / 4, `one entry takes ${one} bytes`);
    for (let i = 2; i <= 40; i++) {
      await c.query(wide, [i]);
      await c.query(wide, [1]); // kept in use
      assert.ok(c.stats().cacheBytes <= maxBytes, `${c.stats().cacheBytes} <= ${maxBytes}`);
    }
    const s = c.stats();
    assert.ok(s.cacheEvictions > 0, 'entries were evicted');
    assert.ok(s.cacheEntries < 40);
    sent.length = 0;
    await c.query(wide, [1]);
    assert.equal(sent.length, 0, 'the entry used most recently is still there');
    await c.query(wide, [2]);
    assert.equal(sent.length, 1, 'the oldest unused one is gone');
    // A result larger than the bound is never stored.
    const entries = c.stats().cacheEntries;
    await c.query(`SELECT repeat('x', 30000) AS huge`);
    assert.equal(c.stats().cacheEntries, entries + 0);
  });

  test('a result read from the cache is a copy: changing it changes no one else’s', async () => {
    const c = open({ queryCache: { ttlMs: 60_000 } });
    const a = await c.query<{ v: string }>(read, [7]);
    a.rows[0].v = 'mutated';
    const b = await c.query<{ v: string }>(read, [7]);
    assert.equal(b.rows[0].v, 'v7');
    b.rows[0].v = 'again';
    assert.equal((await c.query<{ v: string }>(read, [7])).rows[0].v, 'v7');
  });
});

test('keys tell callers, parameter types and result shapes apart; secrets never enter a key', () => {
  const key = 'hdb_0123456789abcdef_SECRETSECRETSECRETSECRETSECRETSECRETSECRET1';
  assert.equal(principalKey({ apiKey: key }), 'key:hdb_0123456789abcdef');
  assert.notEqual(principalKey({ user: 'ada' }), principalKey({ user: 'bob' }));
  const k = (params: unknown[], who = 'user:ada', shape = 'object|0') => cacheKey(who, 'SELECT $1', params, shape);
  assert.notEqual(k([1]), k(['1']));
  assert.notEqual(k([1]), k([1n]));
  assert.notEqual(k([new Date(0)]), k([new Date(0).toISOString()]));
  assert.notEqual(k([new Uint8Array([1])]), k([[1]]));
  assert.notEqual(k([1]), k([1], 'user:bob'));
  assert.notEqual(k([1]), k([1], 'user:ada', 'array|0'));
  assert.equal(k([{ a: 1 }]), k([{ a: 1 }]));
});

test('the tables of a statement, from its text', () => {
  assert.equal(tablesWritten('SELECT * FROM t'), undefined);
  assert.deepEqual([...(tablesWritten('INSERT INTO s.T (a) VALUES ($1) ON CONFLICT (a) DO UPDATE SET a = 1') as Set<string>)], ['t']);
  assert.deepEqual([...(tablesWritten('UPDATE "Acc" a SET x = 1 FROM b WHERE a.id = b.id') as Set<string>)], ['Acc']);
  assert.deepEqual(
    [...(tablesWritten('WITH d AS (DELETE FROM t RETURNING *) INSERT INTO log SELECT * FROM d') as Set<string>)],
    ['t', 'log'],
  );
  assert.deepEqual([...(tablesWritten('TRUNCATE TABLE a, s.b') as Set<string>)], ['a', 'b']);
  assert.deepEqual(
    [...(tablesWritten('MERGE INTO tgt USING src ON tgt.id = src.id WHEN MATCHED THEN UPDATE SET v = 1') as Set<string>)],
    ['tgt'],
  );
  assert.equal(tablesWritten('CREATE TABLE z (id int)'), 'all');
  assert.equal(tablesWritten('CALL refresh()'), 'all');
  assert.equal(tablesWritten('SELECT * FROM t FOR UPDATE'), 'all');
  assert.deepEqual([...namesIn('SELECT id, "Name" FROM s.Orders o WHERE x > $1')].sort(), ['Name', 'id', 'o', 'orders', 's', 'x']);
});
