/**
 * Limits that hold before authentication, on both listeners: the connection cap, the idle and
 * slow-header timeouts, the per-connection stream limit, and the per-server cap on health Watch
 * streams. Each server runs `startServer` (PGlite, ports 0) in a child process of its own, so the
 * memory and descriptor numbers printed here are the server's alone.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import type http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { Health, HealthCheckRequestSchema, HealthCheckResponseSchema } from '../gen/grpc/health/v1/health_pb.js';
import { createHealthService, HealthState } from '../src/server/health-service.js';
import { type LimitedGrpcServer, startGrpcListener } from '../src/server/listeners/grpc-listener.js';
import { type HttpListener, startHttpListener } from '../src/server/listeners/http-listener.js';
import { grpcServerCredentials, loadServerTls } from '../src/server/tls.js';
import {
  grpcFrame,
  h1Post,
  h2Session,
  rawH2Flood,
  silentSocket,
  type SilentSocket,
  waitFor,
  watchStream,
  type WatchStream,
} from './helpers/h2-clients.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';
import { type LimitsServer, type ServerStats, startLimitsServer } from './helpers/limits-server.js';

const idleMs = 1000;
const small = { maxConnections: 20, idleConnectionTimeoutMs: idleMs, maxConcurrentStreams: 10 };
const large = { maxConnections: 300, idleConnectionTimeoutMs: 60_000, maxConcurrentStreams: 250 };
const RESOURCE_EXHAUSTED = 8;
const kib = (bytes: number) => Math.round(bytes / 102.4) / 10;
const mib = (bytes: number) => Math.round(bytes / 104857.6) / 10;

/** Polls the server's stats until `ok` holds (at most `timeoutMs`); returns the last ones. */
async function statsWhen(server: LimitsServer, ok: (s: ServerStats) => boolean, timeoutMs: number): Promise<ServerStats> {
  const t0 = Date.now();
  let s = await server.stats();
  while (!ok(s) && Date.now() - t0 < timeoutMs) {
    await new Promise((r) => setTimeout(r, 20));
    s = await server.stats();
  }
  return s;
}

/** Health/Check over grpc-js on its own connection (TLS when given a CA): the status code (0 when served). */
function grpcCheck(port: number, ca?: string): Promise<number> {
  const credentials = ca ? grpc.credentials.createSsl(Buffer.from(ca)) : grpc.credentials.createInsecure();
  const client = new grpc.Client(`127.0.0.1:${port}`, credentials, { 'grpc.use_local_subchannel_pool': 1 });
  const request = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema));
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (m: Uint8Array) => Buffer.from(m),
      (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
      request,
      { deadline: Date.now() + 3000 },
      (err) => {
        client.close();
        resolve(err ? err.code : 0);
      },
    );
  });
}

/** Health/Check with the Connect protocol over HTTP/1.1 (TLS when given a CA): the Connect code (0 when served). */
async function connectCheck(port: number, ca?: string): Promise<number> {
  const transport = ca
    ? createConnectTransport({ baseUrl: `https://127.0.0.1:${port}`, httpVersion: '1.1', nodeOptions: { ca, servername: 'localhost' } })
    : createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: '1.1' });
  const client = createClient(Health, transport);
  try {
    await client.check({}, { timeoutMs: 3000 });
    return 0;
  } catch (e) {
    return (e as { code?: number }).code ?? -1;
  }
}

function whenClosed(emitter: { once(event: 'close', fn: () => void): unknown }): Promise<number> {
  return new Promise((resolve) => emitter.once('close', () => resolve(Date.now())));
}

function perItem(before: ServerStats, after: ServerStats, n: number): string {
  return `rss +${kib((after.rss - before.rss) / n)} KiB, heap +${kib((after.heapUsed - before.heapUsed) / n)} KiB, external +${kib((after.external - before.external) / n)} KiB each; fds ${before.fds} -> ${after.fds}`;
}

const certs: TestCerts = makeTestCerts();
let a: LimitsServer;
let b: LimitsServer;
/**
 * TLS listeners (the Health service alone, no database) whose connection cap is taken by TLS
 * handshakes that never finish.
 */
