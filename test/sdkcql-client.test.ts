/**
 * The SDK over `cql://` against heliosdb's CQL port, on both backends: keyspaces and tables made
 * with client.query, prepared inserts, CQL types as the SDK's values, `?` and `:name` markers, a
 * paged stream, logged and counter batches, conditional updates, typed errors, and what CQL has
 * not (transactions, savepoints, COPY, LISTEN, reserved sessions) refused with UNIMPLEMENTED.
 * Outcomes are checked in the database (CQL SELECTs through a second client, and SQL).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as lib from '@heliosdb/client';
import { createKeyspaceCql, cqlServer, keyspaceName } from './cql-support.js';
import { describeEachBackend } from './helpers/backends.js';
import { sdkCqlClient } from './sdkcql-support.js';

/** An error of `cls` whose code is `code` and whose message matches `message`. */
function typed(cls: new (...a: never[]) => Error, code: string, message?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof cls, `${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    assert.equal((e as lib.HeliosDBError).code, code);
    if (message) assert.match((e as Error).message, message);
    return true;
  };
}

describeEachBackend('the SDK over cql://', (backend) => {
  test('DDL, prepared inserts, CQL types, markers, paged stream, batches, [applied], counters', { timeout: 240_000 }, async (t) => {
    const f = await cqlServer(t, backend);
    const client = sdkCqlClient(f);
    const ks = keyspaceName('sdk');
    await client.query(createKeyspaceCql(ks));
    await client.query(
      `CREATE TABLE ${ks}.items (k int, c int, v text, big bigint, n varint, d decimal, u uuid, tu timeuuid, at timestamp, ` +
        'b blob, l list<int>, s set<text>, m map<text, int>, flag boolean, x double, PRIMARY KEY ((k), c))',
    );
    const at = new Date('2024-05-06T07:08:09.123Z');
    const ins = await client.prepare(
      `INSERT INTO ${ks}.items (k, c, v, big, n, d, u, tu, at, b, l, s, m, flag, x) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const uuid = '7d444840-9dc0-11d1-b245-5ffdce74fad2';
    const timeuuid = '50554d6e-29bb-11e5-b345-feff819cdc9f';
    await ins.execute([
      1,
      1,
      'one',
      9007199254740993n,
      12345678901234567890n,
      '9.50',
      uuid,
      timeuuid,
      at,
      new Uint8Array([1, 2, 255]),
      [3, 1],
      ['b', 'a'],
      { a: 1 },
      true,
      1.5,
    ]);
    await ins.execute([1, 2, 'two', 2, 0, '0', uuid, timeuuid, at, new Uint8Array([]), [], [], {}, false, -0.25]);
    const { rows } = await client.query(`SELECT * FROM ${ks}.items WHERE k = ? AND c = ?`, [1, 1]);
    assert.equal(rows.length, 1);
    const r = rows[0];
    assert.equal(r.v, 'one');
    assert.equal(r.big, 9007199254740993n);
    assert.equal(r.n, 12345678901234567890n);
    assert.equal(r.d, '9.50');
    assert.equal(r.u, uuid);
    assert.equal(r.tu, timeuuid);
    assert.ok(r.at instanceof Date);
    assert.equal((r.at as Date).toISOString(), at.toISOString());
    assert.ok(r.b instanceof Uint8Array);
    assert.deepEqual([...(r.b as Uint8Array)], [1, 2, 255]);
    assert.deepEqual(r.l, [3, 1]);
    assert.deepEqual(r.s, ['a', 'b']);
    assert.deepEqual(r.m, { a: 1 });
    assert.equal(r.flag, true);
    assert.equal(r.x, 1.5);
    // Named markers bind in order.
    const named = await client.query(`SELECT v FROM ${ks}.items WHERE k = :k AND c = :c`, [1, 2]);
    assert.deepEqual(named.rows, [{ v: 'two' }]);
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.items`), [{ n: 2 }]);

    // 10,000 rows, written by atomic batches of 500; read back in pages of 100.
    await client.query(`CREATE TABLE ${ks}.big (p int, c int, v text, PRIMARY KEY ((p), c))`);
    for (let b = 0; b < 20; b++) {
      const statements = Array.from({ length: 500 }, (_, i) => ({
        sql: `INSERT INTO ${ks}.big (p, c, v) VALUES (?, ?, ?)`,
        params: [b % 4, b * 500 + i, `v${b * 500 + i}`],
      }));
      await client.batch(statements);
    }
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.big`), [{ n: 10_000 }]);
    let pages = 0;
    let seen = 0;
    const ids = new Set<number>();
    for await (const page of client.stream<{ c: number }>(`SELECT c FROM ${ks}.big`, [], { batchRows: 100 }).batches()) {
      pages++;
      assert.ok(page.length <= 100, `a page of ${page.length} rows`);
      seen += page.length;
      for (const row of page) ids.add(row.c);
    }
    assert.equal(seen, 10_000);
    assert.equal(ids.size, 10_000);
    assert.ok(pages >= 100, `${pages} pages`);
    // Leaving a stream early stops paging; the client goes on.
    let early = 0;
    for await (const page of client.stream(`SELECT c FROM ${ks}.big`, [], { batchRows: 100 }).batches()) {
      early += page.length;
      break;
    }
    assert.equal(early, 100);
    // A unary query reads every page (5,000 rows each), up to its row limit.
    assert.equal((await client.query(`SELECT c FROM ${ks}.big`)).rows.length, 10_000);
    await assert.rejects(client.query(`SELECT c FROM ${ks}.big`, [], { maxRows: 50 }), typed(lib.QueryError, 'ROW_LIMIT_EXCEEDED'));
    // The keyspace and the data center in the URL.
    const inKeyspace = sdkCqlClient(f, { url: `cql://127.0.0.1:${f.server.cqlPort}/${ks}?dc=datacenter1` });
    assert.equal((await inKeyspace.queryOne<{ count: bigint }>('SELECT count(*) FROM big WHERE p = ?', [1])).count, 2500n);
    // The sql template's $1, $2 become ? markers ('$1' in a string literal stays text).
    const [k, c] = [1, 2];
    assert.deepEqual((await inKeyspace.sql`SELECT v FROM items WHERE k = ${k} AND c = ${c}`).rows, [{ v: 'two' }]);
    assert.deepEqual((await inKeyspace.query("SELECT v FROM items WHERE k = $1 AND v = '$1' ALLOW FILTERING", [1])).rows, []);
    const one = await client.queryOne<{ count: bigint }>(`SELECT count(*) FROM ${ks}.big WHERE p = ?`, [0]);
    assert.equal(one.count, 2500n);

    // A logged batch applies as a whole; one that fails applies nothing.
    await client.query(`CREATE TABLE ${ks}.acct (k text PRIMARY KEY, v int)`);
    await client.batch([
      { sql: `INSERT INTO ${ks}.acct (k, v) VALUES (?, ?)`, params: ['a', 1] },
      { sql: `INSERT INTO ${ks}.acct (k, v) VALUES (?, ?)`, params: ['b', 2] },
      { sql: `UPDATE ${ks}.acct SET v = ? WHERE k = ?`, params: [3, 'c'] },
    ]);
    assert.equal((await client.query(`SELECT k FROM ${ks}.acct`)).rows.length, 3);
    await assert.rejects(
      client.batch([
        { sql: `INSERT INTO ${ks}.acct (k, v) VALUES (?, ?)`, params: ['d', 4] },
        { sql: `INSERT INTO ${ks}.nosuch (k, v) VALUES (?, ?)`, params: ['e', 5] },
      ]),
      lib.QueryError,
    );
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.acct`), [{ n: 3 }]);

    // atomic: false runs each statement on its own: one fails, the others apply.
    const loose = await client.batch(
      [
        { sql: `INSERT INTO ${ks}.acct (k, v) VALUES (?, ?)`, params: ['f', 6] },
        { sql: `INSERT INTO ${ks}.nosuch (k, v) VALUES (?, ?)`, params: ['g', 7] },
        { sql: `INSERT INTO ${ks}.acct (k, v) VALUES (?, ?)`, params: ['h', 8] },
      ],
      { atomic: false },
    );
    assert.equal(loose.failed, 1);
    assert.deepEqual(
      loose.results.map((x) => x.ok),
      [true, false, true],
    );
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.acct`), [{ n: 5 }]);
    await client.query(`DELETE FROM ${ks}.acct WHERE k IN ('f', 'h')`);
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.acct`), [{ n: 3 }]);

    // Conditional updates answer [applied].
    const applied = await client.query(`UPDATE ${ks}.acct SET v = ? WHERE k = ? IF v = ?`, [10, 'a', 1]);
    assert.equal(applied.rows[0]['[applied]'], true);
    const notApplied = await client.query(`UPDATE ${ks}.acct SET v = ? WHERE k = ? IF v = ?`, [20, 'a', 1]);
    assert.equal(notApplied.rows[0]['[applied]'], false);
    assert.equal(notApplied.rows[0].v, 10);
    assert.deepEqual(await f.verify(`SELECT v FROM ${ks}.acct WHERE k = 'a'`), [{ v: 10 }]);
    const inserted = await client.query(`INSERT INTO ${ks}.acct (k, v) VALUES (?, ?) IF NOT EXISTS`, ['a', 99]);
    assert.equal(inserted.rows[0]['[applied]'], false);

    // Counters: additions, alone and in a (COUNTER) batch.
    await client.query(`CREATE TABLE ${ks}.hits (k text PRIMARY KEY, n counter)`);
    await client.query(`UPDATE ${ks}.hits SET n = n + ? WHERE k = ?`, [5, 'home']);
    await client.execute(`UPDATE ${ks}.hits SET n = n + ? WHERE k = ?`, [2n, 'home']);
    await client.batch([
      { sql: `UPDATE ${ks}.hits SET n = n + ? WHERE k = ?`, params: [3, 'home'] },
      { sql: `UPDATE ${ks}.hits SET n = n - ? WHERE k = ?`, params: [1, 'about'] },
    ]);
    const hits = await client.query<{ k: string; n: bigint }>(`SELECT k, n FROM ${ks}.hits`);
    assert.deepEqual(
      hits.rows.sort((a, b) => a.k.localeCompare(b.k)),
      [
        { k: 'about', n: -1n },
        { k: 'home', n: 10n },
      ],
    );
    assert.deepEqual(await f.verify(`SELECT n::int AS n FROM ${ks}.hits WHERE k = 'home'`), [{ n: 10 }]);

    // Pool statistics and metrics, as every transport reports them.
    const stats = client.pool.getStats();
    assert.equal(stats.endpoints[0].url, `cql://127.0.0.1:${f.server.cqlPort}`);
    assert.ok(stats.totalConnections >= 1);
    assert.ok((client.metrics.snapshot().Query?.count ?? 0) > 0);
  });

  test('errors are typed; what CQL has not is refused with UNIMPLEMENTED', { timeout: 120_000 }, async (t) => {
    const f = await cqlServer(t, backend);
    const client = sdkCqlClient(f);
    const ks = keyspaceName('sdkerr');
    await client.query(createKeyspaceCql(ks));
    await client.query(`CREATE TABLE ${ks}.t (k int PRIMARY KEY, v text)`);
    await assert.rejects(client.query('SELEKT * FROM nowhere'), (e: unknown) => {
      assert.ok(e instanceof lib.QueryError);
      assert.equal(e.code, 'QUERY_ERROR');
      assert.equal(e.sqlstate, '42601');
      return true;
    });
    await assert.rejects(client.prepare('SELEKT 1'), typed(lib.QueryError, 'QUERY_ERROR'));
    await assert.rejects(client.query(`SELECT * FROM ${ks}.missing`), (e: unknown) => {
      assert.ok(e instanceof lib.QueryError);
      assert.equal(e.sqlstate, '42000');
      return true;
    });
    await assert.rejects(client.query(createKeyspaceCql(ks)), typed(lib.QueryError, 'QUERY_ERROR', /existing keyspace/));
    await assert.rejects(client.query(`INSERT INTO ${ks}.t (k, v) VALUES (?, ?)`, ['not a number', 'x']), lib.HeliosDBError);

    await assert.rejects(client.begin(), typed(lib.HeliosDBError, 'UNIMPLEMENTED', /CQL has no interactive transactions/));
    await assert.rejects(
      client.transaction(async (tx) => tx.query('SELECT 1')),
      typed(lib.HeliosDBError, 'UNIMPLEMENTED', /CQL has no interactive transactions/),
    );
    await assert.rejects(
      client.query('SAVEPOINT s1'),
      typed(lib.HeliosDBError, 'UNIMPLEMENTED', /CQL has no interactive transactions or savepoints/),
    );
    for (const statement of ['BEGIN', 'BEGIN TRANSACTION', 'START TRANSACTION', 'COMMIT', 'ROLLBACK', 'RELEASE SAVEPOINT s1'])
      await assert.rejects(client.execute(statement), typed(lib.HeliosDBError, 'UNIMPLEMENTED', /CQL has no/), statement);
    await assert.rejects(client.reserve(), typed(lib.HeliosDBError, 'UNIMPLEMENTED', /CQL has no reserved sessions/));
    const drain = async () => {
      for await (const _ of client.copyTo('COPY t TO STDOUT'));
    };
    await assert.rejects(drain(), typed(lib.HeliosDBError, 'UNIMPLEMENTED', /CQL has no COPY/));
    await assert.rejects(client.copyFrom('COPY t FROM STDIN', '1\ta\n'), typed(lib.HeliosDBError, 'UNIMPLEMENTED', /CQL has no COPY/));
    await assert.rejects(
      client.listen('ch', () => {}),
      typed(lib.HeliosDBError, 'UNIMPLEMENTED', /CQL has no LISTEN/),
    );
    // Nothing was written by the refusals, and the client still works.
    assert.deepEqual((await client.query(`SELECT count(*) FROM ${ks}.t`)).rows, [{ count: 0n }]);
    const info = await client.serverInfo();
    assert.match(info.version, /^\d/);
    assert.equal(await client.healthCheck(), true);
  });
});
