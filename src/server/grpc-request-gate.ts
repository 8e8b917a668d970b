/**
 * The gRPC listener's gate for requests still receiving their body (see ./incomplete-requests.ts),
 * as a grpc-js server interceptor: it counts each call from its headers until its half-close,
 * refuses calls over the cap with UNAVAILABLE before any handler runs (a unary call that arrives
 * whole at once is served), and ends with CANCELLED a call whose client sends no message for the
 * stall timeout while the server waits for one.
 *
 * grpc-js has no public way to reset one HTTP/2 stream: a call it ends while its request is still
 * open keeps its stream (and about 6 KiB) until the client closes it, which a hostile client never
 * does. So such calls are charged to their connection, and a connection charged with more than
 * `maxAbandonedStreams` of them is closed.
 * @packageDocumentation
 */
import type net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { IncompleteRequests } from './incomplete-requests.js';

/** Options of {@link grpcRequestGate}. */
export interface GrpcRequestGateOptions {
  /** Calls receiving their request at once before connections that have one are refused more. */
  maxIncompleteRequests: number;
  /** A call whose client sends no message for this long while the server waits for one is ended, ms. */
  stallMs: number;
  /** Calls one connection may leave unfinished (refused or ended before their request) before it is closed. */
  maxAbandonedStreams: number;
  log: Logger;
}

/** The gate of one gRPC listener. */
export interface GrpcRequestGate {
  /** The grpc-js server interceptor (the `interceptors` server option). */
  readonly interceptor: grpc.ServerInterceptor;
  /** Registers a client connection of the listener, so that the gate can close it. */
  connection(socket: net.Socket): void;
  /** Calls receiving their request now. */
  readonly incomplete: number;
}

type Key = string | symbol;

/** How long a unary call over the cap has to arrive whole before it is refused, ms. */
const wholeRequestGraceMs = 100;

function keyOf(address: string | undefined, port: number | undefined): Key {
  return address !== undefined && port !== undefined ? `${address}|${port}` : Symbol('unknown peer');
}

/** The request side of one admitted call: counted until it ends, timed while the server waits for it. */
class CallRequest {
  private open = true;
  private waiting = false;
  private timer: NodeJS.Timeout | undefined;
  /** Ends the call (set once the call exists). */
  cut: () => void = () => {};

  constructor(
    private readonly release: () => void,
    private readonly stallMs: number,
    private readonly abandon: () => void,
  ) {}

  /** The handler asked for the next message (or the half-close). */
  wait(): void {
    if (!this.open || this.waiting) return;
    this.waiting = true;
    // One timer per call, restarted rather than replaced on every message of a long stream.
    if (this.timer) this.timer.refresh();
    else {
      this.timer = setTimeout(() => {
        if (this.open && this.waiting) this.cut();
      }, this.stallMs);
      this.timer.unref();
    }
  }

  /** A message came. */
  received(): void {
    this.waiting = false;
  }

  /** The request ended (half-close): the call is no longer counted. */
  finished(): void {
    if (!this.open) return;
    this.open = false;
    clearTimeout(this.timer);
    this.release();
  }

  /** The call ended (status sent, cancelled): if its request had not ended, it is charged to its connection. */
  ended(): void {
    if (!this.open) return;
    this.finished();
    this.abandon();
  }
}

/** An admitted call: the gate learns when the handler waits for request data. */
class GatedCall extends grpc.ServerInterceptingCall {
  constructor(
    next: grpc.ServerInterceptingCallInterface,
    private readonly request: CallRequest,
  ) {
    super(next, {
      start: (go) =>
        go({
          onReceiveMessage: (message, pass) => {
            request.received();
            pass(message);
          },
          onReceiveHalfClose: (pass) => {
            request.finished();
            pass();
          },
          onCancel: () => request.ended(),
        }),
      sendStatus: (status, pass) => {
        request.ended();
        pass(status);
      },
    });
  }

  override startRead(): void {
    this.request.wait();
    super.startRead();
  }
}

/** Builds the gate of one gRPC listener. */
export function grpcRequestGate(opts: GrpcRequestGateOptions): GrpcRequestGate {
  const requests = new IncompleteRequests<Key>(opts.maxIncompleteRequests, 'grpc', opts.log);
  const sockets = new Map<Key, net.Socket>();
  const abandoned = new Map<Key, number>();
  let lastLog = 0;

  const abandon = (key: Key) => {
    const n = (abandoned.get(key) ?? 0) + 1;
    abandoned.set(key, n);
    const socket = sockets.get(key);
    if (n <= opts.maxAbandonedStreams || !socket || socket.destroyed) return;
    const now = Date.now();
    if (now - lastLog >= 10_000) {
      lastLog = now;
      opts.log.warn({ listener: 'grpc', peer: socket.remoteAddress, maxAbandonedStreams: opts.maxAbandonedStreams }, 'closing a connection that leaves unfinished requests open');
    }
    // After the status that was just sent has had its turn to be written.
    setImmediate(() => socket.destroy());
  };

  const stalledStatus = { code: grpc.status.CANCELLED, details: `no request data for ${opts.stallMs} ms` };
  const refusedStatus = { code: grpc.status.UNAVAILABLE, details: 'too many requests in progress; retry later' };

  const interceptor: grpc.ServerInterceptor = (method, call) => {
    const info = call.getConnectionInfo();
    const key = keyOf(info.remoteAddress, info.remotePort);
    const release = requests.admit(key);
    if (!release && method.requestStream) {
      // The handler's listener is never started, so no handler runs for the call.
      return new grpc.ServerInterceptingCall(call, {
        start: () => {
          abandon(key);
          process.nextTick(() => call.sendStatus(refusedStatus));
        },
      });
    }
    // Over the cap, a unary call (whose handler runs only once its request has ended) is given
    // wholeRequestGraceMs to arrive whole, uncounted: clients that send several whole requests at
    // once are served; one that does not arrive whole in time is refused.
    const request = release
      ? new CallRequest(release, opts.stallMs, () => abandon(key))
      : new CallRequest(() => {}, wholeRequestGraceMs, () => abandon(key));
    const gated = new GatedCall(call, request);
    const status = release ? stalledStatus : refusedStatus;
    request.cut = () => gated.sendStatus(status);
    return gated;
  };

  return {
    interceptor,
    get incomplete() {
      return requests.count;
    },
    connection(socket) {
      const key = keyOf(socket.remoteAddress, socket.remotePort);
      sockets.set(key, socket);
      socket.once('close', () => {
        sockets.delete(key);
        abandoned.delete(key);
      });
    },
  };
}
