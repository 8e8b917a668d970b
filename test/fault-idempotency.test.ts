/**
 * Writes that never apply twice, against real server processes on PostgreSQL behind a
 * fault-injecting proxy: an answer lost after the server committed (auto-commit writes and
 * commits), with and without idempotency keys, across a SIGKILL and restart of the server, and
 * across two servers on one database. PostgreSQL only: the embedded engine in memory dies with
 * its server, and with it the record of a key.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createClient as createRpcClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import pg from 'pg';
import { DatabaseService } from '../gen/heliosdb/v1/database_pb.js';
import { AmbiguousResultError, type ConnectionConfig, createClient, type HeliosDBClient } from '@heliosdb/client';
import { backends, postgresSkipReason } from './helpers/backends.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { freePort, ServerProcess } from './helpers/processes.js';
import { uniqueName } from './helpers/server.js';

const postgres = backends.find((b) => b.name === 'postgresql');

if (!postgres) {
  test('idempotent writes across faults and restarts [postgresql]', { skip: postgresSkipReason }, () => {});
} else {
  describe('idempotent writes across faults and restarts [postgresql]', { timeout: 90_000 }, () => {
    const databaseUrl = postgres.databaseUrl!;
    let server: ServerProcess;
    let proxy: FaultProxy;
    let admin: pg.Client;
    let table: string;
    const clients: HeliosDBClient[] = [];

    const client = (config: ConnectionConfig = {}) => {
      // No keepalive pings: the next bytes from the server are the answer the proxy loses.
      const c = createClient({
        url: proxy.grpcUrl,
        minConnections: 1,
        maxConnections: 1,
        keepaliveIntervalMs: 0,
        timeoutMs: 20_000,
        ...config,
      });
      clients.push(c);
      return c;
    };
    const count = async (v: string) => Number((await admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE v = $1`, [v])).rows[0].n);

    before(async () => {
      server = new ServerProcess(await freePort(), databaseUrl);
      await server.start();
      proxy = await FaultProxy.start(server.port);
      admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      table = uniqueName('idem');
      await admin.query(`CREATE TABLE ${table} (id serial PRIMARY KEY, v text NOT NULL)`);
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await admin?.query(`DROP TABLE IF EXISTS ${table}`);
      await admin?.end();
      await proxy?.close();
      await server?.kill();
    });

    test('an INSERT whose answer is lost after the server committed it is applied exactly once; the retry returns the first result', async (t) => {
      const c = client();
      await c.query('SELECT 1');
      proxy.loseNextResponse(300);
      const t0 = performance.now();
      const r = await c.query<{ id: number }>(`INSERT INTO ${table} (v) VALUES ($1) RETURNING id`, ['lost-answer']);
      const ms = performance.now() - t0;
      assert.equal(await count('lost-answer'), 1, 'applied once');
      const stored = (await admin.query(`SELECT id FROM ${table} WHERE v = 'lost-answer'`)).rows[0].id;
      assert.deepEqual(r.rows, [{ id: stored }], 'the answer is the first execution’s (the same id), not a second run');
      const s = c.pool.getStats();
      assert.ok(s.retries >= 1, `the client retried (${s.retries})`);
      assert.ok(proxy.stats.resets >= 1, 'the proxy cut the connection');
      t.diagnostic(`lost answer: settled after ${ms.toFixed(0)} ms and ${s.retries} retr${s.retries === 1 ? 'y' : 'ies'}`);
    });

    test('the same fault without an idempotency key: AmbiguousResultError, and the row is there once', async (_t) => {
      const c = client({ retry: { idempotencyKeys: false } });
      await c.query('SELECT 1');
      proxy.loseNextResponse(300);
      const err = await c.execute(`INSERT INTO ${table} (v) VALUES ($1)`, ['no-key']).then(
        () => assert.fail('the outcome cannot be known'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof AmbiguousResultError, `AmbiguousResultError, got ${String(err)}`);
      assert.equal(err.code, 'AMBIGUOUS_RESULT');
      assert.equal(err.retryable, false);
      assert.equal(await count('no-key'), 1, 'the server did apply it: the client was right not to guess');
      assert.equal(c.pool.getStats().retries, 0, 'a write without a key is not sent again');
      assert.equal(c.pool.getStats().ambiguousResults, 1);
    });

    test('a commit whose answer is lost is retried with its key and reported committed, once', async (_t) => {
      const c = client();
      const tx = await c.begin();
      await tx.execute(`INSERT INTO ${table} (v) VALUES ($1)`, ['lost-commit']);
      proxy.loseNextResponse(300);
      await tx.commit();
      assert.equal(tx.state, 'committed');
      assert.equal(await count('lost-commit'), 1);
      assert.ok(c.pool.getStats().retries >= 1);
    });

    test('a commit whose answer is lost, then the server is SIGKILLed and restarted: the retry learns from the key that it committed', async (t) => {
      const c = client({
        retry: { maxAttempts: 40, baseDelayMs: 100, maxDelayMs: 400, budget: false },
        circuitBreaker: { openMs: 200, maxOpenMs: 400 },
      });
      const tx = await c.begin();
      await tx.execute(`INSERT INTO ${table} (v) VALUES ($1)`, ['commit-restart']);
      proxy.loseNextResponse(60_000);
      const committing = tx.commit();
      // The server committed (the row is visible), but its answer is gone; now it dies.
      for (let i = 0; i < 100 && (await count('commit-restart')) === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await count('commit-restart'), 1, 'the server committed');
      const t0 = performance.now();
      await server.kill();
      proxy.resetAll();
      await server.start();
      await committing;
      t.diagnostic(`commit settled by its key ${(performance.now() - t0).toFixed(0)} ms after the kill (restart included)`);
      assert.equal(tx.state, 'committed');
      assert.equal(await count('commit-restart'), 1);
    });

    test('a repeated key is answered from the database after a restart, and by another server on the same database', async (_t) => {
      const rpc = (url: string) => createRpcClient(DatabaseService, createGrpcTransport({ baseUrl: url.replace(/^grpc:/, 'http:') }));
      const key = `k-${Date.now()}`;
      const req = { sql: `INSERT INTO ${table} (v) VALUES ('durable') RETURNING id`, idempotencyKey: key };
      const first = await rpc(server.grpcUrl).query(req);
      await server.restart();
      const again = await rpc(server.grpcUrl).query(req);
      assert.deepEqual(again.result?.rows, first.result?.rows, 'the restarted server replays the stored result');
      const other = new ServerProcess(await freePort(), databaseUrl);
      await other.start();
      try {
        const there = await rpc(other.grpcUrl).query(req);
        assert.deepEqual(there.result?.rows, first.result?.rows, 'another server replays it too');
      } finally {
        await other.kill();
      }
      assert.equal(await count('durable'), 1);
    });
  });
}
