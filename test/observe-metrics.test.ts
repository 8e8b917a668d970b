/**
 * The server's `/metrics` on its HTTP listener, scraped and parsed as Prometheus text: calls and
 * latency histograms by method, errors by ErrorReason name, the database pool, open transactions
 * and open streams; behind authentication when the server requires it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClient, type HeliosDBClient, UniqueViolationError } from '@heliosdb/client';
import { register } from 'prom-client';
import { describeEachBackend } from './helpers/backends.js';
import { makeTestCerts } from './helpers/certs.js';
import { startSecureServer } from './helpers/security.js';
import { startTestServer, type TestServer, uniqueName } from './helpers/server.js';

/** One sample of the exposition text. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (0.0.4): `# HELP`/`# TYPE` lines and samples. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      types.set(type[1], type[2]);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    assert.ok(m, `a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    // prom-client writes NaN as `Nan`; Prometheus reads NaN in any case.
    assert.ok(!Number.isNaN(value) || /^nan$/i.test(m[3]), `a number: ${line}`);
    samples.push({ name: m[1], labels, value });
  }
  return { samples, types };
}

/** The value of the sample `name` whose labels include `labels`; 0 when there is none. */
function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found.reduce((sum, s) => sum + s.value, 0);
}

async function scrape(httpUrl: string, headers: Record<string, string> = {}): Promise<Sample[]> {
  const res = await fetch(`${httpUrl}/metrics`, { headers });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const { samples, types } = parseExposition(await res.text());
  assert.equal(types.get('heliosdb_calls_total'), 'counter');
  assert.equal(types.get('heliosdb_call_duration_seconds'), 'histogram');
  assert.equal(types.get('heliosdb_errors_total'), 'counter');
  assert.equal(types.get('heliosdb_open_transactions'), 'gauge');
  return samples;
}

const db = 'heliosdb.v1.DatabaseService';

