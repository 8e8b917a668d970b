/**
 * The browser entry without a browser: it offers the same API as the Node entry, the package's
 * export conditions send browsers, workers, Deno and edge runtimes to it, what a browser cannot do
 * fails clearly, and the concurrency limiter that stands in for the pool behaves (waiting in line,
 * acquisition timeout, deadline, abort, close).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Code, ConnectError } from '@connectrpc/connect';
import { ConcurrencyLimiter } from '../src/client/transport/concurrency-limiter.js';
import { toHeliosError } from '../src/client/errors.js';
import * as nodeEntry from '@heliosdb/client';
import { concurrencyOf, connectBaseUrl } from '../src/client/transport/connect-parts.js';
import * as webEntry from '@heliosdb/client/web';

const root = new URL('..', import.meta.url);
const source = (path: string) => readFileSync(new URL(path, root), 'utf8');

test('the browser entry exports the same API as the Node entry', () => {
  assert.deepEqual(Object.keys(webEntry).sort(), Object.keys(nodeEntry).sort(), 'the same runtime exports');
  // Types included: both entries re-export one shared module, and add only their own client.
  for (const entry of ['src/client/web.ts', 'src/client/index.ts']) {
    const text = source(entry);
    assert.match(text, /^export \* from '\.\/public-api\.js';$/m, `${entry} re-exports src/client/public-api.ts`);
    const own = [...text.matchAll(/^export (?:class|function|const) (\w+)/gm)].map((m) => m[1]).sort();
    assert.deepEqual(own, ['HeliosDBClient', 'createClient'], `${entry} declares only its client`);
  }
  assert.notEqual(webEntry.HeliosDBClient, nodeEntry.HeliosDBClient, 'each entry has its own client class');
  assert.equal(webEntry.UniqueViolationError, nodeEntry.UniqueViolationError, 'one error hierarchy');
});

test('package exports: browser, workerd, edge-light and deno get the web build; ./web is a subpath', () => {
  const pkg = JSON.parse(source('src/client/package.json')) as { exports: Record<string, Record<string, unknown>> };
  const dot = pkg.exports['.'];
  const web = { types: './dist/esm/src/client/web.d.ts', default: './dist/esm/src/client/web.js' };
  const keys = Object.keys(dot);
  for (const condition of ['browser', 'workerd', 'edge-light', 'deno']) {
    assert.deepEqual(dot[condition], web, `"${condition}" points to the web build`);
    assert.ok(
      keys.indexOf(condition) < keys.indexOf('import') && keys.indexOf(condition) < keys.indexOf('require'),
      `"${condition}" comes before import/require`,
    );
  }
  assert.deepEqual(pkg.exports['./web'], {
    import: web,
    require: { types: './dist/cjs/src/client/web.d.ts', default: './dist/cjs/src/client/web.js' },
    default: './dist/esm/src/client/web.js',
  });
});

test('browser entry: grpc:// URLs and Node-only options fail with a clear HeliosDBError', () => {
  assert.throws(
    () => webEntry.createClient('grpcs://db.example.com'),
    (err: unknown) => err instanceof webEntry.HeliosDBError && err.code === 'UNSUPPORTED_IN_BROWSER',
  );
  assert.throws(
    () => webEntry.createClient('grpc://127.0.0.1:7700'),
    (err: unknown) =>
      err instanceof webEntry.HeliosDBError && err.code === 'UNSUPPORTED_IN_BROWSER' && /cannot use native gRPC/.test(err.message),
  );
  assert.throws(
    () => webEntry.createClient({ url: 'http://127.0.0.1:7701', tls: { rejectUnauthorized: false } } as webEntry.ConnectionConfig),
    (err: unknown) =>
      err instanceof webEntry.HeliosDBError &&
      err.code === 'UNSUPPORTED_IN_BROWSER' &&
      /tls is not supported in a browser/.test(err.message),
  );
  for (const config of [{ ssl: { ca: 'PEM' } }, { ssl: { mode: 'require' } }, { sslMode: 'verify-ca' }]) {
    assert.throws(
      () => webEntry.createClient({ url: 'https://db.example.com', ...config } as webEntry.ConnectionConfig),
      (err: unknown) =>
        err instanceof webEntry.HeliosDBError && err.code === 'UNSUPPORTED_IN_BROWSER' && /not supported in a browser/.test(err.message),
      JSON.stringify(config),
    );
  }
  assert.throws(
    () => webEntry.createClient('ftp://x'),
    (err: unknown) => err instanceof webEntry.HeliosDBError && err.code === 'INVALID_CONFIG',
  );
  assert.throws(() => webEntry.createClient({ url: 'http://x', protocol: 'soap' as 'connect' }), RangeError);
});

test('browser entry: the default URL is the HTTP listener on this machine', async () => {
  const saved = process.env.HELIOSDB_URL;
  delete process.env.HELIOSDB_URL;
  try {
    const c = webEntry.createClient();
    assert.equal(c.config.url, 'http://127.0.0.1:7701');
    assert.equal(c.config.protocol, 'connect');
    await c.close();
    const n = nodeEntry.createClient({ url: 'http://127.0.0.1:7701/prefix/', minConnections: 0 });
    assert.equal(n.config.url, 'http://127.0.0.1:7701/prefix/', 'the Node entry takes http:// URLs too');
    await n.close();
  } finally {
    if (saved !== undefined) process.env.HELIOSDB_URL = saved;
  }
});

test('connect base URL and concurrency', () => {
  assert.equal(connectBaseUrl('http://127.0.0.1:7701'), 'http://127.0.0.1:7701');
  assert.equal(connectBaseUrl('https://db.example.com/heliosdb/'), 'https://db.example.com/heliosdb');
  assert.throws(() => connectBaseUrl('http://x/?a=1'), /query or fragment/);
  assert.throws(() => connectBaseUrl('not a url'), /invalid url/);
  const config = nodeEntry.resolveConfig({ maxConnections: 4, maxStreamsPerConnection: 8 });
  assert.equal(concurrencyOf(config), 32, 'maxConnections * maxStreamsPerConnection');
  assert.equal(concurrencyOf({ ...config, maxConcurrentCalls: 3 }), 3, 'maxConcurrentCalls wins');
  assert.throws(() => nodeEntry.resolveConfig({ maxConcurrentCalls: -1 }), RangeError);
  assert.throws(() => nodeEntry.resolveConfig({ httpVersion: '3' as '2' }), RangeError);
});

test('limiter: calls beyond the limit wait in line and get slots in order', async () => {
  const limiter = new ConcurrencyLimiter({ maxConcurrentCalls: 2, acquisitionTimeoutMs: 1000 });
  assert.equal(limiter.acquire(), undefined, 'a free slot is taken at once');
  assert.equal(limiter.acquire(), undefined);
  const order: number[] = [];
  const waits = [1, 2, 3].map((i) => limiter.acquire()!.then(() => order.push(i)));
  assert.equal(limiter.getStats().waiting, 3);
  assert.equal(limiter.getStats().inFlight, 2);
  limiter.release();
  limiter.release();
  await Promise.all(waits.slice(0, 2));
  limiter.release();
  await waits[2];
  assert.deepEqual(order, [1, 2, 3], 'first come, first served');
  const s = limiter.getStats();
  assert.deepEqual([s.inFlight, s.waiting, s.poolHits, s.poolMisses, s.acquisitionTimeouts], [2, 0, 2, 3, 0]);
  assert.deepEqual(
    [s.totalConnections, s.activeConnections, s.idleConnections, s.created, s.closed, s.healthCheckFailures],
    [0, 0, 0, 0, 0, 0],
  );
  limiter.release();
  limiter.release();
  assert.equal(limiter.getStats().inFlight, 0);
});

test('limiter: a waiting call gives up after acquisitionTimeoutMs with ConnectionTimeoutError', async () => {
  const limiter = new ConcurrencyLimiter({ maxConcurrentCalls: 1, acquisitionTimeoutMs: 50 });
  limiter.acquire();
  const t0 = performance.now();
  await assert.rejects(limiter.acquire()!, (e: unknown) => {
    assert.ok(e instanceof nodeEntry.ConnectionTimeoutError, String(e));
    assert.equal(e.code, 'ACQUISITION_TIMEOUT');
    assert.match(e.message, /acquisitionTimeoutMs/);
    return true;
  });
  assert.ok(performance.now() - t0 >= 45, 'waited about acquisitionTimeoutMs');
  assert.equal(limiter.getStats().acquisitionTimeouts, 1);
  assert.equal(limiter.getStats().waiting, 0);
});

test('limiter: the call deadline and its AbortSignal end the wait (TimeoutError, CancelledError)', async () => {
  const limiter = new ConcurrencyLimiter({ maxConcurrentCalls: 1, acquisitionTimeoutMs: 5000 });
  limiter.acquire();
  await assert.rejects(limiter.acquire(undefined, 30)!, (e: unknown) => {
    assert.ok(toHeliosError(e) instanceof nodeEntry.TimeoutError, `deadline: ${String(e)}`);
    return true;
  });
  const ac = new AbortController();
  const waiting = limiter.acquire(ac.signal)!;
  ac.abort();
  await assert.rejects(waiting, (e: unknown) => {
    assert.ok(e instanceof ConnectError && e.code === Code.Canceled, String(e));
    assert.ok(toHeliosError(e) instanceof nodeEntry.CancelledError);
    return true;
  });
  const gone = new AbortController();
  gone.abort();
  assert.throws(
    () => limiter.acquire(gone.signal),
    (e: unknown) => toHeliosError(e) instanceof nodeEntry.CancelledError,
  );
  assert.equal(limiter.getStats().acquisitionTimeouts, 0, 'neither counts as an acquisition timeout');
  assert.equal(limiter.getStats().waiting, 0);
});

test('limiter: close fails the waiting calls and refuses new ones', async () => {
  const limiter = new ConcurrencyLimiter({ maxConcurrentCalls: 1, acquisitionTimeoutMs: 5000 });
  limiter.acquire();
  const waiting = limiter.acquire()!;
  const closed = limiter.close(200);
  await assert.rejects(waiting, (e: unknown) => e instanceof nodeEntry.HeliosDBError && e.code === 'CLIENT_CLOSED');
  limiter.release();
  await closed;
  assert.throws(
    () => limiter.acquire(),
    (e: unknown) => e instanceof nodeEntry.HeliosDBError && e.code === 'CLIENT_CLOSED',
  );
});
