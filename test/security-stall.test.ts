/**
 * Requests that send their headers but never finish their body, on both listeners: the cap on
 * requests still receiving their body (refused over it, before any handler runs, while clients
 * that send whole requests are served; memory measured in a server process of its own), and the
 * deadline for a request that sends nothing (cut), which a slow but steady sender, or a server
 * that reads slowly, never meets.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { CopyFromRequestSchema } from '../gen/heliosdb/v1/database_pb.js';
import { type GateListeners, type GateServer, type GateStats, startGateListeners, startGateServer } from './helpers/gate-server.js';
import { grpcFrame, h1Post, h2Session, waitFor } from './helpers/h2-clients.js';

const UNAVAILABLE = 14;
const CANCELLED = 1;
const REFUSED_STREAM = http2.constants.NGHTTP2_REFUSED_STREAM;
const CANCEL = http2.constants.NGHTTP2_CANCEL;
const kib = (bytes: number) => Math.round(bytes / 102.4) / 10;
const mib = (bytes: number) => Math.round(bytes / 104857.6) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A gRPC stream over Node's HTTP/2 client, and how the server ended it. */
interface Call {
  readonly stream: http2.ClientHttp2Stream;
  readonly openedAt: number;
  /** The grpc-status the server sent (headers or trailers). */
  status: number | undefined;
  /** The RST_STREAM code, once the stream closed (0 after a normal end). */
  rstCode: number | undefined;
  /** When the server answered with a status or closed the stream. */
  endedAt: number | undefined;
}

/** Opens a gRPC POST to `path`; like a hostile client, it never closes a stream the server answered. */
function openCall(session: http2.ClientHttp2Session, path = '/grpc.health.v1.Health/Check'): Call {
  const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
  const c: Call = { stream, openedAt: Date.now(), status: undefined, rstCode: undefined, endedAt: undefined };
  const status = (h: http2.IncomingHttpHeaders) => {
    if (h['grpc-status'] === undefined || c.status !== undefined) return;
    c.status = Number(h['grpc-status']);
    c.endedAt ??= Date.now();
  };
  stream.on('response', status);
  stream.on('trailers', status);
  stream.on('error', () => {});
  stream.on('close', () => {
    c.rstCode = stream.rstCode;
    c.endedAt ??= Date.now();
  });
  stream.resume();
  return c;
}

/** A Health/Check whose request never ends: part of its length prefix, then nothing. */
function stalledCheck(session: http2.ClientHttp2Session): Call {
  const c = openCall(session);
  c.stream.write(grpcFrame().subarray(0, 3));
  return c;
}

/** A whole Health/Check on `session`: its grpc-status, or `rst N` when the stream was reset. */
async function wholeCheck(session: http2.ClientHttp2Session): Promise<number | string> {
  const c = openCall(session);
  c.stream.end(grpcFrame());
  await waitFor(() => c.status !== undefined || c.rstCode !== undefined, 5000, 'a Check to be answered');
  return c.status ?? `rst ${c.rstCode}`;
}

/** One CopyFrom request message, framed. */
function copyMessage(sql: string, bytes = 0): Buffer {
  return grpcFrame(toBinary(CopyFromRequestSchema, create(CopyFromRequestSchema, { sql, data: new Uint8Array(bytes) })));
}

function ended(c: Call): boolean {
  return c.status !== undefined || c.rstCode !== undefined;
}

function whenClosed(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => (session.closed || session.destroyed ? resolve() : session.once('close', () => resolve())));
}

/** Polls the server's stats until `ok` holds (at most `timeoutMs`); returns the last ones. */
async function statsWhen(server: GateServer, ok: (s: GateStats) => boolean, timeoutMs: number): Promise<GateStats> {
  const t0 = Date.now();
  let s = await server.stats();
  while (!ok(s) && Date.now() - t0 < timeoutMs) {
    await sleep(20);
    s = await server.stats();
  }
  return s;
}

