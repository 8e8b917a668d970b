/**
 * The Node client's connection pool against real servers: bursts, saturation, acquisition
 * timeouts, health checks, recycling, shrinking, reconnecting to a killed and restarted server, and
 * closing without leaving handles behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { ConnectionError, ConnectionTimeoutError, createClient, type HeliosDBClient } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { freePort, ServerProcess } from './helpers/processes.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeEachBackend('client pool', (backend) => {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
  });
  after(async () => ts?.close());

  // The embedded engine runs one statement at a time: a smaller flood saturates the pool as well.
  const calls = backend.name === 'pglite' ? 4000 : 10_000;
  test(`${calls.toLocaleString('en')} calls in flight complete inside maxConnections, and the stats add up`, async () => {
    const client = createClient({
      url: ts.server.grpcUrl,
      minConnections: 2,
      maxConnections: 8,
      maxStreamsPerConnection: 100,
      acquisitionTimeoutMs: 60_000,
    });
    try {
      let peak = 0;
      const sampler = setInterval(() => (peak = Math.max(peak, client.pool.getStats().totalConnections)), 5);
      const results = await Promise.all(Array.from({ length: calls }, (_, i) => client.query<{ n: number }>('SELECT $1::int AS n', [i])));
      clearInterval(sampler);
      for (const [i, r] of results.entries()) assert.equal(r.rows[0].n, i);
      const s = client.pool.getStats();
      assert.ok(peak <= 8 && s.totalConnections <= 8, `pool stayed within maxConnections (peak ${peak})`);
      assert.ok(s.created > 2, 'the pool grew under load');
      assert.equal(s.inFlight, 0);
      assert.equal(s.waiting, 0);
      assert.equal(s.created - s.closed, s.totalConnections);
      assert.equal(s.activeConnections + s.idleConnections, s.totalConnections);
      assert.ok(s.poolMisses > 0, 'saturation was seen');
      assert.ok(s.poolHits + s.poolMisses >= calls, `every acquisition counted (${s.poolHits} + ${s.poolMisses})`);
      assert.equal(client.metrics.snapshot().Query.count, calls);
    } finally {
      await client.close();
    }
  });

  test('a saturated pool at its maximum fails waiting calls with ConnectionTimeoutError', async () => {
    const client = createClient({
      url: ts.server.grpcUrl,
      minConnections: 1,
      maxConnections: 1,
      maxStreamsPerConnection: 1,
      acquisitionTimeoutMs: 200,
    });
    try {
      // Hold the only call slot with a slow call.
      const slow = backend.name === 'postgresql' ? client.query('SELECT pg_sleep(1.5)') : holdPgliteSession(ts, client);
      // Wait until the slow call holds the only slot (under load its set-up can take a while).
      for (let i = 0; i < 500 && client.pool.getStats().inFlight === 0; i++) await sleep(10);
      assert.equal(client.pool.getStats().inFlight, 1, 'the slow call holds the slot');
      const t0 = Date.now();
      const err = await client.query('SELECT 1').then(
        () => assert.fail('should time out'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ConnectionTimeoutError && err instanceof ConnectionError, String(err));
      assert.ok(Date.now() - t0 >= 150, 'it waited acquisitionTimeoutMs');
      assert.equal(client.pool.getStats().acquisitionTimeouts, 1);
      await slow;
      assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1, 'the slot came back');
    } finally {
      await client.close();
    }
  });

  test('channels past maxLifetimeSeconds are recycled without cutting calls off; idle extras shrink away', async () => {
    const client = createClient({
      url: ts.server.grpcUrl,
      minConnections: 1,
      maxConnections: 6,
      maxStreamsPerConnection: 2,
      maxLifetimeSeconds: 0.4,
      idleTimeoutSeconds: 0.3,
    });
    try {
      const deadline = Date.now() + 1500;
      let done = 0;
      const worker = async () => {
        while (Date.now() < deadline) {
          await client.query('SELECT 1');
          done++;
        }
      };
      await Promise.all(Array.from({ length: 6 }, worker));
      assert.ok(done > 20);
      const s = client.pool.getStats();
      assert.ok(s.closed > 0, `channels were recycled (closed ${s.closed})`);
      for (let i = 0; i < 40 && client.pool.getStats().totalConnections > 1; i++) await sleep(100);
      const later = client.pool.getStats();
      assert.equal(later.totalConnections, 1, 'shrunk back to minConnections');
      assert.equal(later.created - later.closed, later.totalConnections);
    } finally {
      await client.close();
    }
  });
});

/** Holds PGlite's single session with an open transaction for 1.5 s through one client call slot. */
async function holdPgliteSession(ts: TestServer, client: HeliosDBClient): Promise<void> {
  const { transactionId } = await ts.db.beginTransaction({});
  const blocked = client.query('SELECT 1'); // waits on the server behind the transaction
  await sleep(1500);
  await ts.db.rollback({ transactionId });
  await blocked;
}

test('a killed and restarted server is reconnected without creating a new client; health checks replace dead channels', async () => {
  const server = new ServerProcess(await freePort(), undefined);
  await server.start();
  const client = createClient({ url: server.grpcUrl, minConnections: 2, healthCheckIntervalSeconds: 0.2, connectTimeoutMs: 500 });
  try {
    assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
    await server.kill();
    const down = await client.query('SELECT 1').then(
      () => 'ok',
      (e: unknown) => e,
    );
    assert.ok(down instanceof ConnectionError, `a call while the server is down fails with ConnectionError (${String(down)})`);
    for (let i = 0; i < 30 && client.pool.getStats().healthCheckFailures === 0; i++) await sleep(100);
    assert.ok(client.pool.getStats().healthCheckFailures > 0, 'health checks noticed the dead server');
    await server.start();
    let ok = false;
    for (let i = 0; i < 60 && !ok; i++) {
      ok = await client.query('SELECT 2 AS two').then(
        (r) => r.rows[0].two === 2,
        () => false,
      );
      if (!ok) await sleep(250);
    }
    assert.ok(ok, 'the same client works against the restarted server');
  } finally {
    await client.close();
    await server.kill();
  }
});

test('client.close() leaves no handle that keeps the process alive', { timeout: 60_000 }, async () => {
  const ts = await startTestServer({ name: 'pglite', databaseUrl: undefined }, { httpPort: -1 });
  try {
    const script = `
      import { createClient } from './src/client/index.ts';
      const c = createClient({ url: process.argv[1], minConnections: 5 });
      const r = await c.query('SELECT 41 + 1 AS n');
      if (r.rows[0].n !== 42) process.exit(3);
      await c.close();
      console.log('closed');
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, ts.server.grpcUrl], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
    clearTimeout(timer);
    assert.equal(signal, null, 'the process exited on its own (it was not killed after 20 s)');
    assert.equal(code, 0);
    assert.match(out, /closed/);
  } finally {
    await ts.close();
  }
});