const tlsMaxConnections = 4;
let tlsGrpc: LimitedGrpcServer;
let tlsHttp: HttpListener;
const tlsPorts = { grpc: 0, http: 0 };
const tlsHeld: SilentSocket[] = [];
const tlsOver: SilentSocket[] = [];
before(async () => {
  const log = pino({ level: 'silent' });
  const serverTls = loadServerTls({ tlsCert: certs.server.certFile, tlsKey: certs.server.keyFile })!;
  const limits = { ...large, maxConnections: tlsMaxConnections };
  const services = [{ service: Health, impl: createHealthService(new HealthState(new Set())) }];
  const common = { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20, limits };
  ({ server: tlsGrpc, port: tlsPorts.grpc } = await startGrpcListener(
    { ...common, credentials: grpcServerCredentials(serverTls) },
    services,
    log,
  ));
  tlsHttp = await startHttpListener({ ...common, corsOrigins: [], tls: serverTls }, services, log);
  tlsPorts.http = tlsHttp.port;
  // The 10 s handshake limit runs while the other tests do; the last test looks at the outcome.
  for (const port of [tlsPorts.grpc, tlsPorts.http]) {
    tlsHeld.push(...(await Promise.all(Array.from({ length: tlsMaxConnections }, () => silentSocket(port)))));
  }
  await waitFor(() => tlsGrpc.connectionCount === tlsMaxConnections, 5000, 'the TLS listener to accept the held connections');
  await new Promise((r) => setTimeout(r, 50));
  for (const port of [tlsPorts.grpc, tlsPorts.http, tlsPorts.grpc, tlsPorts.http]) tlsOver.push(await silentSocket(port));
  [a, b] = await Promise.all([startLimitsServer(small), startLimitsServer(large)]);
});
after(async () => {
  tlsGrpc?.forceShutdown();
  await Promise.all([a?.close(), b?.close(), tlsHttp?.close(0)]);
  certs.cleanup();
});

describe('idle and slow-header timeouts', () => {
  test('a connection that sends nothing, or HTTP/2 without a request, is closed after the idle timeout on both listeners', async () => {
    const silent = await Promise.all([silentSocket(a.grpcPort), silentSocket(a.httpPort)]);
    const sessions = await Promise.all([h2Session(a.grpcPort), h2Session(a.httpPort)]);
    const t0 = Date.now();
    const sessionClosed = sessions.map(whenClosed);
    await waitFor(() => silent.every((s) => s.closedAt !== undefined), 5000, 'the silent sockets to be closed');
    const closedAfter = [...silent.map((s) => s.closedAt! - s.openedAt), ...(await Promise.all(sessionClosed)).map((t) => t - t0)];
    console.log(`silent socket grpc/http, h2 session grpc/http closed after ${closedAfter.join(', ')} ms (idle ${idleMs} ms)`);
    for (const ms of closedAfter) assert.ok(ms >= idleMs - 100 && ms < idleMs + 2500, `closed after ${ms} ms`);
  });

  test('idle HTTP/1.1 keep-alive and HTTP/2 connections are closed after the idle timeout, but not while a call runs', async () => {
    const [sessionGrpc, sessionHttp] = await Promise.all([h2Session(a.grpcPort), h2Session(a.httpPort)]);
    const closed = [sessionGrpc, sessionHttp].map(whenClosed);
    const watches = [watchStream(sessionGrpc), watchStream(sessionHttp)];
    // HTTP/1.1: one quick call then idle; one call that runs longer than the idle timeout.
    const quick = await h1Post(a.httpPort, '/grpc.health.v1.Health/Check', {});
    assert.equal(quick.status, 200);
    const slow = h1Post(a.httpPort, '/heliosdb.v1.DatabaseService/Query', { sql: 'SELECT pg_sleep(1.6)' });
    await new Promise((r) => setTimeout(r, 2.2 * idleMs));
    // Two idle periods later the Watch streams still run on their connections.
    assert.deepEqual(
      watches.map((w) => w.outcome),
      ['serving', 'serving'],
    );
    assert.equal(sessionGrpc.closed || sessionGrpc.destroyed, false);
    assert.equal(sessionHttp.closed || sessionHttp.destroyed, false);
    const slowDone = await slow;
    assert.equal(slowDone.status, 200, 'the long HTTP/1.1 call completed on its connection');
    const quickIdle = (await quick.closed) - quick.endedAt;
    const slowIdle = (await slowDone.closed) - slowDone.endedAt;
    const cancelledAt = Date.now();
    for (const w of watches) w.stream.close();
    const h2Idle = (await Promise.all(closed)).map((t) => t - cancelledAt);
    console.log(
      `idle close after the last call: HTTP/1.1 ${quickIdle} ms and ${slowIdle} ms (after a 1.6 s call), h2 grpc/http ${h2Idle.join(', ')} ms`,
    );
    for (const ms of [quickIdle, slowIdle, ...h2Idle]) assert.ok(ms >= idleMs - 100 && ms < idleMs + 2500, `idle close after ${ms} ms`);
  });
});