describe('the cap on requests still receiving their body', () => {
  const cap = 200;
  const perSession = 50;
  const sessionsCount = cap / perSession;
  const over = 25; // per session, beyond the cap
  let server: GateServer;
  before(async () => {
    server = await startGateServer({
      limits: { maxConnections: 50, idleConnectionTimeoutMs: 60_000, maxConcurrentStreams: 100 },
      maxIncompleteRequests: cap,
      requestTimeoutMs: 60_000,
    });
  });
  after(() => server?.close());

  /** Opens `cap` stalled Checks over `sessionsCount` sessions; resolves once the server counts them all. */
  async function fillCap(port: number, listener: 'grpc' | 'http') {
    const sessions = await Promise.all(Array.from({ length: sessionsCount }, () => h2Session(port)));
    const held = sessions.flatMap((s) => Array.from({ length: perSession }, () => stalledCheck(s)));
    const full = await statsWhen(server, (s) => s.incomplete[listener] === cap, 5000);
    assert.equal(full.incomplete[listener], cap, 'the server counts every stalled request');
    assert.ok(
      held.every((c) => !ended(c)),
      'none is refused under the cap',
    );
    return { sessions, held, full };
  }

  test('HTTP listener: streams over the cap are reset with REFUSED_STREAM at once and hold nothing; whole requests are served throughout', async () => {
    const base = await server.stats();
    const { sessions, held, full } = await fillCap(server.httpPort, 'http');
    const t0 = Date.now();
    const refused = sessions.flatMap((s) => Array.from({ length: over }, () => stalledCheck(s)));
    await waitFor(() => refused.every(ended), 3000, 'the streams over the cap to be refused');
    const refusedMs = Math.max(...refused.map((c) => c.endedAt! - t0));
    assert.deepEqual(new Set(refused.map((c) => c.rstCode)), new Set([REFUSED_STREAM]), 'RST_STREAM REFUSED_STREAM');
    assert.ok(refusedMs < 1000, `refused at once (${refusedMs} ms)`);
    const afterRefused = await server.stats();
    assert.equal(afterRefused.incomplete.http, cap);

    // Clients that send whole requests: HTTP/1.1, and a burst of 20 on one new HTTP/2 connection.
    const h1 = await h1Post(server.httpPort, '/grpc.health.v1.Health/Check', {});
    assert.equal(h1.status, 200, 'HTTP/1.1 is served');
    h1.socket.destroy();
    const fresh = await h2Session(server.httpPort);
    const burst = await Promise.all(Array.from({ length: 20 }, () => wholeCheck(fresh)));
    assert.deepEqual(new Set(burst), new Set([0]), `a burst of whole requests is served (${burst.join(',')})`);
    // A whole request is served even on a connection that holds stalled ones.
    assert.equal(await wholeCheck(sessions[0]), 0, 'a whole request on a connection that holds stalled ones is served');
    assert.ok(
      held.every((c) => !ended(c)),
      'the requests under the cap still run',
    );

    console.log(
      `HTTP listener: ${cap} stalled requests ${kib((full.heapUsed - base.heapUsed) / cap)} KiB heap, ${kib((full.rss - base.rss) / cap)} KiB rss each; ` +
        `${refused.length} more refused in ${refusedMs} ms: heap ${mib(full.heapUsed)} -> ${mib(afterRefused.heapUsed)} MiB`,
    );
    assert.ok(afterRefused.heapUsed - full.heapUsed < (full.heapUsed - base.heapUsed) / 10, 'refused streams hold no memory');

    for (const s of [...sessions, fresh]) s.destroy();
    const released = await statsWhen(server, (s) => s.incomplete.http === 0, 3000);
    assert.equal(released.incomplete.http, 0, 'closed streams are no longer counted');
  });

  test('gRPC listener: calls over the cap get UNAVAILABLE at once; connections that keep such streams open are closed; whole requests are served', async () => {
    /** Fills the cap, checks that whole requests are served, then opens more stalled calls on the same connections. */
    const round = async () => {
      const base = await server.stats();
      const { sessions, held, full } = await fillCap(server.grpcPort, 'grpc');
      const fresh = await h2Session(server.grpcPort);
      assert.equal(await wholeCheck(fresh), 0, 'a whole request on a new connection is served');
      const burst = await Promise.all(Array.from({ length: 20 }, () => wholeCheck(fresh)));
      assert.deepEqual(new Set(burst), new Set([0]), `a burst of whole requests is served (${burst.join(',')})`);
      assert.equal(await wholeCheck(sessions[0]), 0, 'a whole request on a connection that holds stalled ones is served');

      const t0 = Date.now();
      const refused = sessions.flatMap((s) => Array.from({ length: over }, () => stalledCheck(s)));
      await waitFor(
        () => sessions.every((s) => s.closed || s.destroyed),
        5000,
        'the connections that keep refused streams open to be closed',
      );
      const answered = refused.filter((c) => c.status !== undefined);
      assert.ok(answered.length >= sessionsCount * 8, `${answered.length} refused with a status first`);
      assert.deepEqual(new Set(answered.map((c) => c.status)), new Set([UNAVAILABLE]), 'UNAVAILABLE');
      const refusedMs = Math.max(...answered.map((c) => c.endedAt! - t0));
      assert.ok(refusedMs < 1000, `refused at once (${refusedMs} ms)`);
      assert.ok(
        held.every((c) => c.status === undefined),
        'the calls under the cap had no answer: they were cut with their connection',
      );
      const freed = await statsWhen(server, (s) => s.incomplete.grpc === 0 && s.connections.grpc === 1, 3000);
      assert.equal(freed.incomplete.grpc, 0);
      assert.equal(freed.connections.grpc, 1, 'only the well-behaved connection is left');
      assert.equal(await wholeCheck(fresh), 0, 'the well-behaved connection is still served');
      fresh.destroy();
      await whenClosed(fresh);
      const released = await statsWhen(server, (s) => s.connections.grpc === 0, 3000);
      return { base, full, freed, released, answered: answered.length, refusedMs };
    };
    await round(); // the first round compiles the code paths it takes
    const r = await round();
    const held = r.full.heapUsed - r.base.heapUsed;
    console.log(
      `gRPC listener: ${cap} stalled calls ${kib(held / cap)} KiB heap, ${kib((r.full.rss - r.base.rss) / cap)} KiB rss each; ` +
        `${r.answered} refused in ${r.refusedMs} ms, their ${sessionsCount} connections closed: heap ${mib(r.base.heapUsed)} -> ${mib(r.full.heapUsed)} -> ${mib(r.released.heapUsed)} MiB`,
    );
    assert.ok(r.released.heapUsed - r.base.heapUsed < held / 4, 'the memory is released');
  });
});

