/**
 * The client's metrics as OpenTelemetry metrics: a meter provider registered in this process
 * (sdk-metrics with a pull reader), a real server, and the collected data: the operation-duration
 * histogram with its buckets and attributes, the retry and acquisition-timeout counters, the
 * pool gauges.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { type DataPoint, type Histogram, MeterProvider, MetricReader, type MetricData } from '@opentelemetry/sdk-metrics';
import { createClient, type HeliosDBClient } from '@heliosdb/client';
import { durationBuckets } from '../src/client/telemetry/client-meter.js';
import { describeEachBackend } from './helpers/backends.js';
import { startTestServer, type TestServer } from './helpers/server.js';

class PullReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

const reader = new PullReader();
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

async function collect(): Promise<Map<string, MetricData>> {
  const { resourceMetrics } = await reader.collect();
  const out = new Map<string, MetricData>();
  for (const scope of resourceMetrics.scopeMetrics) {
    if (scope.scope.name !== '@heliosdb/client') continue;
    for (const m of scope.metrics) out.set(m.descriptor.name, m);
  }
  return out;
}

const points = <T>(m: MetricData | undefined, attrs: Record<string, unknown> = {}): DataPoint<T>[] =>
  ((m?.dataPoints ?? []) as DataPoint<T>[]).filter((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v));

describeEachBackend('client OpenTelemetry metrics', (backend) => {
  let ts: TestServer;
  let client: HeliosDBClient;
  before(async () => {
    ts = await startTestServer(backend);
    client = createClient({ url: ts.server.grpcUrl, minConnections: 1 });
  });
  after(async () => {
    await client?.close();
    await ts?.close();
  });

  test('db.client.operation.duration: a histogram per operation, with buckets, errors by SQLSTATE', async () => {
    for (let i = 0; i < 3; i++) await client.query('SELECT $1::int AS n', [i]);
    await assert.rejects(client.query('SELECT 1/0'));
    const m = await collect();
    const duration = m.get('db.client.operation.duration');
    assert.ok(duration, 'the histogram is exported');
    assert.equal(duration.descriptor.unit, 's');
    const port = Number(new URL(ts.server.grpcUrl).port);
    const ok = points<Histogram>(duration, {
      'db.operation.name': 'SELECT',
      'db.system.name': 'postgresql',
      'server.port': port,
      'error.type': undefined,
    });
    assert.equal(ok.length, 1);
    assert.equal(ok[0].value.count, 3);
    assert.deepEqual(ok[0].value.buckets.boundaries, durationBuckets);
    assert.equal(
      ok[0].value.buckets.counts.reduce((a, b) => a + b, 0),
      3,
    );
    assert.equal(ok[0].attributes['server.address'], '127.0.0.1');
    const failed = points<Histogram>(duration, { 'error.type': '22012', 'server.port': port });
    assert.equal(failed.length, 1);
    assert.equal(failed[0].value.count, 1);
    assert.equal(failed[0].attributes['db.response.status_code'], '22012');
  });

  test('pool gauges: connections by state, pending requests, open transactions and streams', async () => {
    const tx = await client.begin();
    const m = await collect();
    const pool = { 'db.client.connection.pool.name': ts.server.grpcUrl };
    const conns = m.get('db.client.connection.count');
    const stats = client.pool.getStats();
    const idle = points<number>(conns, { ...pool, 'db.client.connection.state': 'idle' });
    const used = points<number>(conns, { ...pool, 'db.client.connection.state': 'used' });
    assert.equal(idle.length, 1);
    assert.equal(idle[0].value + used[0].value, stats.totalConnections);
    assert.equal(points<number>(m.get('db.client.connection.pending_requests'), pool)[0].value, 0);
    assert.equal(points<number>(m.get('heliosdb.client.transactions.open'), pool)[0].value, 1);
    assert.equal(points<number>(m.get('heliosdb.client.streams.open'), pool)[0].value, 0);
    assert.equal(points<number>(m.get('heliosdb.client.calls.in_flight'), pool)[0].value, 0);
    await tx.rollback();
    await client.query('SELECT 42 AS cached', [], { cache: { ttlMs: 60_000 } });
    await client.query('SELECT 42 AS cached', [], { cache: { ttlMs: 60_000 } });
    const after = await collect();
    assert.equal(points<number>(after.get('heliosdb.client.transactions.open'), pool)[0].value, 0);
    const lookups = after.get('heliosdb.client.cache.lookups');
    assert.equal(points<number>(lookups, { ...pool, 'heliosdb.cache.result': 'hit' })[0].value, 1);
    assert.equal(points<number>(lookups, { ...pool, 'heliosdb.cache.result': 'miss' })[0].value, 1);
  });
});

test('retries are counted, by method', async () => {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  const url = `grpc://127.0.0.1:${port}`;
  const c = createClient({ url, minConnections: 0, connectTimeoutMs: 2000, retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 } });
  await assert.rejects(c.query('SELECT 1'));
  const m = await collect();
  const pool = { 'db.client.connection.pool.name': url };
  assert.equal(points<number>(m.get('heliosdb.client.retries'), { ...pool, 'rpc.method': 'Query' })[0]?.value, 2);
  assert.equal(points<number>(m.get('db.client.connection.count'), pool).length, 2);
  await c.close();
});