describe('streams per connection', () => {
  test('a client that ignores maxConcurrentStreams loses its connection; a well-behaved one queues', async () => {
    for (const port of [a.grpcPort, a.httpPort]) {
      const flood = await rawH2Flood(port, '/grpc.health.v1.Health/Watch', small.maxConcurrentStreams + 5, 300);
      assert.equal(flood.maxConcurrentStreams, small.maxConcurrentStreams, 'the server announces the limit');
      assert.ok(flood.goawayCode !== undefined && flood.goawayCode !== 0, `GOAWAY with an error (${flood.goawayCode})`);
      assert.ok(flood.closed, 'the connection is closed');
      assert.ok(flood.answered.length <= small.maxConcurrentStreams, `${flood.answered.length} streams answered`);
      console.log(
        `port ${port}: ${small.maxConcurrentStreams + 5} streams at once -> GOAWAY code ${flood.goawayCode}, ${flood.reset.size} streams reset, ${flood.answered.length} answered`,
      );

      // Node's client (as grpc-js and connect-node use) holds streams over the limit back.
      const session = await h2Session(port);
      const watches = Array.from({ length: small.maxConcurrentStreams + 5 }, () => watchStream(session));
      const serving = () => watches.filter((w) => w.outcome === 'serving').length;
      await waitFor(() => serving() === small.maxConcurrentStreams, 3000, 'the first streams to be served');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(serving(), small.maxConcurrentStreams, 'no stream over the limit runs');
      assert.equal(watches.filter((w) => w.outcome !== undefined && w.outcome !== 'serving').length, 0, 'none is refused');
      watches[0].stream.close();
      watches[1].stream.close();
      await waitFor(() => serving() === small.maxConcurrentStreams + 2, 3000, 'two queued streams to start');
      session.destroy();
    }
    assert.equal(await grpcCheck(a.grpcPort), 0);
    assert.equal(await connectCheck(a.httpPort), 0);
  });
});

