/** Call kinds read from the method descriptors and the SQL a request carries, without a server. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { callKindOf } from '../../src/client/call-kind.js';
import { Health } from '../../gen/grpc/health/v1/health_pb.js';
import { DatabaseService } from '../../gen/heliosdb/v1/database_pb.js';

const m = DatabaseService.method;

test('idempotency levels in the proto decide the RPCs without SQL', () => {
  for (const name of ['prepare', 'getServerInfo', 'copyTo', 'listen'] as const) assert.equal(callKindOf(m[name], {}), 'safe', name);
  for (const name of ['beginTransaction', 'rollback', 'closePrepared', 'reserveSession', 'releaseSession'] as const)
    assert.equal(callKindOf(m[name], {}), 'safe', name);
  assert.equal(callKindOf(m.commit, {}), 'commit', 'Commit carries an idempotency key');
  assert.equal(callKindOf(Health.method.check, {}), 'safe');
  assert.equal(callKindOf(m.copyFrom, {}), 'other', 'a request stream cannot be sent again');
});

test('statement RPCs: reads are safe, writes are writes, anything in a transaction is other', () => {
  assert.equal(callKindOf(m.query, { sql: 'SELECT 1' }), 'safe');
  assert.equal(callKindOf(m.query, { sql: 'INSERT INTO t VALUES (1)' }), 'write');
  assert.equal(callKindOf(m.query, { sql: "WITH s AS (SELECT '--' AS sep) INSERT INTO t SELECT 1" }), 'write');
  assert.equal(callKindOf(m.query, { sql: 'SELECT 1', transactionId: 'tx' }), 'other');
  assert.equal(callKindOf(m.executeBatch, { statements: [{ sql: 'SELECT 1' }, { sql: 'DELETE FROM t' }] }), 'write');
});
