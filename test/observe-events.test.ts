/**
 * The client's typed events against a real server and a closed port: connections opened and
 * closed, acquisition timeouts, retries and circuit-breaker transitions, on native gRPC and on
 * Connect; and getStats() with pg-pool's names beside its own.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { type ClientEventMap, ConnectionTimeoutError, createClient, type HeliosDBClient } from '@heliosdb/client';
import { CircuitBreaker } from '../src/client/circuit-breaker.js';
import { describeEachBackend } from './helpers/backends.js';
import { startTestServer, type TestServer, waitFor } from './helpers/server.js';

/** Collects every event of `client`. */
function record(client: HeliosDBClient) {
  const seen: { [K in keyof ClientEventMap]: ClientEventMap[K][] } = {
    connectionOpened: [],
    connectionClosed: [],
    acquisitionTimeout: [],
    retry: [],
    circuitStateChange: [],
  };
  for (const name of Object.keys(seen) as (keyof ClientEventMap)[]) client.events.on(name, (e) => (seen[name] as unknown[]).push(e));
  return seen;
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describeEachBackend('client events', (backend) => {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer(backend);
  });
  after(async () => {
    await ts?.close();
  });

  test('connections opened and closed (native gRPC), with the pool counters under pg-pool names', async () => {
    const client = createClient({ url: ts.server.grpcUrl, minConnections: 0 });
    const seen = record(client);
    await client.query('SELECT 1');
    assert.equal(seen.connectionOpened.length, 1);
    assert.equal(seen.connectionOpened[0].endpoint, `grpc://${new URL(ts.server.grpcUrl).host}`);
    const s = client.pool.getStats();
    assert.equal(s.totalCount, s.totalConnections);
    assert.equal(s.totalCount, 1);
    assert.equal(s.idleCount, s.idleConnections);
    assert.equal(s.waitingCount, s.waiting);
    await client.close();
    assert.deepEqual(
      seen.connectionClosed.map((e) => [e.connectionId, e.reason]),
      [[seen.connectionOpened[0].connectionId, 'close']],
    );
  });

  test('a connection idle past idleTimeoutSeconds is closed with reason idle', async () => {
    const client = createClient({ url: ts.server.grpcUrl, minConnections: 0, idleTimeoutSeconds: 0.3 });
    const seen = record(client);
    try {
      await client.query('SELECT 1');
      assert.equal(seen.connectionOpened.length, 1);
      assert.ok(await waitFor(() => seen.connectionClosed.length > 0, 20_000), 'the idle connection was closed');
      assert.deepEqual(
        seen.connectionClosed.map((e) => [e.connectionId, e.reason]),
        [[seen.connectionOpened[0].connectionId, 'idle']],
      );
    } finally {
      await client.close();
    }
  });

  for (const kind of ['grpc', 'connect'] as const) {
    test(`an acquisition timeout is an event (${kind})`, async () => {
      const url = kind === 'grpc' ? ts.server.grpcUrl : ts.server.httpUrl!;
      const client = createClient({
        url,
        minConnections: 0,
        maxConnections: 1,
        maxStreamsPerConnection: 1,
        maxConcurrentCalls: 1,
        acquisitionTimeoutMs: 50,
      });
      const seen = record(client);
      try {
        // One stream holds the only call slot until it is read to the end.
        const stream = client.stream('SELECT g FROM generate_series(1, 100) g', [], { batchRows: 1 });
        const it = stream[Symbol.asyncIterator]();
        await it.next();
        await assert.rejects(
          client.query('SELECT 2'),
          (e: unknown) => e instanceof ConnectionTimeoutError && e.code === 'ACQUISITION_TIMEOUT',
        );
        assert.deepEqual(seen.acquisitionTimeout, [{ timeoutMs: 50, waiting: 0 }]);
        assert.equal(client.pool.getStats().acquisitionTimeouts, 1);
        await it.return?.();
      } finally {
        await client.close();
      }
    });
  }
});

for (const kind of ['grpc', 'http'] as const) {
  test(`retries and the circuit opening are events (${kind}:// to a closed port)`, async () => {
    const port = await closedPort();
    const client = createClient({
      url: `${kind}://127.0.0.1:${port}`,
      minConnections: 0,
      connectTimeoutMs: 2000,
      retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 2 },
      circuitBreaker: { failureThreshold: 2, openMs: 60_000, maxOpenMs: 60_000 },
    });
    const seen = record(client);
    try {
      await assert.rejects(client.query('SELECT 1'));
      assert.equal(seen.retry.length, 1);
      assert.equal(seen.retry[0].method, 'Query');
      assert.equal(seen.retry[0].attempt, 2);
      assert.ok(seen.retry[0].delayMs >= 0);
      assert.ok(seen.retry[0].error, 'the failure that caused it');
      assert.deepEqual(
        seen.circuitStateChange.map((e) => [e.from, e.to]),
        [['closed', 'open']],
      );
      assert.match(seen.circuitStateChange[0].endpoint, new RegExp(`127\\.0\\.0\\.1:${port}`));
      const ep = client.pool.getStats().endpoints[0];
      assert.equal(ep.circuit, 'open');
    } finally {
      await client.close();
    }
  });
}

test('every circuit transition is reported: open, half-open for the probe, closed again', () => {
  let now = 0;
  const b = new CircuitBreaker({ failureThreshold: 1, openMs: 100, maxOpenMs: 1000 }, () => now);
  const moves: string[] = [];
  b.onTransition = (from, to) => moves.push(`${from}->${to}`);
  b.onFailure();
  assert.equal(b.tryAcquire(), false);
  now = 150;
  assert.equal(b.tryAcquire(), true);
  b.onFailure();
  now = 500;
  assert.equal(b.tryAcquire(), true);
  b.onSuccess();
  assert.deepEqual(moves, ['closed->open', 'open->half-open', 'half-open->open', 'open->half-open', 'half-open->closed']);
});

test('a listener that throws changes nothing; off() and once() remove listeners', async () => {
  const { ClientEvents } = await import('@heliosdb/client');
  const events = new ClientEvents();
  const got: number[] = [];
  events.on('retry', () => {
    throw new Error('listener bug');
  });
  const off = events.on('retry', (e) => got.push(e.attempt));
  events.once('retry', (e) => got.push(-e.attempt));
  events.emit('retry', { method: 'Query', attempt: 2, delayMs: 1, error: undefined });
  off();
  events.emit('retry', { method: 'Query', attempt: 3, delayMs: 1, error: undefined });
  assert.deepEqual(got, [2, -2]);
});