describe('connection cap and Watch cap', () => {
  test('connections over maxConnections are closed at once, before any byte is read; real clients are served once some close', async () => {
    const base = await b.stats();
    const held: SilentSocket[] = [];
    for (const port of [b.grpcPort, b.httpPort]) {
      for (let i = 0; i < large.maxConnections; i += 50)
        held.push(...(await Promise.all(Array.from({ length: 50 }, () => silentSocket(port)))));
    }
    const full = await statsWhen(b, (s) => s.fds >= base.fds + 2 * large.maxConnections, 5000);
    console.log(`${2 * large.maxConnections} idle TCP connections: ${perItem(base, full, 2 * large.maxConnections)}`);
    assert.ok(full.fds >= base.fds + 2 * large.maxConnections, `the server holds them (${full.fds - base.fds} more fds)`);

    const extra = await Promise.all(Array.from({ length: 40 }, (_, i) => silentSocket(i % 2 ? b.httpPort : b.grpcPort)));
    await waitFor(() => extra.every((s) => s.closedAt !== undefined), 2000, 'connections over the cap to be closed');
    assert.ok(
      extra.every((s) => s.bytesReceived === 0 && s.closedAt! - s.openedAt < 1000),
      'closed at once, with nothing sent',
    );
    const over = await b.stats();
    assert.ok(over.fds <= full.fds + 2, `no descriptor kept for them (${full.fds} -> ${over.fds})`);
    assert.ok(
      held.every((s) => s.closedAt === undefined),
      'the held connections stay open',
    );
    assert.notEqual(await grpcCheck(b.grpcPort), 0, 'a grpc-js client is refused while the cap is full');
    assert.notEqual(await connectCheck(b.httpPort), 0, 'a Connect client is refused while the cap is full');

    for (const port of [b.grpcPort, b.httpPort]) {
      for (const s of held.filter((h) => h.socket.remotePort === port).slice(0, 10)) s.socket.destroy();
    }
    const served = async (check: () => Promise<number>) => {
      for (let i = 0; i < 20; i++) if ((await check()) === 0) return true;
      return false;
    };
    assert.ok(await served(() => grpcCheck(b.grpcPort)), 'grpc-js is served once connections close');
    assert.ok(await served(() => connectCheck(b.httpPort)), 'Connect over HTTP/1.1 is served once connections close');
    for (const s of held) s.socket.destroy();
    const released = await statsWhen(b, (s) => s.fds <= base.fds + 20, 5000);
    assert.ok(released.fds <= base.fds + 20, `the server releases them (${released.fds} fds, ${base.fds} before)`);
  });

  test('idle HTTP/2 connections: memory per connection', async () => {
    const base = await b.stats();
    const sessions: http2.ClientHttp2Session[] = [];
    for (const port of [b.grpcPort, b.httpPort]) {
      for (let i = 0; i < 200; i += 50) sessions.push(...(await Promise.all(Array.from({ length: 50 }, () => h2Session(port)))));
    }
    const full = await statsWhen(b, (s) => s.fds >= base.fds + 400, 5000);
    console.log(`400 idle HTTP/2 sessions (200 per listener): ${perItem(base, full, 400)}`);
    assert.ok(full.fds >= base.fds + 400, 'the server holds them');
    const closed = sessions.map(whenClosed);
    for (const s of sessions) s.destroy();
    await Promise.all(closed);
  });

  test('2000 Watch streams over 8 connections: 1000 served, the rest RESOURCE_EXHAUSTED; memory stays bounded; the server answers throughout', async () => {
    const sessions = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => h2Session(i < 4 ? b.grpcPort : b.httpPort)));
    const open = async (on: http2.ClientHttp2Session[], each: number) => {
      const ws: WatchStream[] = [];
      for (const s of on) for (let i = 0; i < each; i++) ws.push(watchStream(s));
      await waitFor(() => ws.every((w) => w.outcome !== undefined), 20_000, 'every Watch to be answered');
      return ws;
    };
    const answers = async () => {
      const t0 = Date.now();
      assert.equal(await grpcCheck(b.grpcPort), 0);
      assert.equal(await connectCheck(b.httpPort), 0);
      return Date.now() - t0;
    };
    const base = await b.stats();
    const onGrpc = await open(sessions.slice(0, 4), 125);
    const afterGrpc = await b.stats();
    const onHttp = await open(sessions.slice(4), 125);
    const afterHttp = await b.stats();
    const firstMs = await answers();
    const over = await open(sessions, 125);
    const afterOver = await b.stats();
    const overMs = await answers();
    console.log(`500 Watch streams on the gRPC listener: ${perItem(base, afterGrpc, 500)}`);
    console.log(`500 Watch streams on the HTTP listener (h2): ${perItem(afterGrpc, afterHttp, 500)}`);
    console.log(
      `1000 more, refused: rss ${mib(afterHttp.rss)} -> ${mib(afterOver.rss)} MiB, heap ${mib(afterHttp.heapUsed)} -> ${mib(afterOver.heapUsed)} MiB; Check on both listeners in ${firstMs} ms, then ${overMs} ms`,
    );
    assert.deepEqual(
      [...onGrpc, ...onHttp].filter((w) => w.outcome !== 'serving'),
      [],
      'the first 1000 are served',
    );
    assert.equal(over.filter((w) => w.outcome === RESOURCE_EXHAUSTED).length, 1000, 'the next 1000 are refused');
    const heldHeap = afterHttp.heapUsed - base.heapUsed;
    assert.ok(afterOver.heapUsed - afterHttp.heapUsed < heldHeap / 10, 'refused Watch streams hold no memory');
    assert.ok(firstMs < 2000 && overMs < 2000, 'the server answers');

    // A closed Watch frees its place.
    for (const w of onHttp.slice(0, 10)) w.stream.close();
    await new Promise((r) => setTimeout(r, 100));
    const later = watchStream(sessions[0]);
    await waitFor(() => later.outcome !== undefined, 3000, 'a Watch after others closed');
    assert.equal(later.outcome, 'serving');
    const closed = sessions.map(whenClosed);
    for (const s of sessions) s.destroy();
    await Promise.all(closed);
  });
});

