/**
 * One SessionService stream (proto/heliosdb/v1/session.proto) on one grpc-js channel: unary
 * operations multiplexed with ids, the operations issued in one event-loop tick written as one
 * message, at most the server's announced in-flight limit outstanding (the rest wait here, in
 * order). A failed operation fails alone; when the stream itself fails, every operation on it
 * fails with the stream's error, marked as never sent when it was still waiting here. A server
 * without the service (UNIMPLEMENTED before any answer) marks the stream `unsupported`, and its
 * operations fail with {@link SessionUnsupported} so that the caller sends them as unary calls.
 * @packageDocumentation
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type * as grpc from '@grpc/grpc-js';
import { ErrorDetailSchema } from '../../../gen/heliosdb/v1/error_pb.js';
import {
  type SessionOp,
  SessionOpSchema,
  type SessionRequest,
  SessionRequestSchema,
  type SessionResponse,
  SessionResponseSchema,
  SessionService,
} from '../../../gen/heliosdb/v1/session_pb.js';
import { annotateAttempt } from './attempt-info.js';
import { connectErrorFromGrpc } from './grpc-codec.js';

/** The operation kinds a session carries: DatabaseService's unary methods, by local name. */
export const sessionOpKinds: ReadonlySet<string> = new Set(
  SessionOpSchema.fields.filter((f) => f.oneof?.name === 'op' && f.localName !== 'cancel').map((f) => f.localName),
);

/** Thrown for the operations of a stream the server does not implement: send them unary. */
export class SessionUnsupported extends Error {
  constructor() {
    super('the server does not implement heliosdb.v1.SessionService');
  }
}

/**
 * A stream without operations for this long is ended by the client (half-closed), before the
 * server's stall timeout for request streams (300 s) would end it; the next operation opens a new
 * one. ms.
 */
export const sessionIdleMs = 120_000;

/** Operations written before the server announced its limit. */
const initialInFlight = 64;
const path = `/${SessionService.typeName}/${SessionService.methods[0].name}`;
const ser = (m: SessionRequest): Buffer => {
  const b = toBinary(SessionRequestSchema, m);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
};
const de = (b: Buffer): SessionResponse => fromBinary(SessionResponseSchema, b);

interface Pending {
  op: SessionOp;
  written: boolean;
  resolve(v: unknown): void;
  reject(e: unknown): void;
  cleanup?: () => void;
}

