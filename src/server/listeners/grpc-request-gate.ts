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

/** The listener a grpc-js intercepting call delivers a call's events to (grpc-js does not export its name). */
type ServerListener = Parameters<grpc.ServerInterceptingCallInterface['start']>[0];
/** A status a call ends with. */
type Status = Parameters<grpc.ServerInterceptingCallInterface['sendStatus']>[0];

/** How long a unary call over the cap has to arrive whole before it is refused, ms. */
const wholeRequestGraceMs = 100;

function keyOf(address: string | undefined, port: number | undefined): Key {
  return address !== undefined && port !== undefined ? `${address}|${port}` : Symbol('unknown peer');
}

/** What the calls of one gate share. */
interface GateState {
  readonly requests: IncompleteRequests<Key>;
  abandon(key: Key): void;
}

/**
 * One call's request side, and the listener between grpc-js and the call's handler: it counts
 * the call until its request ends and times it while the handler waits for request data. (Its
 * methods, not closures, so that a call costs a few objects more, not a dozen.)
 */
class CallRequest implements ServerListener {
  private open = true;
  private waiting = false;
  private timer: NodeJS.Timeout | undefined;
  /** The handler's listener. */
  downstream: ServerListener | undefined;

  /**
   * @param counted Whether the call counts towards the cap (a unary call over it does not; it
   *   only has `stallMs` to arrive whole).
   */
  constructor(
    private readonly gate: GateState,
    private readonly key: Key,
    private readonly counted: boolean,
    private readonly stallMs: number,
    private readonly call: GatedCall,
    private readonly stalledStatus: Status,
  ) {}

  private static fire(self: CallRequest): void {
    if (self.open && self.waiting) self.call.sendStatus(self.stalledStatus);
  }

  /** The handler asked for the next message (or the half-close). */
  wait(): void {
    if (!this.open || this.waiting) return;
    this.waiting = true;
    // One timer per call, restarted rather than replaced on every message of a long stream.
    if (this.timer) this.timer.refresh();
    else {
      this.timer = setTimeout(CallRequest.fire, this.stallMs, this);
      this.timer.unref();
    }
  }

  /** The request ended (half-close): the call is no longer counted. */
  private finish(): void {
    if (!this.open) return;
    this.open = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.counted) this.gate.requests.release(this.key);
  }

  /** The call ended (status sent, cancelled): if its request had not ended, it is charged to its connection. */
  ended(): void {
    if (!this.open) return;
    this.finish();
    this.gate.abandon(this.key);
  }

  onReceiveMetadata(metadata: grpc.Metadata): void {
    this.downstream?.onReceiveMetadata(metadata);
  }

  onReceiveMessage(message: unknown): void {
    this.waiting = false;
    this.downstream?.onReceiveMessage(message);
  }

  onReceiveHalfClose(): void {
    this.finish();
    this.downstream?.onReceiveHalfClose();
  }

  onCancel(): void {
    this.ended();
    this.downstream?.onCancel();
  }
}

/** An admitted call: its request side is followed by a {@link CallRequest}. */
class GatedCall extends grpc.ServerInterceptingCall {
  private readonly request: CallRequest;

  constructor(
    next: grpc.ServerInterceptingCallInterface,
    gate: GateState,
    key: Key,
    counted: boolean,
    stallMs: number,
    stalledStatus: Status,
  ) {
    super(next);
    this.request = new CallRequest(gate, key, counted, stallMs, this, stalledStatus);
  }

  override start(listener: ServerListener): void {
    this.request.downstream = listener;
    super.start(this.request);
  }

  override sendStatus(status: Status): void {
    this.request.ended();
    super.sendStatus(status);
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

  const abandon = (key: Key): void => {
    const n = (abandoned.get(key) ?? 0) + 1;
    abandoned.set(key, n);
    const socket = sockets.get(key);
    if (n <= opts.maxAbandonedStreams || !socket || socket.destroyed) return;
    const now = Date.now();
    if (now - lastLog >= 10_000) {
      lastLog = now;
      opts.log.warn(
        { listener: 'grpc', peer: socket.remoteAddress, maxAbandonedStreams: opts.maxAbandonedStreams },
        'closing a connection that leaves unfinished requests open',
      );
    }
    // After the status that was just sent has had its turn to be written.
    setImmediate(() => socket.destroy());
  };

  const stalledStatus = { code: grpc.status.CANCELLED, details: `no request data for ${opts.stallMs} ms` };
  const refusedStatus = { code: grpc.status.UNAVAILABLE, details: 'too many requests in progress; retry later' };

  const state: GateState = { requests, abandon };
  const interceptor: grpc.ServerInterceptor = (method, call) => {
    const info = call.getConnectionInfo();
    const key = keyOf(info.remoteAddress, info.remotePort);
    const admitted = requests.admit(key);
    if (!admitted && method.requestStream) {
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
    return admitted
      ? new GatedCall(call, state, key, true, opts.stallMs, stalledStatus)
      : new GatedCall(call, state, key, false, wholeRequestGraceMs, refusedStatus);
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