describe('request deadline', () => {
  test('a request whose body never ends is cut after the request timeout: HTTP/2 stream reset, HTTP/1.1 408', async () => {
    const health = new HealthState(new Set());
    const listener = await startHttpListener(
      { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 20, corsOrigins: [], limits: small, requestTimeoutMs: idleMs },
      [{ service: Health, impl: createHealthService(health) }],
      pino({ level: 'silent' }),
    );
    try {
      const session = await h2Session(listener.port);
      const stalled = session.request({
        ':method': 'POST',
        ':path': '/grpc.health.v1.Health/Check',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      stalled.on('error', () => {});
      stalled.write(grpcFrame().subarray(0, 3)); // part of a message, and no END_STREAM
      const t0 = Date.now();
      const watch = watchStream(session);
      const stalledClosed = whenClosed(stalled);
      const h1 = await silentSocket(listener.port);
      let h1Reply = '';
      h1.socket.on('data', (d) => (h1Reply += d.toString('latin1')));
      h1.socket.write(
        'POST /grpc.health.v1.Health/Check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{',
      );
      const stalledMs = (await stalledClosed) - t0;
      await waitFor(() => h1.closedAt !== undefined, 5000, 'the HTTP/1.1 request to be cut');
      const h1Ms = h1.closedAt! - h1.openedAt;
      console.log(
        `stalled request cut after: HTTP/2 ${stalledMs} ms (RST code ${stalled.rstCode}), HTTP/1.1 ${h1Ms} ms (${h1Reply.slice(0, 12)})`,
      );
      assert.equal(stalled.rstCode, 8, 'CANCEL');
      assert.ok(stalledMs >= idleMs - 100 && stalledMs < idleMs + 2500, `HTTP/2 after ${stalledMs} ms`);
      assert.match(h1Reply, /^HTTP\/1\.1 408/);
      assert.ok(h1Ms >= idleMs - 100 && h1Ms < idleMs + 2500, `HTTP/1.1 after ${h1Ms} ms`);
      assert.equal(watch.outcome, 'serving', 'a stream whose request ended is not cut');
      assert.equal(watch.stream.closed, false);
      session.destroy();
    } finally {
      health.shutDown();
      await listener.close(100);
    }
  });
});

describe('TLS', () => {
  test('TLS connections count toward the cap; a handshake that never finishes is dropped after 10 s on both listeners', async () => {
    assert.ok(
      tlsOver.every((s) => s.closedAt !== undefined && s.closedAt - s.openedAt < 1000 && s.bytesReceived === 0),
      'over the cap: closed at once',
    );
    await waitFor(() => tlsHeld.every((s) => s.closedAt !== undefined), 15_000, 'the TLS handshakes to time out');
    const ms = tlsHeld.map((s) => s.closedAt! - s.openedAt);
    console.log(`TLS handshakes that never finish dropped after ${Math.min(...ms)}-${Math.max(...ms)} ms (gRPC and HTTP listeners)`);
    for (const m of ms) assert.ok(m >= 9500 && m < 12_500, `dropped after ${m} ms`);
    assert.equal(await grpcCheck(tlsPorts.grpc, certs.ca.cert), 0, 'grpc-js over TLS is served');
    assert.equal(await connectCheck(tlsPorts.http, certs.ca.cert), 0, 'Connect over TLS is served');
  });
});
