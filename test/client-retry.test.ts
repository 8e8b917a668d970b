/**
 * The retry policy's parts (src/client/interceptors/, src/client/call-kind.ts, src/client/circuit-breaker.ts): which statements
 * are reads and which can carry an idempotency key, the backoff formula, the retry budget, the
 * circuit breaker's states, the options; and the interceptor on the Connect transports (http://)
 * and against deadlines.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CircuitBreaker } from '../src/client/circuit-breaker.js';
import { AmbiguousResultError, ConnectionError, createClient, type HeliosDBClient, resolveConfig, retryDefaults } from '@heliosdb/client';
import { DatabaseService } from '../gen/heliosdb/v1/database_pb.js';
import { AuthService } from '../gen/heliosdb/v1/auth_pb.js';
import { Health } from '../gen/grpc/health/v1/health_pb.js';
import { callKindOf } from '../src/client/call-kind.js';
import { newIdempotencyKey } from '../src/client/idempotency-key.js';
import { RetryBudget } from '../src/client/interceptors/retry-budget.js';
import { resolveRetryOptions, retryDelayFor } from '../src/client/interceptors/retry-options.js';
import { isKeyableSql, isReadOnlySql } from '../src/client/sql-classify.js';
import { describeEachBackend } from './helpers/backends.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { startTestServer, type TestServer, uniqueName } from './helpers/server.js';

test('reads are told from writes, conservatively', () => {
  for (const sql of [
    'SELECT 1',
    '  select * from t where a = $1',
    '(SELECT 1) UNION (SELECT 2)',
    'VALUES (1), (2)',
    'TABLE t',
    'SHOW work_mem',
    'EXPLAIN SELECT 1',
    'WITH x AS (SELECT 1) SELECT * FROM x',
    "SELECT 'insert into t' AS text",
    '-- insert\nSELECT 1',
    'SELECT 1; SELECT 2',
  ]) {
    assert.equal(isReadOnlySql(sql), true, sql);
  }
  for (const sql of [
    'INSERT INTO t VALUES (1)',
    'UPDATE t SET a = 1',
    'DELETE FROM t',
    'WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d',
    'SELECT * INTO t2 FROM t',
    'EXPLAIN ANALYZE DELETE FROM t',
    "SELECT nextval('s')",
    'SELECT 1; DELETE FROM t',
    'CREATE TABLE t (a int)',
    'CALL p()',
    '',
  ]) {
    assert.equal(isReadOnlySql(sql), false, sql);
  }
  assert.equal(isKeyableSql('INSERT INTO t VALUES (1)'), true);
  for (const sql of [
    'BEGIN',
    'COMMIT',
    'INSERT INTO t VALUES (1); COMMIT',
    'VACUUM t',
    'CREATE INDEX CONCURRENTLY i ON t (a)',
    'LOCK t',
    'CREATE DATABASE d',
  ]) {
    assert.equal(isKeyableSql(sql), false, sql);
  }
  const m = DatabaseService.method;
  assert.equal(callKindOf(m.query, { sql: 'SELECT 1', transactionId: '' }), 'safe');
  assert.equal(callKindOf(m.query, { sql: 'INSERT INTO t VALUES (1)', transactionId: '' }), 'write');
  assert.equal(
    callKindOf(m.execute, { sql: 'INSERT INTO t VALUES (1)', transactionId: 'tx' }),
    'other',
    'inside a transaction: only when never sent',
  );
  assert.equal(callKindOf(m.executeBatch, { statements: [{ sql: 'SELECT 1' }, { sql: 'DELETE FROM t' }], transactionId: '' }), 'write');
  assert.equal(callKindOf(m.commit, {}), 'commit', 'IDEMPOTENT with an idempotency key');
  assert.equal(callKindOf(m.rollback, {}), 'safe', 'IDEMPOTENT');
  assert.equal(callKindOf(m.getServerInfo, {}), 'safe', 'NO_SIDE_EFFECTS');
  assert.equal(callKindOf(m.savepoint, { transactionId: 'tx' }), 'other');
  assert.equal(callKindOf(m.copyFrom, {}), 'other');
  assert.equal(callKindOf(AuthService.method.whoAmI, {}), 'safe');
  assert.equal(callKindOf(Health.method.check, {}), 'safe');
  assert.match(newIdempotencyKey(), /^[A-Za-z0-9_-]{22}$/);
});

test('backoff: min(maxDelay, baseDelay * base^retry) plus jitter, never sooner than the server asks', () => {
  const o = resolveRetryOptions({ baseDelayMs: 100, maxDelayMs: 1000, exponentialBase: 3, jitter: 0.5 });
  assert.deepEqual(
    [0, 1, 2, 3].map((r) => retryDelayFor(r, o, undefined, () => 0)),
    [100, 300, 900, 1000],
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((r) => retryDelayFor(r, o, undefined, () => 1)),
    [150, 450, 1350, 1500],
  );
  assert.equal(
    retryDelayFor(0, o, 5000, () => 0),
    5000,
    'retry-after wins',
  );
  assert.deepEqual(resolveRetryOptions(undefined), retryDefaults);
  assert.equal(resolveRetryOptions(false).maxAttempts, 1);
  assert.equal(resolveRetryOptions(false).idempotencyKeys, false);
  assert.deepEqual(resolveRetryOptions({ budget: { maxTokens: 4 } }).budget, { maxTokens: 4, tokenRatio: 0.1 });
  assert.throws(() => resolveRetryOptions({ maxAttempts: 0 }), RangeError);
  assert.throws(() => resolveRetryOptions({ jitter: 2 }), RangeError);
  assert.throws(() => resolveConfig({ keepaliveTimeoutMs: 0 }), RangeError);
  assert.equal(resolveConfig({ urls: ['grpc://a:1', 'grpc://b:2'] }).url, 'grpc://a:1');
});

test('retry budget: gRPC throttling (retries while more than half the tokens remain)', () => {
  const b = new RetryBudget(10, 0.5);
  for (let i = 0; i < 4; i++) b.onFailure();
  assert.equal(b.allows(), true);
  b.onFailure();
  assert.equal(b.allows(), false, '5 of 10 left: no more retries');
  b.onSuccess();
  assert.equal(b.allows(), true, 'successes earn it back');
});

test('circuit breaker: closed → open after repeated failures → half-open probe → closed, or open for twice as long', () => {
  let now = 0;
  const cb = new CircuitBreaker({ failureThreshold: 3, openMs: 100, maxOpenMs: 300 }, () => now);
  cb.onFailure();
  cb.onFailure();
  cb.onSuccess();
  cb.onFailure();
  cb.onFailure();
  assert.equal(cb.current, 'closed', 'failures must be consecutive');
  cb.onFailure();
  assert.equal(cb.current, 'open');
  assert.equal(cb.tryAcquire(), false);
  assert.equal(cb.retryInMs(), 100);
  now = 100;
  assert.equal(cb.current, 'half-open');
  assert.equal(cb.tryAcquire(), true, 'one probe');
  assert.equal(cb.tryAcquire(), false, 'only one');
  cb.onFailure();
  assert.equal(cb.current, 'open');
  assert.equal(cb.retryInMs(), 200, 'the open period doubled');
  now = 300;
  assert.equal(cb.tryAcquire(), true);
  cb.onSuccess();
  assert.equal(cb.current, 'closed');
  assert.deepEqual({ ...cb.stats(), retryAt: 0 }, { state: 'closed', consecutiveFailures: 0, opened: 2, rejected: 2, retryAt: 0 });
  const never = new CircuitBreaker(false);
  for (let i = 0; i < 100; i++) never.onFailure();
  assert.equal(never.current, 'closed');
});

describeEachBackend('retries over the Connect protocol (http://)', (backend) => {
  let ts: TestServer;
  let proxy: FaultProxy;
  let table: string;
  const clients: HeliosDBClient[] = [];
  before(async () => {
    ts = await startTestServer(backend, {});
    proxy = await FaultProxy.start(Number(new URL(ts.server.httpUrl!).port));
    table = uniqueName('retry');
    await ts.db.execute({ sql: `CREATE TABLE ${table} (id serial PRIMARY KEY, v text)` });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await ts.db.execute({ sql: `DROP TABLE IF EXISTS ${table}` });
    await proxy?.close();
    await ts?.close();
  });

  test('a write whose answer is lost is applied once (HTTP/2 and HTTP/1.1); without a key it is AmbiguousResultError', async () => {
    for (const httpVersion of ['2', '1.1'] as const) {
      const c = createClient({ url: `http://127.0.0.1:${proxy.port}`, httpVersion });
      clients.push(c);
      await c.query('SELECT 1');
      proxy.loseNextResponse(200);
      await c.execute(`INSERT INTO ${table} (v) VALUES ($1)`, [`h${httpVersion}`]);
      const r = await ts.db.query({ sql: `SELECT count(*)::int4 FROM ${table} WHERE v = 'h${httpVersion}'` });
      assert.equal(r.result?.rows?.values[0]?.values[0]?.kind.value, 1, `HTTP/${httpVersion}: once`);
      assert.ok(c.pool.getStats().retries >= 1);
    }
    const c = createClient({ url: `http://127.0.0.1:${proxy.port}`, retry: { idempotencyKeys: false } });
    clients.push(c);
    await c.query('SELECT 1');
    proxy.loseNextResponse(200);
    await assert.rejects(c.execute(`INSERT INTO ${table} (v) VALUES ('nokey')`), AmbiguousResultError);
  });

  test('no retry past the deadline; the circuit opens and shows in getStats', async () => {
    const c = createClient({
      url: `http://127.0.0.1:${proxy.port}`,
      retry: { maxAttempts: 100, budget: false, baseDelayMs: 50, maxDelayMs: 50 },
      circuitBreaker: { failureThreshold: 3, openMs: 5000 },
    });
    clients.push(c);
    await c.query('SELECT 1');
    await proxy.down();
    try {
      const t0 = performance.now();
      const err = await c.query('SELECT 1', [], { timeoutMs: 400 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      const ms = performance.now() - t0;
      assert.ok(err instanceof ConnectionError || (err as Error)?.constructor.name === 'TimeoutError', String(err));
      assert.ok(ms < 700, `stopped at the deadline (${ms.toFixed(0)} ms)`);
      const s = c.pool.getStats();
      assert.equal(s.endpoints[0].circuit, 'open');
      assert.ok(s.endpoints[0].circuitOpened >= 1);
    } finally {
      await proxy.up();
    }
  });
});
