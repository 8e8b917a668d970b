/**
 * Interactive transactions: isolation between clients, the idle timeout, unknown ids, savepoints,
 * failed transactions, read-only and isolation levels, and the open-transaction cap.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Code } from '@connectrpc/connect';
import { IsolationLevel } from '../gen/heliosdb/v1/database_pb.js';
import { describeEachBackend } from './helpers/backends.js';
import { expectDetail } from './helpers/errors.js';
import { countRows, createTable, stillPending, useServer, waitFor } from './helpers/server.js';
import { plainRows, V } from './helpers/values.js';

describeEachBackend('transactions', (backend) => {
  const s = useServer(backend, { transactionIdleTimeoutMs: 10_000 });
  const pglite = backend.name === 'pglite';

  test('two clients interleaving transactions and plain queries never see uncommitted writes', async (t) => {
    const ts = s();
    const a = ts.client('grpc');
    const b = ts.client('connect');
    const table = await createTable(ts, t);

    // Round 1: A writes in a transaction and rolls back; B's plain read never sees A's rows.
    const { transactionId: txA } = await a.beginTransaction({});
    await a.execute({ sql: `INSERT INTO ${table} VALUES (1, 'a1')`, transactionId: txA });
    const bRead = countRows(b, table);
    if (pglite) {
      // One PGlite session: B's statement waits for A's transaction instead of running inside it.
      assert.ok(await stillPending(bRead, 150), "on PGlite B's plain query waits while A's transaction is open");
    }
    await a.execute({ sql: `INSERT INTO ${table} VALUES (2, 'a2')`, transactionId: txA });
    assert.equal(await countRows(a, table, txA), 2, 'A sees its own writes');
    await a.rollback({ transactionId: txA });
    assert.equal(await bRead, 0, "B never saw A's uncommitted rows");
    assert.equal(await countRows(b, table), 0, 'rolled back rows are gone');

    // Round 2: both clients open transactions; each sees only committed data and its own writes.
    const { transactionId: tx1 } = await a.beginTransaction({});
    await a.execute({ sql: `INSERT INTO ${table} VALUES (3, 'a3')`, transactionId: tx1 });
    const bBegin = b.beginTransaction({});
    if (!pglite) {
      const { transactionId: tx2 } = await bBegin;
      await b.execute({ sql: `INSERT INTO ${table} VALUES (4, 'b4')`, transactionId: tx2 });
      assert.equal(await countRows(b, table, tx2), 1, 'B sees only its own row');
      assert.equal(await countRows(a, table, tx1), 1, 'A sees only its own row');
      assert.equal(await countRows(ts.client('grpc-web'), table), 0, 'a third client sees nothing uncommitted');
      await a.commit({ transactionId: tx1 });
      assert.deepEqual(plainRows((await b.query({ sql: `SELECT id FROM ${table} ORDER BY id`, transactionId: tx2 })).result), [[3], [4]]);
      await b.rollback({ transactionId: tx2 });
    } else {
      assert.ok(await stillPending(bBegin, 150), "on PGlite B's BeginTransaction waits for A's transaction");
      assert.equal(await countRows(a, table, tx1), 1);
      await a.commit({ transactionId: tx1 });
      const { transactionId: tx2 } = await bBegin;
      await b.execute({ sql: `INSERT INTO ${table} VALUES (4, 'b4')`, transactionId: tx2 });
      assert.deepEqual(plainRows((await b.query({ sql: `SELECT id FROM ${table} ORDER BY id`, transactionId: tx2 })).result), [[3], [4]]);
      const aRead = countRows(a, table);
      assert.ok(await stillPending(aRead, 100), "A's plain read waits for B's transaction");
      await b.rollback({ transactionId: tx2 });
      assert.equal(await aRead, 1, "A never saw B's uncommitted row");
    }
    assert.deepEqual(plainRows((await a.query({ sql: `SELECT id, v FROM ${table} ORDER BY id` })).result), [[3, 'a3']]);
    assert.equal(ts.server.openTransactions(), 0);
  });

  test('many interleaved calls: each transaction is serialised and isolated', async (t) => {
    const ts = s();
    const table = await createTable(ts, t);
    const clients = [ts.client('grpc'), ts.client('connect'), ts.client('grpc-web')];
    // Workers whose commit was sent: their rows may legitimately be visible to the others.
    const committing = new Set<string>();
    // Three workers, each: begin, 5 concurrent inserts into its own transaction, check, commit or roll back.
    const outcomes = await Promise.all(
      clients.map(async (c, w) => {
        const { transactionId } = await c.beginTransaction({});
        await Promise.all(
          Array.from({ length: 5 }, (_, i) =>
            c.execute({ sql: `INSERT INTO ${table} VALUES ($1, $2)`, params: [V.int32(w * 100 + i), V.text(`w${w}`)], transactionId }),
          ),
        );
        const seen = plainRows((await c.query({ sql: `SELECT v, count(*)::int4 FROM ${table} GROUP BY v`, transactionId })).result);
        const counts = new Map(seen.map(([v, n]) => [v as string, n as number]));
        assert.equal(counts.get(`w${w}`), 5, `worker ${w} sees its own 5 rows`);
        for (const v of counts.keys()) {
          if (v !== `w${w}`) assert.ok(committing.has(v), `worker ${w} sees rows of ${v}, which was not committed`);
        }
        if (w === 1) await c.rollback({ transactionId });
        else {
          committing.add(`w${w}`);
          await c.commit({ transactionId });
        }
        return w;
      }),
    );
    assert.deepEqual(outcomes, [0, 1, 2]);
    assert.deepEqual(plainRows((await ts.db.query({ sql: `SELECT v, count(*)::int4 FROM ${table} GROUP BY v ORDER BY v` })).result), [
      ['w0', 5],
      ['w2', 5],
    ]);
  });

  test('unknown or finished transaction ids fail with NOT_FOUND (TRANSACTION_NOT_FOUND)', async () => {
    const db = s().db;
    const bogus = 'no-such-transaction';
    for (const [name, call] of [
      ['Query', () => db.query({ sql: 'SELECT 1', transactionId: bogus })],
      ['Execute', () => db.execute({ sql: 'SELECT 1', transactionId: bogus })],
      [
        'StreamQuery',
        async () => {
          for await (const _ of db.streamQuery({ sql: 'SELECT 1', transactionId: bogus }));
        },
      ],
      ['ExecuteBatch', () => db.executeBatch({ statements: [{ sql: 'SELECT 1' }], transactionId: bogus })],
      ['Commit', () => db.commit({ transactionId: bogus })],
      ['Rollback', () => db.rollback({ transactionId: bogus })],
      ['Savepoint', () => db.savepoint({ transactionId: bogus, name: 'a' })],
    ] as const) {
      const d = await expectDetail(call, Code.NotFound, name);
      assert.equal(d.reason, 'TRANSACTION_NOT_FOUND', name);
    }
    const { transactionId } = await db.beginTransaction({});
    await db.commit({ transactionId });
    const d = await expectDetail(db.query({ sql: 'SELECT 1', transactionId }), Code.NotFound, 'query after commit');
    assert.equal(d.reason, 'TRANSACTION_NOT_FOUND');
    assert.equal(
      (await expectDetail(db.commit({ transactionId: '' }), Code.InvalidArgument, 'commit without id')).reason,
      'INVALID_REQUEST',
    );
  });

  test('savepoint, rollback to savepoint and release', async (t) => {
    const ts = s();
    const db = ts.db;
    const table = await createTable(ts, t);
    const { transactionId } = await db.beginTransaction({});
    const ins = (id: number) => db.execute({ sql: `INSERT INTO ${table} VALUES ($1, 'x')`, params: [V.int32(id)], transactionId });
    await ins(1);
    assert.equal((await db.savepoint({ transactionId, name: 'first' })).name, 'first');
    await ins(2);
    await db.rollbackToSavepoint({ transactionId, name: 'first' });
    await ins(3);
    const { name: chosen } = await db.savepoint({ transactionId });
    assert.match(chosen, /^[A-Za-z_][A-Za-z0-9_]*$/, 'the server chooses a plain identifier');
    await ins(4);
    await db.releaseSavepoint({ transactionId, name: chosen });
    // A failed statement inside a savepoint is undone by rolling back to it; the transaction goes on.
    await db.savepoint({ transactionId, name: 'before_dup' });
    await expectDetail(ins(1), Code.AlreadyExists, 'duplicate key');
    const d = await expectDetail(ins(5), Code.FailedPrecondition, 'statement in a failed transaction');
    assert.equal(d.sqlstate, '25P02');
    await db.rollbackToSavepoint({ transactionId, name: 'before_dup' });
    await ins(5);
    // The released savepoint is gone.
    const gone = await expectDetail(
      db.rollbackToSavepoint({ transactionId, name: chosen }),
      Code.FailedPrecondition,
      'rollback to a released savepoint',
    );
    assert.equal(gone.sqlstate, '3B001');
    // That error failed the transaction; rolling back to an existing savepoint recovers it.
    await db.rollbackToSavepoint({ transactionId, name: 'first' });
    await ins(6);
    await db.commit({ transactionId });
    assert.deepEqual(plainRows((await db.query({ sql: `SELECT id FROM ${table} ORDER BY id` })).result), [[1], [6]]);

    const { transactionId: tx2 } = await db.beginTransaction({});
    for (const bad of ['1abc', 'a b', 'x"; DROP TABLE y; --', 'a'.repeat(64)]) {
      await expectDetail(db.savepoint({ transactionId: tx2, name: bad }), Code.InvalidArgument, `savepoint name ${bad}`);
      await expectDetail(db.rollbackToSavepoint({ transactionId: tx2, name: bad }), Code.InvalidArgument, `rollback to ${bad}`);
      await expectDetail(db.releaseSavepoint({ transactionId: tx2, name: bad }), Code.InvalidArgument, `release ${bad}`);
    }
    await db.rollback({ transactionId: tx2 });
  });

  test('committing a transaction whose statement failed reports ABORTED and keeps nothing', async (t) => {
    const ts = s();
    const db = ts.db;
    const table = await createTable(ts, t);
    const { transactionId } = await db.beginTransaction({});
    await db.execute({ sql: `INSERT INTO ${table} VALUES (1, 'kept?')`, transactionId });
    const bad = await expectDetail(db.query({ sql: 'SELECT 1/0', transactionId }), Code.InvalidArgument, 'division by zero');
    assert.equal(bad.sqlstate, '22012');
    const d = await expectDetail(db.commit({ transactionId }), Code.Aborted, 'commit');
    assert.equal(d.sqlstate, '25P02');
    assert.equal(d.reason, 'TRANSACTION_ABORTED');
    assert.equal(await countRows(db, table), 0, 'nothing of the failed transaction was committed');
    assert.equal(ts.server.openTransactions(), 0, 'the session is closed');
    await expectDetail(db.rollback({ transactionId }), Code.NotFound, 'the id is finished');
    assert.equal(
      (await db.query({ sql: 'SELECT 7 AS x' })).result?.rows?.values[0].values[0].kind.value,
      7,
      'the connection is usable again',
    );
  });

  test('commit and rollback apply; Execute in a transaction reports rows affected', async (t) => {
    const ts = s();
    const db = ts.client('connect-json');
    const table = await createTable(ts, t);
    const { transactionId, idleTimeoutMs } = await db.beginTransaction({ isolationLevel: IsolationLevel.SERIALIZABLE });
    assert.equal(idleTimeoutMs, 10_000);
    const r = await db.execute({ sql: `INSERT INTO ${table} SELECT g, 'x' FROM generate_series(1, 7) g`, transactionId });
    assert.equal(r.command, 'INSERT');
    assert.equal(r.rowsAffected, 7n);
    const u = await db.execute({ sql: `UPDATE ${table} SET v = 'y' WHERE id > 4`, transactionId });
    assert.deepEqual([u.command, u.rowsAffected], ['UPDATE', 3n]);
    await db.commit({ transactionId });
    assert.deepEqual(plainRows((await db.query({ sql: `SELECT v, count(*)::int4 FROM ${table} GROUP BY v ORDER BY v` })).result), [
      ['x', 4],
      ['y', 3],
    ]);
  });

  test('read-only transactions reject writes; isolation levels reach the database', async (t) => {
    const ts = s();
    const db = ts.db;
    const table = await createTable(ts, t);
    const { transactionId } = await db.beginTransaction({ readOnly: true, isolationLevel: IsolationLevel.REPEATABLE_READ });
    const settings = await db.query({
      sql: "SELECT current_setting('transaction_read_only'), current_setting('transaction_isolation')",
      transactionId,
    });
    assert.deepEqual(plainRows(settings.result), [['on', 'repeatable read']]);
    const d = await expectDetail(
      db.execute({ sql: `INSERT INTO ${table} VALUES (1, 'x')`, transactionId }),
      Code.FailedPrecondition,
      'write in read-only',
    );
    assert.equal(d.sqlstate, '25006');
    await db.rollback({ transactionId });

    const { transactionId: ser } = await db.beginTransaction({
      isolationLevel: IsolationLevel.SERIALIZABLE,
      readOnly: true,
      deferrable: true,
    });
    assert.deepEqual(
      plainRows(
        (
          await db.query({
            sql: "SELECT current_setting('transaction_isolation'), current_setting('transaction_deferrable')",
            transactionId: ser,
          })
        ).result,
      ),
      [['serializable', 'on']],
    );
    await db.commit({ transactionId: ser });
  });

  test('REPEATABLE READ keeps its snapshot while another client commits', {
    skip: pglite && 'PGlite runs one session: no concurrent writer can exist',
  }, async (t) => {
    const ts = s();
    const table = await createTable(ts, t);
    const { transactionId } = await ts.db.beginTransaction({ isolationLevel: IsolationLevel.REPEATABLE_READ });
    assert.equal(await countRows(ts.db, table, transactionId), 0);
    await ts.client('connect').execute({ sql: `INSERT INTO ${table} VALUES (1, 'other')` });
    assert.equal(await countRows(ts.db, table, transactionId), 0, 'the snapshot does not see the later commit');
    await ts.db.commit({ transactionId });
    assert.equal(await countRows(ts.db, table), 1);
  });

  describe('with a 1 s idle timeout and at most one open transaction', () => {
    const short = useServer(backend, { transactionIdleTimeoutMs: 1000, maxOpenTransactions: 1 });

    test('an abandoned transaction is rolled back: its next call fails with TRANSACTION_EXPIRED', async (t) => {
      const ts = short();
      const db = ts.db;
      const table = await createTable(ts, t);
      const { transactionId, idleTimeoutMs } = await db.beginTransaction({});
      assert.equal(idleTimeoutMs, 1000);
      await db.execute({ sql: `INSERT INTO ${table} VALUES (1, 'abandoned')`, transactionId });
      assert.equal(ts.server.openTransactions(), 1);
      assert.ok(await waitFor(() => ts.server.openTransactions() === 0, 6000), 'the server rolls the transaction back');
      const d = await expectDetail(
        db.query({ sql: 'SELECT 1', transactionId }),
        Code.FailedPrecondition,
        'query on the expired transaction',
      );
      assert.equal(d.reason, 'TRANSACTION_EXPIRED');
      const c = await expectDetail(db.commit({ transactionId }), Code.FailedPrecondition, 'commit of the expired transaction');
      assert.equal(c.reason, 'TRANSACTION_EXPIRED');
      assert.equal(await countRows(db, table), 0, 'its writes are gone');
    });

    test('a transaction in use is not expired, however long it lives', async (t) => {
      const ts = short();
      const db = ts.db;
      const table = await createTable(ts, t);
      const { transactionId } = await db.beginTransaction({});
      for (let i = 0; i < 6; i++) {
        await db.execute({ sql: `INSERT INTO ${table} VALUES ($1, 'busy')`, params: [V.int32(i)], transactionId });
        await new Promise((r) => setTimeout(r, 400));
      }
      // A call longer than the idle timeout does not expire it either.
      await db.query({ sql: 'SELECT pg_sleep(1.5)', transactionId });
      await db.commit({ transactionId });
      assert.equal(await countRows(db, table), 6);
    });

    test('BeginTransaction beyond max_open_transactions fails with RESOURCE_EXHAUSTED', async () => {
      const db = short().db;
      const { transactionId } = await db.beginTransaction({});
      const d = await expectDetail(db.beginTransaction({}), Code.ResourceExhausted, 'second transaction');
      assert.equal(d.reason, 'TOO_MANY_TRANSACTIONS');
      assert.equal(d.retryable, true);
      await db.rollback({ transactionId });
      const again = await db.beginTransaction({});
      await db.rollback({ transactionId: again.transactionId });
    });
  });
});

describeEachBackend('transactions on one pooled connection', (backend) => {
  const s = useServer(backend, { poolSize: 1 });

  test('every transaction stops watching its connection when it ends (no listener piles up on it)', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => {
      if (w.name === 'MaxListenersExceededWarning') warnings.push(w);
    };
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 25; i++) {
        const { transactionId } = await s().db.beginTransaction({});
        await s().db.query({ sql: 'SELECT 1', transactionId });
        if (i % 2 === 0) await s().db.commit({ transactionId });
        else await s().db.rollback({ transactionId });
      }
      // Warnings are emitted on the next tick.
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    assert.deepEqual(
      warnings.map((w) => w.message),
      [],
    );
  });
});