/** See the file comment. */
export class GrpcSession {
  /** The stream failed or ended: it takes no more operations. */
  closed = false;
  /** The server answered UNIMPLEMENTED. */
  unsupported = false;
  private readonly call: grpc.ClientDuplexStream<SessionRequest, SessionResponse>;
  private readonly pending = new Map<number, Pending>();
  private readonly queue: Pending[] = [];
  private outgoing: SessionOp[] = [];
  private written = 0;
  private limit = initialInFlight;
  private answered = false;
  private flushScheduled = false;
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    client: grpc.Client,
    metadata: grpc.Metadata,
    private readonly endpoint: string,
    /** Idle time after which the stream is ended, ms. Default {@link sessionIdleMs}. */
    private readonly idleMs = sessionIdleMs,
  ) {
    this.call = client.makeBidiStreamRequest(path, ser, de, metadata, {});
    this.call.on('data', (m: SessionResponse) => this.onResponse(m));
    this.call.on('error', (e: grpc.ServiceError) => this.onEnd(connectErrorFromGrpc(e)));
    this.call.on('end', () => this.onEnd(new ConnectError(`the session with ${endpoint} ended`, Code.Unavailable)));
  }

  /** Operations not answered yet. */
  get size(): number {
    return this.pending.size;
  }

  /**
   * Runs one operation: `kind` is the DatabaseService method's local name, `message` its request.
   * Rejects with the operation's error (a ConnectError, as the unary call would).
   */
  run(kind: string, message: unknown, deadline: number | undefined, signal: AbortSignal | undefined): Promise<unknown> {
    if (this.closed) return Promise.reject(this.unsupported ? new SessionUnsupported() : sessionGone(this.endpoint, false));
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = undefined;
    }
    const id = this.nextId;
    this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1;
    const timeoutMs = deadline !== undefined ? Math.max(1, deadline - Date.now()) : 0;
    const op = create(SessionOpSchema, { id, timeoutMs, op: { case: kind, value: message } as SessionOp['op'] });
    return new Promise((resolve, reject) => {
      const p: Pending = { op, written: false, resolve, reject };
      this.pending.set(id, p);
      if (signal) {
        const onAbort = () => this.abandon(id, new ConnectError('the call was cancelled', Code.Canceled));
        signal.addEventListener('abort', onAbort, { once: true });
        p.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      if (deadline !== undefined) {
        const timer = setTimeout(
          () => this.abandon(id, new ConnectError(`the ${kind} call did not finish within its deadline`, Code.DeadlineExceeded)),
          timeoutMs,
        );
        const prev = p.cleanup;
        p.cleanup = () => {
          clearTimeout(timer);
          prev?.();
        };
      }
      this.queue.push(p);
      this.schedule();
    });
  }

  /** Ends the stream; operations still open fail as after a lost connection. */
  close(): void {
    if (this.closed) return;
    this.call.cancel();
    this.onEnd(new ConnectError(`the session with ${this.endpoint} was closed`, Code.Unavailable));
  }

  /** No operation for {@link sessionIdleMs}: half-close; the server ends the stream cleanly. */
  private endIdle(): void {
    if (this.closed || this.pending.size > 0) return;
    this.closed = true;
    this.call.end();
  }

  /** The caller gave up on `id` (its signal, its deadline): a cancel op when it was written. */
  private abandon(id: number, e: ConnectError): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.settle(id);
    if (p.written) {
      this.outgoing.push(create(SessionOpSchema, { op: { case: 'cancel', value: { id } } }));
      this.schedule();
    } else {
      const i = this.queue.indexOf(p);
      if (i !== -1) this.queue.splice(i, 1);
      annotateAttempt(e, { sent: false });
    }
    p.reject(e);
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    if (p.written) this.written--;
    p.cleanup?.();
    if (this.pending.size === 0 && !this.closed) {
      this.idleTimer = setTimeout(() => this.endIdle(), this.idleMs);
      this.idleTimer.unref();
    }
    return p;
  }

  private schedule(): void {
    if (this.flushScheduled || this.closed) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    while (this.queue.length > 0 && this.written < this.limit) {
      const p = this.queue.shift()!;
      p.written = true;
      this.written++;
      this.outgoing.push(p.op);
    }
    if (this.outgoing.length === 0) return;
    const ops = this.outgoing;
    this.outgoing = [];
    this.call.write(create(SessionRequestSchema, { ops }));
  }

  private onResponse(m: SessionResponse): void {
    this.answered = true;
    if (m.opened) {
      this.limit = Math.max(1, m.opened.maxInFlight || initialInFlight);
      if (this.queue.length > 0) this.schedule();
    }
    for (const r of m.results) {
      const p = this.settle(r.id);
      if (!p) continue; // abandoned already
      const res = r.result;
      if (res.case === 'error') {
        const e = res.value;
        p.reject(
          new ConnectError(e.message, e.code as Code, undefined, e.detail ? [{ desc: ErrorDetailSchema, value: e.detail }] : undefined),
        );
      } else if (res.case === undefined) {
        p.reject(new ConnectError('the session answered an operation without a result', Code.Internal));
      } else {
        p.resolve(res.value);
      }
    }
    if (this.queue.length > 0) this.schedule();
  }

  private onEnd(e: ConnectError): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (this.closed) return;
    this.closed = true;
    if (!this.answered && e.code === Code.Unimplemented) this.unsupported = true;
    for (const id of [...this.pending.keys()]) {
      const p = this.settle(id)!;
      if (this.unsupported) p.reject(new SessionUnsupported());
      else p.reject(annotateAttempt(sessionGone(this.endpoint, p.written, e), { sent: p.written ? undefined : false }));
    }
    this.queue.length = 0;
  }
}

/** The error of an operation whose stream failed (`cause`) or was closed before it. */
function sessionGone(endpoint: string, written: boolean, cause?: ConnectError): ConnectError {
  if (cause && written) return cause;
  const e = new ConnectError(
    `the session with ${endpoint} ${cause ? `failed (${cause.rawMessage})` : 'is closed'}${written ? '' : '; the operation was not sent'}`,
    cause?.code ?? Code.Unavailable,
    undefined,
    undefined,
    cause,
  );
  return e;
}
