/**
 * cassandra-driver (Node) against `heliosdb serve --cql-port` on both backends: connecting with
 * localDataCenter, keyspaces and tables, prepared inserts, a paged select, conditional writes
 * answering [applied], a logged BATCH as one transaction, counters, table metadata, and errors
 * arriving as the driver's ResponseError with CQL's codes. Outcomes are checked in PostgreSQL.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import cassandra from 'cassandra-driver';
import { describeEachBackend } from './helpers/backends.js';
import { createKeyspaceCql, cqlClient, cqlServer, keyspaceName } from './cql-support.js';

const { Long } = cassandra.types;
const codes = cassandra.types.responseErrorCodes;

/** Asserts `p` fails with a ResponseError of `code`. */
async function rejectsWith(p: Promise<unknown>, code: number, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof cassandra.errors.ResponseError, `expected a ResponseError, got ${String(e)}`);
    assert.equal(e.code, code, `code 0x${e.code.toString(16)}: ${e.message}`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** 10,000 rows on PostgreSQL; 2,000 on the embedded engine, one session that every insert queues for. */
const rowsOn = (engine: string) => Number(process.env.HELIOSDB_CQL_TEST_ROWS ?? (engine === 'postgresql' ? 10_000 : 2_000));

describeEachBackend('CQL with cassandra-driver', (backend) => {
  test('connects, creates a keyspace and tables, inserts prepared, pages, and the metadata shows the table', {
    timeout: 300_000,
  }, async (t) => {
    const rows = rowsOn(backend.name);
    const f = await cqlServer(t, backend);
    const client = await cqlClient(t, f);
    assert.equal(client.getState().getConnectedHosts().length, 1);
    const ks = keyspaceName('drv');
    const created = await client.execute(createKeyspaceCql(ks));
    assert.equal(created.rows, undefined);
    await client.execute(
      `CREATE TABLE ${ks}.events (device text, at timestamp, seq int, reading double, tags set<text>, PRIMARY KEY ((device), at, seq)) WITH CLUSTERING ORDER BY (at DESC, seq ASC)`,
    );
    const insert = `INSERT INTO ${ks}.events (device, at, seq, reading, tags) VALUES (?, ?, ?, ?, ?)`;
    const base = Date.UTC(2026, 0, 1);
    const params = Array.from({ length: rows }, (_, i) => [i % 2 ? 'd1' : 'd2', new Date(base + i * 1000), i, i / 4, ['t', `n${i % 3}`]]);
    await cassandra.concurrent.executeConcurrent(client, insert, params, { concurrencyLevel: 32, executionProfile: undefined });
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.events`), [{ n: rows }]);

    // A paged select: page size 100, following paging_state to the end.
    let pageState: string | undefined;
    let seen = 0;
    let pages = 0;
    let previous = Number.POSITIVE_INFINITY;
    do {
      const rs = await client.execute(`SELECT at, seq, reading FROM ${ks}.events WHERE device = ?`, ['d1'], {
        prepare: true,
        fetchSize: 100,
        pageState,
      });
      pages++;
      assert.ok(rs.rows.length <= 100);
      for (const r of rs.rows) {
        const at = (r.at as Date).getTime();
        assert.ok(at < previous, 'rows come in CLUSTERING ORDER (at DESC)');
        previous = at;
      }
      seen += rs.rows.length;
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    assert.equal(seen, rows / 2);
    assert.equal(pages, Math.ceil(rows / 2 / 100));

    // Values come back as the driver's types.
    const one = await client.execute(
      `SELECT * FROM ${ks}.events WHERE device = ? AND at = ? AND seq = ?`,
      ['d1', new Date(base + 1000), 1],
      { prepare: true },
    );
    assert.equal(one.rows.length, 1);
    assert.equal(one.rows[0].reading, 0.25);
    assert.deepEqual([...(one.rows[0].tags as string[])].sort(), ['n1', 't']);

    const table = await client.metadata.getTable(ks, 'events');
    assert.ok(table);
    assert.deepEqual(
      table.partitionKeys.map((c) => c.name),
      ['device'],
    );
    assert.deepEqual(
      table.clusteringKeys.map((c) => c.name),
      ['at', 'seq'],
    );
    assert.deepEqual(table.clusteringOrder, ['DESC', 'ASC']);
    assert.deepEqual(table.columns.map((c) => c.name).sort(), ['at', 'device', 'reading', 'seq', 'tags']);
    const keyspaces = Object.keys(client.metadata.keyspaces);
    assert.ok(keyspaces.includes(ks));
  });

  test('conditional writes answer [applied]; a logged BATCH is one transaction; counters add up', async (t) => {
    const f = await cqlServer(t, backend);
    const client = await cqlClient(t, f);
    const ks = keyspaceName('lwt');
    await client.execute(createKeyspaceCql(ks));
    await client.execute(`USE ${ks}`);
    await client.execute('CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance bigint)');
    const first = await client.execute(
      'INSERT INTO accounts (id, owner, balance) VALUES (?, ?, ?) IF NOT EXISTS',
      [1, 'ann', Long.fromNumber(10)],
      { prepare: true },
    );
    assert.equal(first.wasApplied(), true);
    const again = await client.execute(
      'INSERT INTO accounts (id, owner, balance) VALUES (?, ?, ?) IF NOT EXISTS',
      [1, 'bob', Long.fromNumber(99)],
      { prepare: true },
    );
    assert.equal(again.wasApplied(), false);
    assert.equal(again.rows[0].owner, 'ann', 'the current row comes with [applied] = false');
    const wrong = await client.execute(
      'UPDATE accounts SET balance = ? WHERE id = ? IF balance = ?',
      [Long.fromNumber(5), 1, Long.fromNumber(11)],
      { prepare: true },
    );
    assert.equal(wrong.wasApplied(), false);
    const right = await client.execute(
      'UPDATE accounts SET balance = ? WHERE id = ? IF balance = ?',
      [Long.fromNumber(5), 1, Long.fromNumber(10)],
      { prepare: true },
    );
    assert.equal(right.wasApplied(), true);
    assert.deepEqual(await f.verify(`SELECT owner, balance::int AS b FROM ${ks}.accounts`), [{ owner: 'ann', b: 5 }]);
    assert.equal((await client.execute('DELETE FROM accounts WHERE id = 2 IF EXISTS')).wasApplied(), false);

    // A logged batch: all or nothing (PostgreSQL refuses the NUL character in text in the second statement).
    await client.batch(
      [
        { query: 'INSERT INTO accounts (id, owner, balance) VALUES (?, ?, ?)', params: [2, 'cy', Long.fromNumber(1)] },
        { query: 'UPDATE accounts SET owner = ? WHERE id = ?', params: ['dee', 1] },
      ],
      { prepare: true },
    );
    assert.deepEqual(await f.verify(`SELECT id, owner FROM ${ks}.accounts ORDER BY id`), [
      { id: 1, owner: 'dee' },
      { id: 2, owner: 'cy' },
    ]);
    await assert.rejects(
      client.batch(
        [
          { query: 'INSERT INTO accounts (id, owner, balance) VALUES (?, ?, ?)', params: [3, 'eve', Long.fromNumber(1)] },
          { query: 'INSERT INTO accounts (id, owner, balance) VALUES (?, ?, ?)', params: [4, 'nul\u0000char', Long.fromNumber(1)] },
        ],
        { prepare: true },
      ),
      cassandra.errors.ResponseError,
    );
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.accounts WHERE id IN (3, 4)`), [{ n: 0 }]);

    await client.execute('CREATE TABLE hits (page text PRIMARY KEY, n counter)');
    await Promise.all(
      Array.from({ length: 20 }, () =>
        client.execute('UPDATE hits SET n = n + ? WHERE page = ?', [Long.fromNumber(2), 'home'], { prepare: true }),
      ),
    );
    await client.execute('UPDATE hits SET n = n - 5 WHERE page = ?', ['home'], { prepare: true });
    await client.batch([{ query: "UPDATE hits SET n = n + 1 WHERE page = 'about'" }], { counter: true });
    const hits = await client.execute('SELECT page, n FROM hits');
    assert.deepEqual(Object.fromEntries(hits.rows.map((r) => [r.page, Number(r.n)])), { home: 35, about: 1 });
    await rejectsWith(
      client.execute('INSERT INTO hits (page, n) VALUES (?, ?)', ['x', Long.fromNumber(1)], { prepare: true }),
      codes.invalid,
      /counter/,
    );
  });

  test('errors arrive as ResponseError with CQL codes', async (t) => {
    const f = await cqlServer(t, backend);
    const client = await cqlClient(t, f);
    const ks = keyspaceName('err');
    await client.execute(createKeyspaceCql(ks));
    await rejectsWith(client.execute(createKeyspaceCql(ks)), codes.alreadyExists);
    await client.execute(`CREATE TABLE ${ks}.t (k int, c int, v text, PRIMARY KEY (k, c))`);
    await rejectsWith(client.execute(`CREATE TABLE ${ks}.t (k int PRIMARY KEY)`), codes.alreadyExists);
    await rejectsWith(client.execute('SELEC * FROM x'), codes.syntaxError);
    await rejectsWith(client.execute(`SELECT * FROM ${ks}.nope`), codes.invalid, /unconfigured table/);
    await rejectsWith(client.execute(`SELECT * FROM ${ks}.t WHERE v = 'a'`), codes.invalid, /ALLOW FILTERING/);
    await rejectsWith(client.execute(`SELECT * FROM ${ks}.t WHERE c = 1`), codes.invalid, /ALLOW FILTERING/);
    assert.deepEqual((await client.execute(`SELECT * FROM ${ks}.t WHERE v = 'a' ALLOW FILTERING`)).rows, []);
    await rejectsWith(client.execute(`INSERT INTO ${ks}.t (k, v) VALUES (1, 'a')`), codes.invalid, /clustering keys are missing: c/);
    await rejectsWith(
      client.execute(`INSERT INTO ${ks}.t (k, c, v) VALUES (1, 1, 'a') USING TIMESTAMP 123`),
      codes.invalid,
      /USING TIMESTAMP/,
    );
    await rejectsWith(client.execute(`UPDATE ${ks}.t USING TTL 10 SET v = 'a' WHERE k = 1 AND c = 1`), codes.invalid, /USING TTL/);
    await rejectsWith(client.execute(`CREATE INDEX ON ${ks}.t (v)`), codes.invalid, /not supported/);
    await rejectsWith(client.execute('SELECT * FROM t'), codes.invalid, /No keyspace/);
    await rejectsWith(client.execute(`SELECT * FROM ${ks}.t WHERE k = 'not a number'`), codes.invalid, /constant/);
  });
});
