/**
 * The client against broken connections, through the fault-injecting proxy on loopback, on both
 * backends: a stream cut in the middle (an error, never a duplicate row) and before its first row
 * (sent again), a black-holed connection (fails within the deadline; keepalive finds the dead
 * connection and the next call goes out on a fresh one), and an outage (retries stay within the
 * retry budget, the circuit opens, calls fail fast, and it closes again once the server is back).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ConnectionError, type ConnectionConfig, createClient, type HeliosDBClient, TimeoutError } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { startTestServer, type TestServer, waitFor } from './helpers/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeEachBackend('faults on the connection', (backend) => {
  let ts: TestServer;
  let proxy: FaultProxy;
  const clients: HeliosDBClient[] = [];
  const client = (config: ConnectionConfig = {}) => {
    const c = createClient({ url: proxy.grpcUrl, minConnections: 1, maxConnections: 1, ...config });
    clients.push(c);
    return c;
  };

  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await ts?.close();
  });
  const withProxy = async (fn: () => Promise<void>) => {
    proxy = await FaultProxy.start(ts.server.port);
    try {
      await fn();
    } finally {
      await proxy.close();
    }
  };

  test('a stream cut in the middle fails with a ConnectionError after the rows already delivered: none twice, none invented', () =>
    withProxy(async () => {
      const c = client({ keepaliveIntervalMs: 0 });
      await c.query('SELECT 1');
      proxy.cutAfter(300_000, 'down');
      let last = 0;
      let n = 0;
      const stream = c.stream<{ g: number }>('SELECT g::int4 AS g FROM generate_series(1, 200000) g', [], { batchRows: 1000 });
      const err = await (async () => {
        for await (const row of stream) {
          assert.equal(row.g, last + 1, 'rows arrive in order, none repeated or skipped');
          last = row.g;
          n++;
        }
      })().then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof ConnectionError, `the stream fails with a ConnectionError (${String(err)})`);
      assert.ok(n > 0 && n < 200_000, `some rows came before the cut (${n})`);
      assert.equal(c.pool.getStats().retries, 0, 'a stream that delivered rows is never sent again');
      assert.deepEqual((await c.query('SELECT 2 AS two')).rows, [{ two: 2 }], 'the client works afterwards');
    }));

  test('a stream cut before its first row is sent again, transparently, and read whole', () =>
    withProxy(async () => {
      const c = client({ keepaliveIntervalMs: 0 });
      await c.query('SELECT 1');
      proxy.cutAfter(1, 'down');
      let last = 0;
      for await (const row of c.stream<{ g: number }>('SELECT g::int4 AS g FROM generate_series(1, 50000) g', [], { batchRows: 1000 })) {
        assert.equal(row.g, last + 1);
        last = row.g;
      }
      assert.equal(last, 50_000);
      assert.ok(c.pool.getStats().retries >= 1, 'it was sent again');
      assert.ok(proxy.stats.resets >= 1);
    }));

  test('a black-holed connection fails within the deadline; keepalive finds it dead and the next call succeeds on a fresh connection', (t) =>
    withProxy(async () => {
      const keepaliveIntervalMs = 1000;
      const keepaliveTimeoutMs = 1000;
      const c = client({ keepaliveIntervalMs, keepaliveTimeoutMs });
      await c.query('SELECT 1');
      const acceptedBefore = proxy.stats.accepted;
      proxy.blackhole();
      const deadline = 800;
      let t0 = performance.now();
      await assert.rejects(c.query('SELECT 1', [], { timeoutMs: deadline }), TimeoutError);
      const failedAfter = performance.now() - t0;
      assert.ok(failedAfter < deadline + keepaliveTimeoutMs, `failed after ${failedAfter.toFixed(0)} ms`);
      // No deadline now: the call waits on the dead connection until keepalive closes it, then is
      // sent again (a read) on a new connection.
      t0 = performance.now();
      assert.deepEqual((await c.query('SELECT 2 AS two')).rows, [{ two: 2 }]);
      const recovered = performance.now() - t0;
      assert.ok(recovered < keepaliveIntervalMs + keepaliveTimeoutMs + 2000, `recovered after ${recovered.toFixed(0)} ms`);
      assert.ok(proxy.stats.accepted > acceptedBefore, 'over a new TCP connection');
      t.diagnostic(
        `black hole: the call with a ${deadline} ms deadline failed after ${failedAfter.toFixed(0)} ms; the next call (no deadline) succeeded after ${recovered.toFixed(0)} ms (keepalive ${keepaliveIntervalMs} + ${keepaliveTimeoutMs} ms)`,
      );
    }));

  test('during an outage retries stay within the retry budget, the circuit opens and calls fail fast; it closes when the server is back', (t) =>
    withProxy(async () => {
      const c = client({ keepaliveIntervalMs: 0, circuitBreaker: { failureThreshold: 5, openMs: 500, maxOpenMs: 1000 } });
      await c.query('SELECT 1');
      await proxy.down();
      const calls = 60;
      const t0 = performance.now();
      const results = await Promise.allSettled(
        Array.from({ length: calls }, async (_, i) => {
          await sleep(i * 5);
          return c.query('SELECT 1');
        }),
      );
      const elapsed = performance.now() - t0;
      assert.ok(
        results.every((r) => r.status === 'rejected' && r.reason instanceof ConnectionError),
        'every call fails with a ConnectionError',
      );
      const s = c.pool.getStats();
      const ep = s.endpoints[0];
      const attempts = c.metrics.snapshot().Query.count - 1;
      t.diagnostic(
        `outage: ${calls} calls, ${attempts} attempts reached the transport, ${s.retries} retries, ${s.retriesThrottled} throttled, circuit ${ep.circuit} (opened ${ep.circuitOpened}x, ${ep.circuitRejected} rejected), retry tokens ${ep.retryTokens}, all failed within ${elapsed.toFixed(0)} ms`,
      );
      assert.ok(s.retries <= 5, `retries within the budget (10 tokens, retries while more than 5 remain): ${s.retries}`);
      assert.ok(ep.circuitOpened >= 1, 'the circuit opened');
      assert.ok(ep.circuitRejected > 0, 'calls were refused while it was open');
      assert.ok(elapsed < 3000, `the calls failed fast (${elapsed.toFixed(0)} ms)`);
      // Back up: the pool's probe closes the circuit without a caller's call.
      await proxy.up();
      const t1 = performance.now();
      assert.ok(await waitFor(() => c.pool.getStats().endpoints[0].circuit === 'closed', 10_000), 'the circuit closes again');
      const closedAfter = performance.now() - t1;
      assert.deepEqual((await c.query('SELECT 3 AS three')).rows, [{ three: 3 }]);
      t.diagnostic(`outage: circuit closed ${closedAfter.toFixed(0)} ms after the server came back`);
    }));
});