describe('requests that send nothing', () => {
  const T = 1000;
  let l: GateListeners;
  before(async () => {
    l = await startGateListeners({
      limits: { maxConnections: 50, idleConnectionTimeoutMs: 60_000, maxConcurrentStreams: 100 },
      requestTimeoutMs: T,
    });
  });
  after(() => l?.close());
  const ports = () => [
    { name: 'gRPC', port: l.grpcPort, incomplete: () => l.grpc.incompleteRequests },
    { name: 'HTTP', port: l.httpPort, incomplete: () => l.http.incompleteRequests },
  ];

  test('a request that stops sending is cut after the timeout on both listeners: unary, and CopyFrom after some messages', async () => {
    for (const { name, port, incomplete } of ports()) {
      const session = await h2Session(port);
      const copiesBefore = l.copies.length;
      const check = stalledCheck(session);
      const copy = openCall(session, '/heliosdb.v1.DatabaseService/CopyFrom');
      for (let i = 0; i < 3; i++) copy.stream.write(copyMessage(i === 0 ? 'COPY t FROM STDIN' : '', 100));
      const lastSent = Date.now();
      await waitFor(() => ended(check) && ended(copy), 5 * T, `${name}: the stalled requests to be cut`);
      const checkMs = check.endedAt! - check.openedAt;
      const copyMs = copy.endedAt! - lastSent;
      console.log(
        `${name}: silent Check cut after ${checkMs} ms, CopyFrom silent after 3 messages cut after ${copyMs} ms (timeout ${T} ms): status ${check.status}/${copy.status}, RST ${check.rstCode}/${copy.rstCode}`,
      );
      for (const ms of [checkMs, copyMs]) assert.ok(ms >= T - 100 && ms < T + 1500, `${name}: cut after ${ms} ms`);
      if (name === 'gRPC') {
        assert.equal(check.status, CANCELLED);
        assert.equal(copy.status, CANCELLED);
      } else {
        assert.equal(check.rstCode, CANCEL);
        assert.equal(copy.rstCode, CANCEL);
      }
      await waitFor(() => l.copies.length === copiesBefore + 1 && l.copies.at(-1)!.error !== undefined, 2000, 'the handler to see the cut');
      assert.equal(l.copies.at(-1)!.messages, 3, 'the handler read the messages that came');
      await waitFor(() => incomplete() === 0, 2000, `${name}: the cut requests to be no longer counted`);
      session.destroy();
    }
  });

  test('a slow but steady CopyFrom (a message every 0.4 x timeout, 3 x timeout long) is not cut on either listener', async () => {
    for (const { name, port } of ports()) {
      const session = await h2Session(port);
      const copy = openCall(session, '/heliosdb.v1.DatabaseService/CopyFrom');
      const t0 = Date.now();
      for (let i = 0; i < 8; i++) {
        copy.stream.write(copyMessage(i === 0 ? 'COPY t FROM STDIN' : '', 1000));
        await sleep(0.4 * T);
        assert.equal(ended(copy), false, `${name}: not cut after ${Date.now() - t0} ms`);
      }
      copy.stream.end();
      await waitFor(() => copy.status !== undefined, 3000, 'the CopyFrom to be answered');
      console.log(`${name}: CopyFrom sending a message every ${0.4 * T} ms for ${Date.now() - t0} ms: status ${copy.status}`);
      assert.equal(copy.status, 0);
      assert.deepEqual(l.copies.at(-1), { messages: 8, bytes: 8000 }, 'the handler read every message');
      session.destroy();
    }
  });

  test('HTTP listener: a request trickling one byte every 0.4 x timeout is not cut; the gRPC listener counts whole messages, so it cuts it', async () => {
    for (const { name, port } of ports()) {
      const session = await h2Session(port);
      const check = openCall(session);
      const frame = grpcFrame();
      for (let i = 0; i < frame.length; i++) {
        if (ended(check)) break;
        check.stream.write(frame.subarray(i, i + 1));
        await sleep(0.4 * T);
      }
      if (!ended(check)) check.stream.end();
      await waitFor(() => ended(check), 3000, 'the Check to be answered');
      console.log(
        `${name}: a Check sent one byte every ${0.4 * T} ms: status ${check.status}, RST ${check.rstCode}, after ${check.endedAt! - check.openedAt} ms`,
      );
      assert.equal(check.status, name === 'HTTP' ? 0 : CANCELLED);
      session.destroy();
    }
  });

  test('a server that reads slowly (the handler waits 2.5 x timeout before reading on) does not cut a client held back by flow control', async () => {
    for (const { name, port } of ports()) {
      const session = await h2Session(port);
      const copy = openCall(session, '/heliosdb.v1.DatabaseService/CopyFrom');
      copy.stream.write(copyMessage(`pause ${2.5 * T}`));
      const chunk = 64 * 1024 - 16;
      for (let i = 0; i < 64; i++) copy.stream.write(copyMessage('', chunk));
      copy.stream.end();
      await waitFor(() => ended(copy), 5 * T, 'the CopyFrom to be answered');
      console.log(`${name}: 4 MiB CopyFrom read only after ${2.5 * T} ms: status ${copy.status} after ${copy.endedAt! - copy.openedAt} ms`);
      assert.equal(copy.status, 0);
      assert.deepEqual(l.copies.at(-1), { messages: 65, bytes: 64 * chunk });
      session.destroy();
    }
  });
});
