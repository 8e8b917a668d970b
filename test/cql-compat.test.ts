/**
 * One test per row of docs/cql.md's compatibility table that the driver, Python and protocol
 * tests do not cover: DROP/TRUNCATE, upserts, DELETE forms, IN, ORDER BY, LIMIT, row TTL,
 * collections, consistency levels, and what is refused (and with which code).
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import cassandra from 'cassandra-driver';
import { describeEachBackend } from './helpers/backends.js';
import { createKeyspaceCql, cqlClient, cqlServer, keyspaceName } from './cql-support.js';

const codes = cassandra.types.responseErrorCodes;

async function rejectsWith(p: Promise<unknown>, code: number, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof cassandra.errors.ResponseError, `expected a ResponseError, got ${String(e)}`);
    assert.equal(e.code, code, `code 0x${e.code.toString(16)}: ${e.message}`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

describeEachBackend('CQL compatibility rows', (backend) => {
  test('statements, their forms and their refusals', { timeout: 240_000 }, async (t) => {
    const f = await cqlServer(t, backend);
    const client = await cqlClient(t, f);
    const ks = keyspaceName('compat');
    await client.execute(createKeyspaceCql(ks));
    await client.execute(`USE ${ks}`);
    await client.execute('CREATE TABLE r (k int, c int, v text, PRIMARY KEY (k, c))');
    const put = (k: number, c: number, v: string) =>
      client.execute('INSERT INTO r (k, c, v) VALUES (?, ?, ?)', [k, c, v], { prepare: true });
    for (let c = 0; c < 5; c++) await put(1, c, `v${c}`);
    await put(2, 0, 'w');

    // UPDATE of a row that does not exist creates it; INSERT of an existing one replaces it.
    await client.execute("UPDATE r SET v = 'new' WHERE k = 3 AND c = 0");
    await put(1, 0, 'again');
    assert.deepEqual(await f.verify(`SELECT v FROM ${ks}.r WHERE k = 3 OR (k = 1 AND c = 0) ORDER BY k`), [{ v: 'again' }, { v: 'new' }]);

    // An unset value leaves the column as it is.
    await client.execute('INSERT INTO r (k, c, v) VALUES (?, ?, ?)', [3, 0, cassandra.types.unset], { prepare: true });
    assert.deepEqual(await f.verify(`SELECT v FROM ${ks}.r WHERE k = 3`), [{ v: 'new' }]);

    // IN, ORDER BY (reversed clustering), LIMIT, count(*).
    const inRows = await client.execute('SELECT k, c FROM r WHERE k IN (1, 2) AND c = 0');
    assert.equal(inRows.rows.length, 2);
    const desc = await client.execute('SELECT c FROM r WHERE k = 1 ORDER BY c DESC LIMIT 2');
    assert.deepEqual(
      desc.rows.map((r) => r.c),
      [4, 3],
    );
    assert.equal(Number((await client.execute('SELECT count(*) FROM r WHERE k = 1')).rows[0].count), 5);
    const range = await client.execute('SELECT c FROM r WHERE k = 1 AND c >= 1 AND c < 3');
    assert.deepEqual(
      range.rows.map((r) => r.c),
      [1, 2],
    );

    // DELETE: a column, a clustering range, a partition.
    await client.execute('DELETE v FROM r WHERE k = 1 AND c = 4');
    assert.deepEqual(await f.verify(`SELECT v FROM ${ks}.r WHERE k = 1 AND c = 4`), [{ v: null }]);
    await client.execute('DELETE FROM r WHERE k = 1 AND c >= 3');
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.r WHERE k = 1`), [{ n: 3 }]);
    await client.execute('DELETE FROM r WHERE k = 1');
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.r WHERE k = 1`), [{ n: 0 }]);

    // Consistency levels are accepted (one node: PostgreSQL's commit is the acknowledgement).
    const all = await client.execute('SELECT * FROM r WHERE k = 2', [], { consistency: cassandra.types.consistencies.all });
    assert.equal(all.rows.length, 1);

    // Row-level TTL: the row disappears once it expires.
    await client.execute("INSERT INTO r (k, c, v) VALUES (9, 9, 'short') USING TTL 1");
    assert.equal((await client.execute('SELECT * FROM r WHERE k = 9')).rows.length, 1);
    let gone = false;
    for (let i = 0; i < 50 && !gone; i++) {
      await new Promise((r) => setTimeout(r, 200));
      gone = (await client.execute('SELECT * FROM r WHERE k = 9')).rows.length === 0;
    }
    assert.ok(gone, 'the row expired');
    assert.equal(
      (await client.execute("INSERT INTO r (k, c, v) VALUES (9, 9, 'back') IF NOT EXISTS")).wasApplied(),
      true,
      'an expired row does not exist',
    );

    // Collections: list, set and map, replaced and added to.
    await client.execute('CREATE TABLE c (k int PRIMARY KEY, l list<int>, s set<text>, m map<text, int>)');
    await client.execute('INSERT INTO c (k, l, s, m) VALUES (?, ?, ?, ?)', [1, [3, 1], ['b', 'a', 'b'], { x: 1 }], { prepare: true });
    await client.execute("UPDATE c SET l = l + [7], s = s + {'c'}, m = m + {'y': 2} WHERE k = 1");
    await client.execute("UPDATE c SET l = [0] + l, s = s - {'a'} WHERE k = 1");
    const row = (await client.execute('SELECT l, s, m FROM c WHERE k = 1')).rows[0];
    assert.deepEqual(row.l, [0, 3, 1, 7]);
    assert.deepEqual([...(row.s as string[])], ['b', 'c']);
    assert.deepEqual(row.m, { x: 1, y: 2 });

    // Refused, with the code the drivers know.
    await rejectsWith(client.execute('CREATE TABLE st (k int, c int, s int static, PRIMARY KEY (k, c))'), codes.invalid, /static columns/);
    for (const q of [
      'ALTER TABLE r ADD x int',
      'CREATE TYPE address (street text)',
      'CREATE MATERIALIZED VIEW mv AS SELECT * FROM r WHERE k IS NOT NULL PRIMARY KEY (k)',
      'CREATE FUNCTION f (x int) RETURNS NULL ON NULL INPUT RETURNS int LANGUAGE java AS $$ return x; $$',
      "CREATE ROLE alice WITH PASSWORD = 'x'",
      'GRANT SELECT ON r TO alice',
    ])
      await rejectsWith(client.execute(q), codes.invalid, /not supported/);
    await rejectsWith(client.execute('SELECT * FROM system.peers_v2'), codes.invalid, /unconfigured table/);
    await rejectsWith(client.execute('SELECT * FROM system_virtual_schema.keyspaces'), codes.invalid, /unconfigured table/);
    await rejectsWith(client.execute('SELECT JSON * FROM r'), codes.invalid, /SELECT JSON/);
    await rejectsWith(client.execute('SELECT * FROM r WHERE token(k) > 0'), codes.syntaxError, /token/);
    await rejectsWith(
      client.execute("BEGIN BATCH INSERT INTO r (k, c, v) VALUES (5, 5, 'a') IF NOT EXISTS; APPLY BATCH"),
      codes.invalid,
      /conditional/,
    );
    await rejectsWith(client.execute('CREATE TABLE n (k int PRIMARY KEY, l list<list<int>>)'), codes.invalid, /nested collections/);
    await rejectsWith(client.execute('CREATE TABLE mix (k int PRIMARY KEY, n counter, v text)'), codes.invalid, /counter/);
    await rejectsWith(client.execute("INSERT INTO system.local (key) VALUES ('x')"), codes.unauthorized);

    // TRUNCATE, DROP TABLE, DROP KEYSPACE.
    await client.execute('TRUNCATE r');
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.r`), [{ n: 0 }]);
    await client.execute('DROP TABLE r');
    await rejectsWith(client.execute('SELECT * FROM r'), codes.invalid, /unconfigured table/);
    await client.execute(`DROP KEYSPACE ${ks}`);
    assert.deepEqual(await f.verify('SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1', [ks]), [{ n: 0 }]);
    await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`);

    // A PostgreSQL schema and table not made through CQL are not CQL's, and the error says so.
    const plain = keyspaceName('plain');
    await f.verify(`CREATE SCHEMA ${plain}; CREATE TABLE ${plain}.t (k int PRIMARY KEY)`);
    try {
      await rejectsWith(client.execute(`SELECT * FROM ${plain}.t`), codes.invalid, /CREATE KEYSPACE/);
    } finally {
      await f.verify(`DROP SCHEMA ${plain} CASCADE`);
    }
  });
});
