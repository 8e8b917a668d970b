/**
 * Prepare / ExecutePrepared / ClosePrepared: parameter and result types, repeated execution,
 * transactions, the row cap, closing, a server that never saw the statement id (re-prepared from
 * the SQL sent along), and a schema change under a prepared statement.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Code } from '@connectrpc/connect';
import { RowFormat } from '../gen/heliosdb/v1/value_pb.js';
import { describeEachBackend } from './helpers/backends.js';
import { expectDetail } from './helpers/errors.js';
import { createTable, startTestServer, type TestServer, uniqueName, useServer } from './helpers/server.js';
import { compactRows, plainRows, V } from './helpers/values.js';

describeEachBackend('prepared statements', (backend) => {
  const s = useServer(backend, { poolSize: 2, maxUnaryRows: 50 });

  test('Prepare reports parameter and result types; ExecutePrepared runs it repeatedly', async () => {
    const db = s().db;
    const sql = 'SELECT $1::int4 + $2::int8 AS sum, upper($3::text) AS label, $4::timestamptz AS at';
    const p = await db.prepare({ sql });
    assert.match(p.statementId, /^\w+$/);
    assert.deepEqual(p.paramTypeOids, [23, 20, 25, 1184]);
    assert.deepEqual(p.paramTypeNames, ['int4', 'int8', 'text', 'timestamptz']);
    assert.deepEqual(
      p.columns.map((c) => [c.name, c.typeName]),
      [
        ['sum', 'int8'],
        ['label', 'text'],
        ['at', 'timestamptz'],
      ],
    );
    assert.equal((await db.prepare({ sql })).statementId, p.statementId, 'the same SQL gets the same id');
    assert.notEqual((await db.prepare({ sql: sql + ' ' })).statementId, p.statementId, 'other SQL gets another id');
    // Repeatedly, concurrently and over several protocols (so on every pooled connection).
    const runs = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        s()
          .client(i % 2 ? 'grpc' : 'connect')
          .executePrepared({
            statementId: p.statementId,
            params: [V.int32(i), V.int64(10n ** 15n), V.text(`n${i}`), V.timestamptz(BigInt(i) * 1_000_000n)],
          }),
      ),
    );
    for (const [i, r] of runs.entries()) assert.deepEqual(plainRows(r.result), [[BigInt(i) + 10n ** 15n, `N${i}`, BigInt(i) * 1_000_000n]]);
    const compact = await db.executePrepared({
      statementId: p.statementId,
      params: [V.int32(1), V.int64(2n), V.text('x'), V.null()],
      rowFormat: RowFormat.COMPACT,
    });
    assert.deepEqual(compactRows(compact.result!.rows, compact.result!.columns), [['3', 'X', null]]);
  });

  test('parameter types are inferred from the statement', async (t) => {
    const ts = s();
    const table = await createTable(ts, t, 'id int8 PRIMARY KEY, name varchar(10), tags text[]');
    const p = await ts.db.prepare({ sql: `INSERT INTO ${table} VALUES ($1, $2, $3) RETURNING id` });
    assert.deepEqual(p.paramTypeNames, ['int8', 'varchar', '_text']);
    assert.deepEqual(
      p.columns.map((c) => c.typeName),
      ['int8'],
    );
    const r = await ts.db.executePrepared({
      statementId: p.statementId,
      params: [V.int64(7n), V.text('seven'), V.array([V.text('a'), V.null()])],
    });
    assert.deepEqual(plainRows(r.result), [[7n]]);
    assert.equal(r.result?.command, 'INSERT');
    const ddl = await ts.db.prepare({ sql: `DELETE FROM ${table}` });
    assert.deepEqual([ddl.paramTypeOids, ddl.columns], [[], []], 'a statement without parameters or rows');
  });

  test('bad SQL and bad parameters fail like queries do', async () => {
    const db = s().db;
    const syntax = await expectDetail(db.prepare({ sql: 'SELEC $1' }), Code.InvalidArgument, 'Prepare of bad SQL');
    assert.equal(syntax.sqlstate, '42601');
    const p = await db.prepare({ sql: 'SELECT $1::int AS x' });
    const type = await expectDetail(
      db.executePrepared({ statementId: p.statementId, params: [V.text('abc')] }),
      Code.InvalidArgument,
      'bad parameter',
    );
    assert.equal(type.sqlstate, '22P02');
    await expectDetail(db.executePrepared({ statementId: p.statementId, params: [] }), Code.InvalidArgument, 'missing parameter');
    assert.deepEqual(plainRows((await db.executePrepared({ statementId: p.statementId, params: [V.int32(5)] })).result), [[5]]);
  });

  test('ExecutePrepared honours transactions, max_rows and the unary row cap', async (t) => {
    const ts = s();
    const table = await createTable(ts, t);
    const ins = await ts.db.prepare({ sql: `INSERT INTO ${table} SELECT g, 'v' || g FROM generate_series(1, $1::int) g` });
    const sel = await ts.db.prepare({ sql: `SELECT id FROM ${table} WHERE id <= $1 ORDER BY id` });
    const { transactionId } = await ts.db.beginTransaction({});
    await ts.db.executePrepared({ statementId: ins.statementId, params: [V.int32(60)], transactionId });
    assert.equal(
      plainRows((await ts.db.executePrepared({ statementId: sel.statementId, params: [V.int32(10)], transactionId })).result).length,
      10,
    );
    await ts.db.rollback({ transactionId });
    assert.equal(
      plainRows((await ts.db.executePrepared({ statementId: sel.statementId, params: [V.int32(100)] })).result).length,
      0,
      'rolled back',
    );

    await ts.db.executePrepared({ statementId: ins.statementId, params: [V.int32(60)] });
    const capped = await expectDetail(
      ts.db.executePrepared({ statementId: sel.statementId, params: [V.int32(60)] }),
      Code.ResourceExhausted,
      '60 rows over a cap of 50',
    );
    assert.equal(capped.reason, 'ROW_LIMIT_EXCEEDED');
    await expectDetail(
      ts.db.executePrepared({ statementId: sel.statementId, params: [V.int32(11)], maxRows: 10 }),
      Code.ResourceExhausted,
      'max_rows 10',
    );
    assert.equal(plainRows((await ts.db.executePrepared({ statementId: sel.statementId, params: [V.int32(50)] })).result).length, 50);
  });

  test('ClosePrepared forgets the id; the SQL sent along prepares it again', async () => {
    const db = s().db;
    const sql = `SELECT $1::text || '!' AS shout /* ${uniqueName()} */`;
    const p = await db.prepare({ sql });
    await db.closePrepared({ statementId: p.statementId });
    const d = await expectDetail(
      db.executePrepared({ statementId: p.statementId, params: [V.text('a')] }),
      Code.NotFound,
      'closed statement',
    );
    assert.equal(d.reason, 'STATEMENT_NOT_FOUND');
    const mismatch = await expectDetail(
      db.executePrepared({ statementId: p.statementId, sql: 'SELECT 1', params: [] }),
      Code.NotFound,
      'id and sql disagree',
    );
    assert.equal(mismatch.reason, 'STATEMENT_NOT_FOUND');
    const r = await db.executePrepared({ statementId: p.statementId, sql, params: [V.text('a')] });
    assert.deepEqual(plainRows(r.result), [['a!']]);
    // Known again: the id alone works now.
    assert.deepEqual(plainRows((await db.executePrepared({ statementId: p.statementId, params: [V.text('b')] })).result), [['b!']]);
    await expectDetail(db.executePrepared({ statementId: 'hdb_never_prepared', params: [] }), Code.NotFound, 'an id never prepared');
  });

  test('a schema change under a prepared statement: it is re-prepared, not broken for good', async (t) => {
    const ts = s();
    const table = await createTable(ts, t, 'id int PRIMARY KEY');
    await ts.db.execute({ sql: `INSERT INTO ${table} VALUES (1)` });
    const p = await ts.db.prepare({ sql: `SELECT * FROM ${table} WHERE id = $1` });
    // Run it on every pooled connection, so each has the old plan.
    await Promise.all([1, 2, 3, 4].map(() => ts.db.executePrepared({ statementId: p.statementId, params: [V.int32(1)] })));
    await ts.db.execute({ sql: `ALTER TABLE ${table} ADD COLUMN extra text DEFAULT 'x'` });
    for (let i = 0; i < 4; i++) {
      const r = await ts.db.executePrepared({ statementId: p.statementId, params: [V.int32(1)] });
      assert.deepEqual(
        r.result?.columns.map((c) => c.name),
        ['id', 'extra'],
      );
      assert.deepEqual(plainRows(r.result), [[1, 'x']]);
    }
    // Inside a transaction the stale plan fails the transaction once; the retried transaction works.
    await ts.db.execute({ sql: `ALTER TABLE ${table} ADD COLUMN more int DEFAULT 2` });
    const { transactionId } = await ts.db.beginTransaction({});
    let failures = 0;
    try {
      await ts.db.executePrepared({ statementId: p.statementId, params: [V.int32(1)], transactionId });
    } catch {
      failures++;
    }
    await ts.db.rollback({ transactionId });
    const retry = await ts.db.beginTransaction({});
    const r = await ts.db.executePrepared({ statementId: p.statementId, params: [V.int32(1)], transactionId: retry.transactionId });
    assert.deepEqual(plainRows(r.result), [[1, 'x', 2]]);
    await ts.db.commit({ transactionId: retry.transactionId });
    assert.ok(failures <= 1);
  });

  describe('a server that never saw the statement', () => {
    test('ExecutePrepared with the SQL works on a second server and after a restart', async (t) => {
      const first = s();
      const table = await createTable(first, t, 'id int PRIMARY KEY, v text');
      await first.db.execute({ sql: `INSERT INTO ${table} VALUES (1, 'one'), (2, 'two')` });
      const sql = `SELECT v FROM ${table} WHERE id = $1`;
      const { statementId } = await first.db.prepare({ sql });

      // PostgreSQL: a second server on the same database. PGlite: a second server is a fresh
      // database, so give it the same table.
      let second: TestServer | undefined;
      try {
        second = await startTestServer(backend);
        if (backend.name === 'pglite')
          await second.db.execute({
            sql: `CREATE TABLE ${table} (id int PRIMARY KEY, v text); INSERT INTO ${table} VALUES (1, 'one'), (2, 'two')`,
          });
        const unknown = await expectDetail(
          second.db.executePrepared({ statementId, params: [V.int32(1)] }),
          Code.NotFound,
          'id without sql',
        );
        assert.equal(unknown.reason, 'STATEMENT_NOT_FOUND');
        const r = await second.client('connect').executePrepared({ statementId, sql, params: [V.int32(2)] });
        assert.deepEqual(plainRows(r.result), [['two']]);
        await second.close();

        // "Restart": a new server again, the first call carries the SQL.
        second = await startTestServer(backend);
        if (backend.name === 'pglite')
          await second.db.execute({ sql: `CREATE TABLE ${table} (id int PRIMARY KEY, v text); INSERT INTO ${table} VALUES (1, 'one')` });
        assert.deepEqual(plainRows((await second.db.executePrepared({ statementId, sql, params: [V.int32(1)] })).result), [['one']]);
        assert.deepEqual(plainRows((await second.db.executePrepared({ statementId, params: [V.int32(1)] })).result), [['one']]);
      } finally {
        await second?.close();
      }
    });
  });
});
