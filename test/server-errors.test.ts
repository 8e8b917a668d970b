/**
 * Bad input and limits: SQL errors with their position, parameter mistakes, constraint violations,
 * oversized requests and results, the unary row cap, cancelled and timed-out calls (on PostgreSQL
 * the statement must really stop; on PGlite, which cannot interrupt a statement, a call queued
 * behind an open transaction must never run), and transaction control outside a session.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Code } from '@connectrpc/connect';
import { RowFormat } from '../gen/heliosdb/v1/value_pb.js';
import { describeEachBackend } from './helpers/backends.js';
import { expectCode, expectDetail } from './helpers/errors.js';
import {
  countRows,
  createTable,
  type ProtocolName,
  stillPending,
  type TestServer,
  uniqueName,
  useServer,
  waitFor,
} from './helpers/server.js';
import { plainRows, V } from './helpers/values.js';

/** Statements with `marker` in their text that PostgreSQL is running right now (PostgreSQL only). */
async function activeWith(ts: TestServer, marker: string): Promise<number> {
  const r = await ts.admin!.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND position($1 in query) > 0",
    [marker],
  );
  return r.rows[0].n;
}

/** Asserts the server still answers correctly, several times (on every pooled connection). */
async function assertHealthy(ts: TestServer, times = 5): Promise<void> {
  for (let i = 0; i < times; i++) {
    const r = await ts.db.query({ sql: 'SELECT $1::int4 * 2 AS x, pg_sleep(0.005)::text AS s', params: [V.int32(i)] });
    assert.deepEqual(plainRows(r.result)[0][0], i * 2, 'the server still answers correctly');
  }
}