describeEachBackend('server /metrics', (backend) => {
  let ts: TestServer;
  let client: HeliosDBClient;
  const table = uniqueName('observe_m');

  before(async () => {
    ts = await startTestServer(backend);
    client = createClient({ url: ts.server.grpcUrl, minConnections: 1 });
    await client.execute(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
    await client.execute(`INSERT INTO ${table} SELECT generate_series(1, 20)`);
  });

  after(async () => {
    await client?.execute(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
    await client?.close();
    await ts?.close();
  });

  test('calls, latency histograms and errors by method and reason', async () => {
    const before = await scrape(ts.server.httpUrl!);
    const ok = { service: db, method: 'Query', code: 'OK' };
    for (let i = 0; i < 3; i++) await client.query('SELECT 1 AS one');
    await assert.rejects(client.execute(`INSERT INTO ${table} VALUES (1)`), UniqueViolationError);
    await assert.rejects(ts.db.commit({ transactionId: 'no-such-transaction' }));
    const s = await scrape(ts.server.httpUrl!);

    assert.equal(sampleValue(s, 'heliosdb_calls_total', ok) - sampleValue(before, 'heliosdb_calls_total', ok), 3);
    const q = { service: db, method: 'Query' };
    const count = sampleValue(s, 'heliosdb_call_duration_seconds_count', q);
    assert.equal(count, sampleValue(s, 'heliosdb_calls_total', q), 'the histogram counts every call');
    assert.equal(sampleValue(s, 'heliosdb_call_duration_seconds_bucket', { ...q, le: '+Inf' }), count);
    assert.ok(sampleValue(s, 'heliosdb_call_duration_seconds_sum', q) > 0);
    const buckets = s.filter((x) => x.name === 'heliosdb_call_duration_seconds_bucket' && x.labels.method === 'Query');
    assert.ok(buckets.length > 10, 'latency buckets');
    assert.equal(buckets[0].labels.le, '0.0005');
    assert.equal(buckets.at(-2)?.labels.le, '30');
    assert.equal(await register.getSingleMetric('heliosdb_calls_total'), undefined, "not in prom-client's global registry");
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value, 'cumulative buckets');

    // A database error: no ErrorReason (its SQLSTATE says what), with its gRPC code.
    const dup = s.filter((x) => x.name === 'heliosdb_errors_total' && x.labels.method === 'Execute');
    assert.equal(dup.length, 1);
    assert.equal(dup[0].labels.reason, 'UNSPECIFIED');
    assert.equal(dup[0].labels.code, 'ALREADY_EXISTS');
    assert.equal(dup[0].value, 1);
    assert.equal(sampleValue(s, 'heliosdb_errors_total', { method: 'Commit', reason: 'TRANSACTION_NOT_FOUND' }), 1);
  });

  test('open transactions, open streams and the database pool', async () => {
    const tx = await client.begin();
    // In the transaction: the embedded engine has one connection, which the transaction holds.
    const stream = tx.stream<{ id: number }>(`SELECT id FROM ${table} ORDER BY id`, [], { batchRows: 1 });
    const it = stream[Symbol.asyncIterator]();
    assert.equal((await it.next()).value?.id, 1);
    const during = await scrape(ts.server.httpUrl!);
    assert.equal(sampleValue(during, 'heliosdb_open_transactions'), 1);
    assert.equal(sampleValue(during, 'heliosdb_open_streams', { method: 'StreamQuery' }), 1);
    const total = sampleValue(during, 'heliosdb_db_pool_connections', { state: 'total' });
    assert.ok(total >= 1, 'the pool holds the connections in use');
    assert.ok(sampleValue(during, 'heliosdb_db_pool_connections', { state: 'idle' }) <= total);
    assert.equal(during.filter((x) => x.name === 'heliosdb_db_pool_waiting').length, 1);
    assert.equal(sampleValue(during, 'heliosdb_db_pool_connections', { state: 'total' }), ts.server.poolStats().total);
    await it.return?.();
    await tx.rollback();
    const afterwards = await scrape(ts.server.httpUrl!);
    assert.equal(sampleValue(afterwards, 'heliosdb_open_transactions'), 0);
    assert.equal(sampleValue(afterwards, 'heliosdb_open_streams', { method: 'StreamQuery' }), 0);
    // Node's process metrics come with them.
    assert.ok(sampleValue(afterwards, 'process_resident_memory_bytes') > 0);
  });

  test('only GET: other methods get 405', async () => {
    const res = await fetch(`${ts.server.httpUrl}/metrics`, { method: 'POST', body: '' });
    assert.equal(res.status, 405);
    await res.body?.cancel();
  });
});

describeEachBackend('server /metrics with authentication required', (backend) => {
  const certs = makeTestCerts();
  let f: Awaited<ReturnType<typeof startSecureServer>>;
  let key: string;

  before(async () => {
    f = await startSecureServer(backend, certs, { tls: false });
    const user = `scraper_${f.id}`;
    await f.auth.createUser({ name: user, role: f.readerRole });
    ({ key } = await f.auth.createApiKey({ user, readOnly: true }));
  });

  after(async () => {
    await f?.close();
    certs.cleanup();
  });

  test('a scrape without credentials gets 401; with an API key it gets the metrics', async () => {
    const denied = await fetch(`${f.server.httpUrl}/metrics`);
    assert.equal(denied.status, 401);
    assert.equal(denied.headers.get('www-authenticate'), 'Bearer');
    const text = await denied.text();
    assert.ok(!text.includes('heliosdb_calls_total'), 'no metrics without credentials');
    const wrong = await fetch(`${f.server.httpUrl}/metrics`, { headers: { authorization: 'Bearer hdb_not_a_key' } });
    assert.equal(wrong.status, 401);
    await wrong.body?.cancel();
    const s = await scrape(f.server.httpUrl!, { authorization: `Bearer ${key}` });
    // The refused scrapes are counted, by the reason the authenticator gave.
    const refused = s.filter((x) => x.name === 'heliosdb_errors_total' && x.labels.service === 'heliosdb.Metrics');
    assert.equal(
      refused.reduce((n, x) => n + x.value, 0),
      2,
    );
    assert.ok(refused.every((x) => x.labels.code === 'UNAUTHENTICATED'));
  });
});
