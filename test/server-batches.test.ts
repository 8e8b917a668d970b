/**
 * ExecuteBatch: atomic batches (all or nothing, the failing statement's index reported),
 * non-atomic batches (per-statement outcomes, the good statements kept), both in auto-commit and
 * inside transactions, one statement with many parameter sets, and returned rows.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Code } from '@connectrpc/connect';
import type { ExecuteBatchResponse } from '../gen/heliosdb/v1/database_pb.js';
import { RowFormat } from '../gen/heliosdb/v1/value_pb.js';
import { describeEachBackend } from './helpers/backends.js';
import { expectDetail } from './helpers/errors.js';
import { countRows, createTable, type DbClient, useServer } from './helpers/server.js';
import { compactRows, plainRows, V } from './helpers/values.js';

const ids = async (db: DbClient, table: string, transactionId = '') =>
  plainRows((await db.query({ sql: `SELECT id FROM ${table} ORDER BY id`, transactionId })).result).map((r) => r[0]);

/** Four inserts whose third one violates the primary key. */
function fourWithDuplicate(table: string) {
  return [1, 2, 1, 4].map((id) => ({ sql: `INSERT INTO ${table} VALUES ($1, $2)`, params: [V.int32(id), V.text(`row ${id}`)] }));
}

/** Asserts the per-statement outcomes of a non-atomic batch: `failed` indexes failed with `code`. */
function assertOutcomes(res: ExecuteBatchResponse, n: number, failed: Map<number, { code: Code; sqlstate: string }>): void {
  assert.equal(res.results.length, n, 'one result per statement');
  res.results.forEach((r, i) => {
    const f = failed.get(i);
    if (f) {
      assert.equal(r.code, f.code, `statement ${i} failed with ${Code[f.code]}`);
      assert.equal(r.result, undefined, `statement ${i} has no result`);
      assert.equal(r.error?.sqlstate, f.sqlstate, `statement ${i} sqlstate`);
      assert.equal(r.error?.statementIndex, i, `statement ${i} reports its index`);
    } else {
      assert.equal(r.code, 0, `statement ${i} succeeded`);
      assert.equal(r.error, undefined);
      assert.equal(r.result?.command, 'INSERT');
      assert.equal(r.result?.rowsAffected, 1n);
    }
  });
}