describeEachBackend('bad input and limits', (backend) => {
  const pg = backend.name === 'postgresql';
  const s = useServer(backend, { poolSize: 2 });
  // A pool of one: every plain call reuses the connection the previous one left behind.
  const one = useServer(backend, { poolSize: 1 });

  test('bad SQL: INVALID_ARGUMENT with sqlstate 42601 and the error position', async () => {
    for (const protocol of ['grpc', 'connect', 'grpc-web'] as ProtocolName[]) {
      const sql = 'SELECT * FORM somewhere';
      const d = await expectDetail(s().client(protocol).query({ sql }), Code.InvalidArgument, protocol);
      assert.equal(d.sqlstate, '42601');
      assert.equal(d.position, sql.indexOf('FORM') + 1, 'the 1-based position of the offending token');
      assert.equal(d.severity, 'ERROR');
      assert.match(d.message, /syntax error at or near "FORM"/);
      assert.equal(d.retryable, false);
    }
    const undefinedTable = await expectDetail(s().db.query({ sql: 'SELECT * FROM no_such_table_anywhere' }), Code.InvalidArgument);
    assert.equal(undefinedTable.sqlstate, '42P01');
    assert.equal(undefinedTable.position, 15);
    const empty = await expectDetail(s().db.query({ sql: '   ' }), Code.InvalidArgument, 'empty SQL');
    assert.equal(empty.reason, 'INVALID_REQUEST');
  });

  test('wrong parameter count and wrong parameter type: INVALID_ARGUMENT, not retryable', async () => {
    const db = s().db;
    const few = await expectDetail(
      db.query({ sql: 'SELECT $1::int + $2::int', params: [V.int32(1)] }),
      Code.InvalidArgument,
      'too few parameters',
    );
    assert.equal(few.sqlstate, '08P01');
    assert.equal(few.retryable, false);
    assert.match(few.message, /1 parameters.*requires 2/);
    await expectDetail(db.query({ sql: 'SELECT 1', params: [V.int32(1)] }), Code.InvalidArgument, 'parameters for a statement without any');
    await expectDetail(
      db.execute({ sql: 'SELECT $1::int', params: [V.int32(1), V.int32(2)] }),
      Code.InvalidArgument,
      'too many parameters',
    );

    const type = await expectDetail(
      db.query({ sql: 'SELECT $1::int AS x', params: [V.text('abc')] }),
      Code.InvalidArgument,
      "'abc' for an int",
    );
    assert.equal(type.sqlstate, '22P02');
    assert.match(type.message, /invalid input syntax for type integer: "abc"/);
    const overflow = await expectDetail(
      db.query({ sql: 'SELECT $1::int2 AS x', params: [V.int32(70000)] }),
      Code.InvalidArgument,
      'int2 out of range',
    );
    assert.equal(overflow.sqlstate, '22003');
    const nul = await expectDetail(db.query({ sql: 'SELECT $1::text', params: [V.text('a\0b')] }), Code.InvalidArgument, 'NUL in text');
    assert.equal(nul.reason, 'INVALID_PARAMETER');
    assert.match(nul.message, /\$1/);
    // The connection is fine afterwards.
    assert.deepEqual(plainRows((await db.query({ sql: 'SELECT $1::int + $2::int AS x', params: [V.int32(1), V.int32(2)] })).result), [[3]]);
  });

  test('unknown transaction id: NOT_FOUND', async () => {
    const d = await expectDetail(s().db.execute({ sql: 'SELECT 1', transactionId: 'nope' }), Code.NotFound);
    assert.equal(d.reason, 'TRANSACTION_NOT_FOUND');
  });

  test('constraint violations: unique is ALREADY_EXISTS, not null / foreign key / check are FAILED_PRECONDITION', async (t) => {
    const ts = s();
    const parent = await createTable(ts, t, 'id int PRIMARY KEY');
    const child = uniqueName('child');
    await ts.db.execute({
      sql:
        `CREATE TABLE ${child} (id int CONSTRAINT ${child}_pk PRIMARY KEY, parent int CONSTRAINT ${child}_fk REFERENCES ${parent}(id), ` +
        `v text NOT NULL, n int CONSTRAINT ${child}_n_positive CHECK (n > 0))`,
    });
    t.after(() => ts.db.execute({ sql: `DROP TABLE IF EXISTS ${child}` }));
    await ts.db.execute({ sql: `INSERT INTO ${parent} VALUES (1)` });
    const insert = (id: number, parentId: number | null, v: string | null, n: number) =>
      ts.db.execute({
        sql: `INSERT INTO ${child} VALUES ($1, $2, $3, $4)`,
        params: [V.int32(id), parentId === null ? V.null() : V.int32(parentId), v === null ? V.null() : V.text(v), V.int32(n)],
      });
    await insert(1, 1, 'ok', 1);

    const unique = await expectDetail(insert(1, 1, 'dup', 1), Code.AlreadyExists, 'unique');
    assert.equal(unique.sqlstate, '23505');
    assert.equal(unique.constraint, `${child}_pk`);
    assert.equal(unique.table, child);
    assert.match(unique.detail, /Key \(id\)=\(1\) already exists/);

    const notNull = await expectDetail(insert(2, 1, null, 1), Code.FailedPrecondition, 'not null');
    assert.equal(notNull.sqlstate, '23502');
    assert.equal(notNull.column, 'v');
    assert.equal(notNull.table, child);

    const fk = await expectDetail(insert(3, 99, 'x', 1), Code.FailedPrecondition, 'foreign key');
    assert.equal(fk.sqlstate, '23503');
    assert.equal(fk.constraint, `${child}_fk`);

    const check = await expectDetail(insert(4, 1, 'x', -1), Code.FailedPrecondition, 'check');
    assert.equal(check.sqlstate, '23514');
    assert.equal(check.constraint, `${child}_n_positive`);

    assert.equal(await countRows(ts.db, child), 1, 'only the valid row exists');
  });

  test('a statement leaving BEGIN open in auto-commit mode is rolled back with FAILED_PRECONDITION', async (t) => {
    const ts = one();
    const table = await createTable(ts, t);
    const begin = await expectDetail(ts.db.execute({ sql: 'BEGIN' }), Code.FailedPrecondition, 'BEGIN');
    assert.equal(begin.reason, 'TRANSACTION_CONTROL_OUTSIDE_SESSION');
    const script = await expectDetail(
      ts.db.query({ sql: `BEGIN; INSERT INTO ${table} VALUES (1, 'left open')` }),
      Code.FailedPrecondition,
      'a script leaving a transaction open',
    );
    assert.equal(script.reason, 'TRANSACTION_CONTROL_OUTSIDE_SESSION');
    const batch = await expectDetail(
      ts.db.executeBatch({ statements: [{ sql: 'BEGIN' }, { sql: `INSERT INTO ${table} VALUES (2, 'batch')` }] }),
      Code.FailedPrecondition,
      'transaction control in a batch',
    );
    assert.equal(batch.reason, 'TRANSACTION_CONTROL_IN_SQL', 'refused before anything runs: a batch is a transaction of its own');
    // A failing script inside BEGIN reports its own error and is rolled back too.
    const failing = await expectDetail(
      ts.db.query({ sql: `BEGIN; INSERT INTO ${table} VALUES (3, 'x'); SELECT 1/0` }),
      Code.InvalidArgument,
      'failing script',
    );
    assert.equal(failing.sqlstate, '22012');
    assert.equal(await countRows(ts.db, table), 0, 'nothing of those statements remains');
    // The (only) connection is back in auto-commit after each of those: the next write succeeds and persists.
    for (let i = 10; i < 30; i++) {
      await expectDetail(
        ts.db.query({ sql: `BEGIN; INSERT INTO ${table} VALUES (${i + 100}, 'x'); SELECT 1/0` }),
        Code.InvalidArgument,
        'failing script',
      );
      await ts.client(i % 2 ? 'grpc' : 'connect').execute({ sql: `INSERT INTO ${table} VALUES (${i}, 'auto')` });
    }
    assert.equal(await countRows(ts.client('grpc-web'), table), 20);
  });

  describe('with a 64 KiB message limit and a 100-row unary cap', () => {
    // shutdownGraceMs: an HTTP/2 client that sent an oversized message stays blocked on flow
    // control with its stream open (neither grpc-js nor connect-node resets it), so close() waits
    // out the grace period; keep it short here (see the report / known issues).
    const small = useServer(backend, { maxMessageBytes: 64 * 1024, maxUnaryRows: 100, poolSize: 1, shutdownGraceMs: 500 });

    test('a request over max_message_bytes fails with RESOURCE_EXHAUSTED on both listeners', async () => {
      const ts = small();
      const big = `SELECT length('${'x'.repeat(100_000)}') AS n`;
      for (const protocol of ['grpc', 'connect', 'connect-json', 'grpc-web', 'grpc-http'] as ProtocolName[]) {
        await expectCode(ts.client(protocol).query({ sql: big }), Code.ResourceExhausted, `oversized request over ${protocol}`);
        // Just under the limit works.
        const ok = await ts.client(protocol).query({ sql: `SELECT length('${'x'.repeat(60_000)}') AS n` });
        assert.deepEqual(plainRows(ok.result), [[60_000]], protocol);
      }
      await assertHealthy(ts);
    });

    test('a result over the message limit fails with RESOURCE_EXHAUSTED instead of an oversized response', async () => {
      const ts = small();
      for (const rowFormat of [RowFormat.VALUES, RowFormat.COMPACT]) {
        const d = await expectDetail(
          ts.db.query({ sql: "SELECT repeat('x', 2000) FROM generate_series(1, 60)", rowFormat }),
          Code.ResourceExhausted,
          'a 120 kB result',
        );
        assert.equal(d.reason, 'ROW_LIMIT_EXCEEDED');
      }
      await assertHealthy(ts);
    });

    test('a result over the unary row cap fails with ROW_LIMIT_EXCEEDED; the server stays healthy', async () => {
      const ts = small();
      const db = ts.db;
      assert.equal(
        plainRows((await db.query({ sql: 'SELECT g FROM generate_series(1, 100) g' })).result).length,
        100,
        'exactly the cap is fine',
      );
      for (const rowFormat of [RowFormat.VALUES, RowFormat.COMPACT]) {
        const d = await expectDetail(
          db.query({ sql: 'SELECT g FROM generate_series(1, 101) g', rowFormat }),
          Code.ResourceExhausted,
          '101 rows',
        );
        assert.equal(d.reason, 'ROW_LIMIT_EXCEEDED');
        assert.match(d.message, /100 rows/);
      }
      // max_rows lowers the cap per request, and cannot raise it.
      assert.equal(plainRows((await db.query({ sql: 'SELECT g FROM generate_series(1, 10) g', maxRows: 10 })).result).length, 10);
      await expectDetail(db.query({ sql: 'SELECT g FROM generate_series(1, 11) g', maxRows: 10 }), Code.ResourceExhausted, 'max_rows 10');
      await expectDetail(
        db.query({ sql: 'SELECT g FROM generate_series(1, 101) g', maxRows: 1000 }),
        Code.ResourceExhausted,
        'max_rows above the cap',
      );
      // Overflows followed at once by other statements on the same (only) connection: none of them
      // may be hit by a late cancellation of the overflowing one.
      for (let i = 0; i < 30; i++) {
        await expectDetail(db.query({ sql: `SELECT g FROM generate_series(1, ${101 + i * 7}) g` }), Code.ResourceExhausted, 'overflow');
        const r = await db.query({ sql: 'SELECT $1::int4 AS i, pg_sleep(0.01)::text', params: [V.int32(i)] });
        assert.equal(plainRows(r.result)[0][0], i, 'the statement after an overflow runs normally');
      }
      assert.deepEqual(ts.server.poolStats().waiting, 0);
    });

    test('an overflowing huge result is stopped in the database, not read to the end', {
      skip: !pg && 'PGlite cannot interrupt a running statement',
    }, async () => {
      const ts = small();
      const marker = uniqueName('huge');
      const t0 = Date.now();
      const d = await expectDetail(
        // A select-list SRF streams its rows (one in FROM would first materialise all of them).
        ts.db.query({ sql: `SELECT generate_series(1, 200000000) AS g, '${marker}' AS m` }),
        Code.ResourceExhausted,
        '200M rows',
      );
      assert.equal(d.reason, 'ROW_LIMIT_EXCEEDED');
      assert.ok(Date.now() - t0 < 5000, `the statement was cancelled quickly (${Date.now() - t0} ms)`);
      assert.ok(await waitFor(async () => (await activeWith(ts, marker)) === 0, 3000), 'no statement of it is still running');
      await assertHealthy(ts);
    });
  });

  describe('cancellation', () => {
    test('a call queued behind an open transaction and then cancelled never runs', async (t) => {
      // PGlite has one session, PostgreSQL here a pool of one: plain calls queue while a transaction holds it.
      const ts = one();
      const table = await createTable(ts, t);
      const { transactionId } = await ts.db.beginTransaction({});
      await ts.db.execute({ sql: `INSERT INTO ${table} VALUES (0, 'in tx')`, transactionId });
      for (const protocol of ['grpc', 'connect'] as ProtocolName[]) {
        const db = ts.client(protocol);
        const ac = new AbortController();
        const queued = db.execute({ sql: `INSERT INTO ${table} VALUES (1, 'cancelled ${protocol}')` }, { signal: ac.signal });
        assert.ok(await stillPending(queued, 150), 'the call waits for the connection');
        const t0 = Date.now();
        ac.abort();
        await expectCode(queued, Code.Canceled, `cancelled call over ${protocol}`);
        assert.ok(Date.now() - t0 < 1000, 'cancellation is prompt');
        const timed = db.execute({ sql: `INSERT INTO ${table} VALUES (2, 'timed out ${protocol}')` }, { timeoutMs: 200 });
        await expectCode(timed, Code.DeadlineExceeded, `timed-out call over ${protocol}`);
      }
      await ts.db.commit({ transactionId });
      assert.ok(await waitFor(() => ts.server.poolStats().waiting === 0, 3000), 'the server drops the abandoned waiters');
      assert.deepEqual(
        plainRows((await ts.db.query({ sql: `SELECT id, v FROM ${table} ORDER BY id` })).result),
        [[0, 'in tx']],
        "only the transaction's row exists",
      );
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(await countRows(ts.db, table), 1, 'and the cancelled calls did not run later either');
      await assertHealthy(ts);
    });

    test('a running statement is cancelled in the database by AbortSignal and by deadline', {
      skip: !pg && 'PGlite cannot interrupt a running statement',
    }, async () => {
      const ts = s();
      for (const protocol of ['grpc', 'connect', 'grpc-web'] as ProtocolName[]) {
        const db = ts.client(protocol);
        // AbortSignal, once the statement is known to be running.
        const marker = uniqueName('sleep');
        const ac = new AbortController();
        const call = db.query({ sql: `SELECT pg_sleep(30) /* ${marker} */` }, { signal: ac.signal });
        assert.ok(await waitFor(async () => (await activeWith(ts, marker)) === 1, 3000), 'the sleep is running');
        let t0 = Date.now();
        ac.abort();
        await expectCode(call, Code.Canceled, `aborted over ${protocol}`);
        assert.ok(
          await waitFor(async () => (await activeWith(ts, marker)) === 0, 3000),
          `the sleep is gone from pg_stat_activity (${protocol})`,
        );
        assert.ok(Date.now() - t0 < 3000);

        // A short deadline.
        const marker2 = uniqueName('sleep');
        t0 = Date.now();
        await expectCode(
          db.query({ sql: `SELECT pg_sleep(30) /* ${marker2} */` }, { timeoutMs: 300 }),
          Code.DeadlineExceeded,
          `deadline over ${protocol}`,
        );
        assert.ok(Date.now() - t0 < 2000, `the deadline is honoured (${Date.now() - t0} ms)`);
        assert.ok(await waitFor(async () => (await activeWith(ts, marker2)) === 0, 3000), `the timed-out sleep is gone (${protocol})`);
      }
      await assertHealthy(ts);
      assert.ok(
        await waitFor(() => ts.server.poolStats().idle === ts.server.poolStats().total, 2000),
        'every connection is back in the pool',
      );
    });
  });

  describe('with a 300 ms statement timeout', () => {
    const timed = useServer(backend, { statementTimeoutMs: 300 });

    test('a statement over the timeout fails with DEADLINE_EXCEEDED', {
      skip: !pg && 'PGlite cannot interrupt a running statement',
    }, async () => {
      const ts = timed();
      const t0 = Date.now();
      const d = await expectDetail(ts.db.query({ sql: 'SELECT pg_sleep(5)' }), Code.DeadlineExceeded, 'statement timeout');
      assert.equal(d.sqlstate, '57014');
      assert.equal(d.reason, 'STATEMENT_TIMEOUT');
      assert.ok(Date.now() - t0 < 2000);
      assert.equal((await ts.db.getServerInfo({})).limits?.statementTimeoutMs, 300);
      await assertHealthy(ts);
    });
  });
});
