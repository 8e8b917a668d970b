/**
 * Server information, health (Check on both listeners, Watch through shutdown) and graceful close:
 * calls in flight complete, open transactions are rolled back, later calls are refused, and an
 * open Watch or a call queued behind a transaction does not hold shutdown for its grace period.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Code } from '@connectrpc/connect';
import pg from 'pg';
import { HealthCheckResponse_ServingStatus as Status } from '../gen/grpc/health/v1/health_pb.js';
import { VERSION } from '../src/server/version.js';
import { describeEachBackend } from './helpers/backends.js';
import { expectCode } from './helpers/errors.js';
import { type ProtocolName, startTestServer, stillPending, uniqueName, useServer } from './helpers/server.js';
import { plainRows } from './helpers/values.js';

const packageVersion = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describeEachBackend('server lifecycle', (backend) => {
  const onPostgres = backend.name === 'postgresql';
  const limits = {
    maxMessageBytes: 3 * 1024 * 1024,
    maxUnaryRows: 4321,
    statementTimeoutMs: 12_345,
    maxOpenTransactions: 17,
    transactionIdleTimeoutMs: 9876,
  };
  const s = useServer(backend, limits);

  test('GetServerInfo reports version, engine and limits on every protocol', async () => {
    for (const protocol of ['grpc', 'connect-json', 'grpc-web'] as ProtocolName[]) {
      const info = await s().client(protocol).getServerInfo({});
      assert.equal(info.version, VERSION, protocol);
      assert.equal(info.version, packageVersion, 'the server version is the package version');
      assert.equal(info.engine, backend.name);
      assert.match(info.engineVersion, /^PostgreSQL \d+/);
      assert.deepEqual(
        { ...info.limits, $typeName: undefined },
        {
          $typeName: undefined,
          maxMessageBytes: limits.maxMessageBytes,
          maxUnaryRows: limits.maxUnaryRows,
          // PGlite cannot interrupt a statement, so it has no statement timeout.
          statementTimeoutMs: onPostgres ? limits.statementTimeoutMs : 0,
          maxOpenTransactions: limits.maxOpenTransactions,
          transactionIdleTimeoutMs: limits.transactionIdleTimeoutMs,
        },
      );
    }
    const version = plainRows((await s().db.query({ sql: 'SELECT version() AS v' })).result)[0][0];
    assert.equal((await s().db.getServerInfo({})).engineVersion, version, 'engine_version is SELECT version()');
  });

  test('Health Check on both listeners: SERVING, unknown services NOT_FOUND', async () => {
    for (const protocol of ['grpc', 'connect', 'connect-json', 'grpc-web', 'grpc-http'] as ProtocolName[]) {
      const health = s().health(protocol);
      assert.equal((await health.check({ service: '' })).status, Status.SERVING, protocol);
      assert.equal((await health.check({ service: 'heliosdb.v1.DatabaseService' })).status, Status.SERVING, protocol);
      await expectCode(health.check({ service: 'no.such.Service' }), Code.NotFound, `unknown service over ${protocol}`);
    }
  });

  test('Health Watch sends SERVING, then NOT_SERVING when the server closes, then ends; close does not wait for it', async () => {
    // The default shutdown grace (10 s): an open Watch must not hold close() for it.
    const ts = await startTestServer(backend);
    const watch = async (protocol: ProtocolName) => {
      const seen: Status[] = [];
      for await (const r of ts.health(protocol).watch({ service: '' })) seen.push(r.status);
      return seen;
    };
    const watches = (['grpc', 'connect', 'grpc-web'] as ProtocolName[]).map((p) => watch(p));
    const unknown = (async () => {
      for await (const r of ts.health('grpc').watch({ service: 'no.such.Service' })) return r.status;
    })();
    assert.equal(await unknown, Status.SERVICE_UNKNOWN);
    await new Promise((r) => setTimeout(r, 200));
    for (const w of watches) assert.ok(await stillPending(w, 10), 'a Watch stays open while nothing changes');
    const t0 = Date.now();
    await ts.close();
    assert.ok(Date.now() - t0 < 3000, `close did not wait out the grace period (${Date.now() - t0} ms)`);
    for (const seen of await Promise.all(watches)) assert.deepEqual(seen, [Status.SERVING, Status.NOT_SERVING]);
  });

  test('graceful close: a call in flight completes, open transactions are rolled back, later calls are refused', async () => {
    // A pool of one (PGlite always has one): the plain call waits behind the open transaction.
    const ts = await startTestServer(backend, { poolSize: 1 });
    const table = uniqueName();
    try {
      await ts.db.execute({ sql: `CREATE TABLE ${table} (id int)` });
      const { transactionId } = await ts.db.beginTransaction({});
      await ts.db.execute({ sql: `INSERT INTO ${table} VALUES (1)`, transactionId });
      const queued = ts.client('connect').query({ sql: `SELECT count(*)::int4 AS n FROM ${table}` });
      assert.ok(await stillPending(queued, 100), 'the call is in flight, waiting for the connection');
      // On PostgreSQL also a statement that is running when close starts.
      const running = onPostgres ? ts.client('grpc').query({ sql: 'SELECT 42 AS answer, pg_sleep(0.3)::text AS s' }) : undefined;
      await new Promise((r) => setTimeout(r, 50));
      const t0 = Date.now();
      await ts.close();
      assert.ok(Date.now() - t0 < 3000, `close finished promptly (${Date.now() - t0} ms)`);
      assert.deepEqual(plainRows((await queued).result), [[0]], 'the queued call completed, after the transaction was rolled back');
      if (running) assert.deepEqual(plainRows((await running).result), [[42, '']], 'the running call completed');
      await expectCode(ts.db.commit({ transactionId }), Code.Unavailable, 'a call after close (gRPC)');
      await expectCode(ts.client('connect').query({ sql: 'SELECT 1' }), Code.Unavailable, 'a call after close (Connect)');
      if (onPostgres) {
        const n = await direct(
          backend.databaseUrl!,
          async (c) => (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n,
        );
        assert.equal(n, 0, 'the open transaction was rolled back');
      }
      assert.equal(await ts.server.close().then(() => 'closed again'), 'closed again', 'close is idempotent');
    } finally {
      await ts.close();
      if (onPostgres) await direct(backend.databaseUrl!, (c) => c.query(`DROP TABLE IF EXISTS ${table}`));
    }
  });
});

/** Runs `fn` on a direct PostgreSQL connection (the server that made the table is closed). */
async function direct<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}