describeEachBackend('batches', (backend) => {
  const s = useServer(backend);

  test('an atomic batch whose 3rd statement fails leaves nothing behind and reports statement_index 2', async (t) => {
    const ts = s();
    const table = await createTable(ts, t);
    for (const protocol of ['grpc', 'connect-json'] as const) {
      const d = await expectDetail(
        ts.client(protocol).executeBatch({ statements: fourWithDuplicate(table), atomic: true }),
        Code.AlreadyExists,
        protocol,
      );
      assert.equal(d.statementIndex, 2);
      assert.equal(d.sqlstate, '23505');
      assert.equal(await countRows(ts.db, table), 0, 'nothing of the batch remains');
    }
    const ok = await ts.db.executeBatch({
      statements: [1, 2, 3].map((id) => ({ sql: `INSERT INTO ${table} VALUES (${id}, 'x')` })),
      atomic: true,
    });
    assert.equal(ok.rowsAffected, 3n);
    assert.deepEqual(
      ok.results.map((r) => [r.code, r.result?.rowsAffected]),
      [
        [0, 1n],
        [0, 1n],
        [0, 1n],
      ],
    );
    assert.deepEqual(await ids(ts.db, table), [1, 2, 3]);
    // A failure in the first or the last statement.
    const first = await expectDetail(
      ts.db.executeBatch({ statements: [{ sql: 'SELECT 1/0' }, { sql: `INSERT INTO ${table} VALUES (9, 'x')` }], atomic: true }),
      Code.InvalidArgument,
    );
    assert.equal(first.statementIndex, 0);
    const last = await expectDetail(
      ts.db.executeBatch({ statements: [{ sql: `INSERT INTO ${table} VALUES (9, 'x')` }, { sql: 'SELEC' }], atomic: true }),
      Code.InvalidArgument,
    );
    assert.equal(last.statementIndex, 1);
    assert.equal(last.sqlstate, '42601');
    assert.deepEqual(await ids(ts.db, table), [1, 2, 3]);
  });

  test('a non-atomic batch returns per-statement results and errors and keeps the good statements', async (t) => {
    const ts = s();
    const table = await createTable(ts, t);
    const res = await ts.db.executeBatch({ statements: fourWithDuplicate(table), atomic: false });
    assertOutcomes(res, 4, new Map([[2, { code: Code.AlreadyExists, sqlstate: '23505' }]]));
    assert.equal(res.rowsAffected, 3n);
    assert.deepEqual(await ids(ts.db, table), [1, 2, 4]);

    // Several failures, the first and the last statement among them.
    const many = await ts.client('grpc-web').executeBatch({
      statements: [
        { sql: `INSERT INTO ${table} VALUES (1, 'dup')` },
        { sql: `INSERT INTO ${table} VALUES (5, 'ok')` },
        { sql: `INSERT INTO ${table} VALUES ('x', 'bad')` },
        { sql: `INSERT INTO ${table} VALUES (6, 'ok')` },
        { sql: `INSERT INTO ${table} VALUES (NULL, 'null id')` },
      ],
    });
    assertOutcomes(
      many,
      5,
      new Map([
        [0, { code: Code.AlreadyExists, sqlstate: '23505' }],
        [2, { code: Code.InvalidArgument, sqlstate: '22P02' }],
        [4, { code: Code.FailedPrecondition, sqlstate: '23502' }],
      ]),
    );
    assert.equal(many.rowsAffected, 2n);
    assert.deepEqual(await ids(ts.db, table), [1, 2, 4, 5, 6]);
  });

  test('inside a transaction: atomic batches undo only themselves; non-atomic batches keep the good statements', async (t) => {
    const ts = s();
    const db = ts.db;
    const table = await createTable(ts, t);
    const { transactionId } = await db.beginTransaction({});
    await db.execute({ sql: `INSERT INTO ${table} VALUES (100, 'before')`, transactionId });

    const d = await expectDetail(
      db.executeBatch({ statements: fourWithDuplicate(table), atomic: true, transactionId }),
      Code.AlreadyExists,
      'atomic in tx',
    );
    assert.equal(d.statementIndex, 2);
    assert.deepEqual(await ids(db, table, transactionId), [100], "the batch is undone, the transaction's earlier write kept");

    const res = await db.executeBatch({ statements: fourWithDuplicate(table), atomic: false, transactionId });
    assertOutcomes(res, 4, new Map([[2, { code: Code.AlreadyExists, sqlstate: '23505' }]]));
    assert.deepEqual(await ids(db, table, transactionId), [1, 2, 4, 100]);

    const ok = await db.executeBatch({
      statements: [{ sql: `INSERT INTO ${table} VALUES (7, 'x')` }, { sql: `DELETE FROM ${table} WHERE id = 100` }],
      atomic: true,
      transactionId,
    });
    assert.deepEqual(
      ok.results.map((r) => r.result?.command),
      ['INSERT', 'DELETE'],
    );
    await db.commit({ transactionId });
    assert.deepEqual(await ids(db, table), [1, 2, 4, 7]);
  });

  test('one statement with many parameter sets', async (t) => {
    const ts = s();
    const table = await createTable(ts, t);
    const sets = Array.from({ length: 500 }, (_, i) => ({ values: [V.int32(i), V.text(`v${i}`)] }));
    const res = await ts.db.executeBatch({ sql: `INSERT INTO ${table} VALUES ($1, $2)`, parameterSets: sets, atomic: true });
    assert.equal(res.results.length, 500);
    assert.equal(res.rowsAffected, 500n);
    assert.equal(await countRows(ts.db, table), 500);
    const check = await ts.db.query({ sql: `SELECT v FROM ${table} WHERE id IN (0, 250, 499) ORDER BY id` });
    assert.deepEqual(plainRows(check.result), [['v0'], ['v250'], ['v499']]);

    // A duplicate in the middle: atomically nothing, non-atomically everything else.
    const more = Array.from({ length: 100 }, (_, i) => ({ values: [V.int32(i === 50 ? 7 : 1000 + i), V.text('more')] }));
    const d = await expectDetail(
      ts.db.executeBatch({ sql: `INSERT INTO ${table} VALUES ($1, $2)`, parameterSets: more, atomic: true }),
      Code.AlreadyExists,
    );
    assert.equal(d.statementIndex, 50);
    assert.equal(await countRows(ts.db, table), 500);
    const partial = await ts.db.executeBatch({ sql: `INSERT INTO ${table} VALUES ($1, $2)`, parameterSets: more });
    assert.equal(partial.rowsAffected, 99n);
    assert.equal(partial.results[50].code, Code.AlreadyExists);
    assert.equal(partial.results[50].error?.statementIndex, 50);
    assert.equal(partial.results.filter((r) => r.code === 0).length, 99);
    assert.equal(await countRows(ts.db, table), 599);

    // Wrong parameter count in one set is that set's error.
    const bad = await ts.db.executeBatch({
      sql: `SELECT $1::int AS x`,
      parameterSets: [{ values: [V.int32(1)] }, { values: [] }, { values: [V.int32(3)] }],
    });
    assert.deepEqual(
      bad.results.map((r) => r.code),
      [0, Code.InvalidArgument, 0],
    );
  });

  test("return_rows returns each statement's rows in either format", async () => {
    const db = s().db;
    const statements = [
      { sql: 'SELECT g FROM generate_series(1, 3) g' },
      { sql: "SELECT 'x' AS a, NULL::int AS b" },
      { sql: 'SELECT $1::int8 AS big', params: [V.int64(-9223372036854775808n)] },
    ];
    const values = await db.executeBatch({ statements, returnRows: true, rowFormat: RowFormat.VALUES });
    assert.deepEqual(
      values.results.map((r) => plainRows(r.result)),
      [[[1], [2], [3]], [['x', null]], [[-9223372036854775808n]]],
    );
    const compact = await db.executeBatch({ statements, returnRows: true, rowFormat: RowFormat.COMPACT, atomic: true });
    assert.deepEqual(
      compact.results.map((r) => compactRows(r.result!.rows, r.result!.columns)),
      [[['1'], ['2'], ['3']], [['x', null]], [['-9223372036854775808']]],
    );
    const counts = await db.executeBatch({ statements });
    assert.deepEqual(
      counts.results.map((r) => [r.result?.command, r.result?.rowsAffected, r.result?.rows?.rowCount ?? 0]),
      [
        ['SELECT', 3n, 0],
        ['SELECT', 1n, 0],
        ['SELECT', 1n, 0],
      ],
    );
  });

  test('malformed batches are INVALID_ARGUMENT', async () => {
    const db = s().db;
    await expectDetail(
      db.executeBatch({ statements: [{ sql: 'SELECT 1' }], sql: 'SELECT 2', parameterSets: [{ values: [] }] }),
      Code.InvalidArgument,
      'both forms',
    );
    await expectDetail(db.executeBatch({ statements: [{ sql: 'SELECT 1' }, { sql: '' }] }), Code.InvalidArgument, 'an empty statement');
  });
});
