/**
 * Idempotency keys on the server (src/server/idempotency.ts), on both backends: a repeated key
 * returns the stored response without running again, a key reused for another request is
 * refused, a concurrent duplicate waits for the first, keys expire after the window, Commit with
 * a key, and statements that cannot carry a key still run.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Code } from '@connectrpc/connect';
import type { Value } from '../gen/heliosdb/v1/value_pb.js';
import { backends, describeEachBackend } from './helpers/backends.js';
import { expectDetail } from './helpers/errors.js';
import { countRows, createTable, startTestServer, uniqueName, useServer } from './helpers/server.js';

const int = (n: number): Value => ({ kind: { case: 'int32', value: n } }) as Value;
let seq = 0;
const newKey = () => `test-${process.pid}-${Date.now()}-${seq++}`;

describeEachBackend('idempotency keys', (backend) => {
  const server = useServer(backend, { httpPort: -1 });

  test('Execute, Query, ExecuteBatch and ExecutePrepared: a repeated key returns the first response and runs nothing', async (t) => {
    const ts = server();
    const table = await createTable(ts, t, 'id serial PRIMARY KEY, v int');
    const k1 = newKey();
    const e1 = await ts.db.execute({ sql: `INSERT INTO ${table} (v) VALUES ($1)`, params: [int(1)], idempotencyKey: k1 });
    const e2 = await ts.db.execute({ sql: `INSERT INTO ${table} (v) VALUES ($1)`, params: [int(1)], idempotencyKey: k1 });
    assert.equal(e2.rowsAffected, e1.rowsAffected);
    assert.equal(e2.executionTimeMs, e1.executionTimeMs, 'the stored response, byte for byte');
    const k2 = newKey();
    const q1 = await ts.db.query({ sql: `INSERT INTO ${table} (v) VALUES (2) RETURNING id`, idempotencyKey: k2 });
    const q2 = await ts.db.query({ sql: `INSERT INTO ${table} (v) VALUES (2) RETURNING id`, idempotencyKey: k2 });
    assert.deepEqual(q2.result?.rows, q1.result?.rows);
    const k3 = newKey();
    const batch = {
      statements: [{ sql: `INSERT INTO ${table} (v) VALUES (3)` }, { sql: `INSERT INTO ${table} (id, v) VALUES (1, 3)` }],
      atomic: false,
      idempotencyKey: k3,
    };
    const b1 = await ts.db.executeBatch(batch);
    const b2 = await ts.db.executeBatch(batch);
    assert.deepEqual(
      b1.results.map((r) => r.code),
      [0, Code.AlreadyExists],
      'a non-atomic keyed batch keeps per-statement outcomes',
    );
    assert.deepEqual(
      b2.results.map((r) => r.code),
      [0, Code.AlreadyExists],
    );
    const { statementId } = await ts.db.prepare({ sql: `INSERT INTO ${table} (v) VALUES ($1) RETURNING v` });
    const k4 = newKey();
    const sql = `INSERT INTO ${table} (v) VALUES ($1) RETURNING v`;
    await ts.db.executePrepared({ statementId, sql, params: [int(4)], idempotencyKey: k4 });
    await ts.db.executePrepared({ statementId, sql, params: [int(4)], idempotencyKey: k4 });
    assert.equal(await countRows(ts.db, table), 4, 'each keyed write ran once');
  });

  test('a key sent again with a different request is refused (IDEMPOTENCY_KEY_REUSED); a malformed key is INVALID_ARGUMENT', async (t) => {
    const ts = server();
    const table = await createTable(ts, t, 'v int');
    const key = newKey();
    await ts.db.execute({ sql: `INSERT INTO ${table} VALUES (1)`, idempotencyKey: key });
    const d = await expectDetail(ts.db.execute({ sql: `INSERT INTO ${table} VALUES (2)`, idempotencyKey: key }), Code.InvalidArgument);
    assert.equal(d.reason, 'IDEMPOTENCY_KEY_REUSED');
    const bad = await expectDetail(
      ts.db.execute({ sql: `INSERT INTO ${table} VALUES (3)`, idempotencyKey: 'not a key!' }),
      Code.InvalidArgument,
    );
    assert.equal(bad.reason, 'INVALID_IDEMPOTENCY_KEY');
    assert.equal(await countRows(ts.db, table), 1);
  });

  test('a failed keyed write records nothing: sending it again runs it again', async (t) => {
    const ts = server();
    const table = await createTable(ts, t, 'v int PRIMARY KEY');
    await ts.db.execute({ sql: `INSERT INTO ${table} VALUES (1)` });
    const key = newKey();
    await expectDetail(ts.db.execute({ sql: `INSERT INTO ${table} VALUES (1)`, idempotencyKey: key }), Code.AlreadyExists);
    await ts.db.execute({ sql: `DELETE FROM ${table}` });
    const r = await ts.db.execute({ sql: `INSERT INTO ${table} VALUES (1)`, idempotencyKey: key });
    assert.equal(r.rowsAffected, 1n);
  });

  test('two concurrent requests with one key: one runs, the other waits for it and gets its response', async (t) => {
    const ts = server();
    const table = await createTable(ts, t, 'id serial PRIMARY KEY, v int');
    const key = newKey();
    const sleep = backend.name === 'postgresql' ? ', pg_sleep(0.3)' : '';
    const req = {
      sql: `INSERT INTO ${table} (v) SELECT 7${sleep ? ' FROM (SELECT 1' + sleep + ') s' : ''} RETURNING id`,
      idempotencyKey: key,
    };
    const [a, b] = await Promise.all([ts.db.query(req), ts.db.query(req)]);
    assert.deepEqual(a.result?.rows, b.result?.rows);
    assert.equal(await countRows(ts.db, table), 1);
  });

  test('Commit with a key: a repeat reports the commit; an unknown transaction is final "not committed"; read-only transactions need no record', async (t) => {
    const ts = server();
    const table = await createTable(ts, t, 'v int');
    const { transactionId } = await ts.db.beginTransaction({});
    await ts.db.execute({ sql: `INSERT INTO ${table} VALUES (1)`, transactionId });
    const key = newKey();
    await ts.db.commit({ transactionId, idempotencyKey: key });
    await ts.db.commit({ transactionId, idempotencyKey: key });
    assert.equal(await countRows(ts.db, table), 1);
    const gone = newKey();
    const d = await expectDetail(ts.db.commit({ transactionId: 'never-begun', idempotencyKey: gone }), Code.NotFound);
    assert.equal(d.reason, 'TRANSACTION_NOT_FOUND');
    assert.match(d.message, /never committed/);
    const again = await expectDetail(ts.db.commit({ transactionId: 'never-begun', idempotencyKey: gone }), Code.NotFound);
    assert.equal(again.reason, 'TRANSACTION_NOT_FOUND', 'the tombstone answers the same');
    const ro = await ts.db.beginTransaction({ readOnly: true });
    await ts.db.commit({ transactionId: ro.transactionId, idempotencyKey: newKey() });
    const failed = await ts.db.beginTransaction({});
    await ts.db.execute({ sql: 'SELECT 1/0', transactionId: failed.transactionId }).catch(() => {});
    const aborted = await expectDetail(ts.db.commit({ transactionId: failed.transactionId, idempotencyKey: newKey() }), Code.Aborted);
    assert.equal(aborted.reason, 'TRANSACTION_ABORTED');
  });

  test('statements that cannot carry a key are refused with one (NOT_KEYABLE, nothing runs) and run without one: VACUUM, a script with its own COMMIT', async (t) => {
    const ts = server();
    const table = await createTable(ts, t, 'v int');
    for (const sql of [
      `VACUUM ${table}`,
      `INSERT INTO ${table} VALUES (1); COMMIT`,
      `CALL nonexistent_procedure()`,
      `DO $$ BEGIN INSERT INTO ${table} VALUES (9); END $$`,
    ]) {
      const d = await expectDetail(ts.db.execute({ sql, idempotencyKey: newKey() }), Code.InvalidArgument, sql);
      assert.equal(d.reason, 'NOT_KEYABLE', sql);
    }
    assert.equal(await countRows(ts.db, table), 0, 'nothing ran');
    await ts.db.execute({ sql: `VACUUM ${table}` });
    await ts.db.execute({ sql: `INSERT INTO ${table} VALUES (1); COMMIT` });
    assert.equal(await countRows(ts.db, table), 1);
  });

  test('records are kept in heliosdb.idempotency_keys', async () => {
    const ts = server();
    const r = await ts.db.query({ sql: "SELECT count(*) > 0 AS any FROM heliosdb.idempotency_keys WHERE state = 'done'" });
    assert.equal(r.result?.rows?.values[0]?.values[0]?.kind.value, true);
  });
});

// On the embedded engine only (a window long enough that a loaded machine's two calls in a row fall inside it): a server's sweep deletes every record older than its window, and
// the PostgreSQL test database is shared with test files running at the same time.
describe('idempotency keys expire [pglite]', () => {
  const backend = backends[0];
  describe('with a 2 s window', () => {
    test('a key older than the window runs again, and expired records are swept', async () => {
      const ts = await startTestServer(backend, { httpPort: -1, idempotencyWindowMs: 2000 });
      const table = uniqueName();
      try {
        await ts.db.execute({ sql: `CREATE TABLE ${table} (v int)` });
        const key = newKey();
        await ts.db.execute({ sql: `INSERT INTO ${table} VALUES (1)`, idempotencyKey: key });
        await ts.db.execute({ sql: `INSERT INTO ${table} VALUES (1)`, idempotencyKey: key });
        assert.equal(await countRows(ts.db, table), 1, 'within the window: once');
        await new Promise((r) => setTimeout(r, 2100));
        await ts.db.execute({ sql: `INSERT INTO ${table} VALUES (1)`, idempotencyKey: key });
        assert.equal(await countRows(ts.db, table), 2, 'after the window the key is new again');
        // The sweep runs lazily (at most every second) on a keyed call.
        await new Promise((r) => setTimeout(r, 2100));
        await ts.db.execute({ sql: `INSERT INTO ${table} VALUES (2)`, idempotencyKey: newKey() });
        let left = -1;
        for (let i = 0; i < 50; i++) {
          const q = await ts.db.query({
            sql: `SELECT count(*)::int4 AS n FROM heliosdb.idempotency_keys WHERE created_at < now() - interval '2 seconds'`,
          });
          left = Number(q.result?.rows?.values[0]?.values[0]?.kind.value);
          if (left === 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.equal(left, 0, 'records older than the window were deleted');
      } finally {
        await ts.db.execute({ sql: `DROP TABLE IF EXISTS ${table}` }).catch(() => {});
        await ts.close();
      }
    });
  });
});
