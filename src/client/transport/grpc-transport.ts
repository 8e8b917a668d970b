/**
 * A Connect `Transport` over the pooled `@grpc/grpc-js` channels: the Node fast path. Connect's
 * interceptors (metrics, retry, auth) run unchanged on top of it, as they do on the browser
 * transport. A call can be pinned to one channel through the `pinnedChannel` context value
 * (transactions do this).
 * @packageDocumentation
 */
import { create, type DescMessage, type DescMethod, fromBinary, isMessage, toBinary } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextKey,
  createContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from '@connectrpc/connect';
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { StatusSchema } from '../../../gen/google/rpc/status_pb.js';
import { ConnectionError, HeliosDBError } from '../errors.js';
import { annotateAttempt, avoidEndpoint, isTransportFailure } from '../retry-interceptor.js';
import type { GrpcChannelPool, PooledChannel } from './grpc-pool.js';

/** Context value naming the channel a call must use (a `PooledChannel` from `GrpcChannelPool.pin`). */
export const pinnedChannel = createContextKey<unknown>(undefined, { description: 'heliosdb pinned channel' });

function serializer(desc: DescMessage) {
  return (msg: never): Buffer => {
    const bytes = toBinary(desc, msg);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(desc: DescMessage) {
  return (buf: Buffer) => fromBinary(desc, buf);
}

const codecs = new WeakMap<DescMethod, { ser: (m: never) => Buffer; de: (b: Buffer) => unknown; path: string }>();

function codecOf(method: DescMethod) {
  let c = codecs.get(method);
  if (!c) {
    c = { ser: serializer(method.input), de: deserializer(method.output), path: `/${method.parent.typeName}/${method.name}` };
    codecs.set(method, c);
  }
  return c;
}

/** What a passed deadline says: the call, and the `timeoutMs` it was given (not grpc-js's internals). */
function deadlineMessage(method: string, timeoutMs: number | undefined): string {
  return `the ${method} call did not finish within its timeoutMs of ${timeoutMs ?? 0} ms`;
}

/** The error of a call whose deadline passed before it was sent, or while it waited to be. */
function deadlineError(method: string, timeoutMs: number | undefined): ConnectError {
  return new ConnectError(deadlineMessage(method, timeoutMs), Code.DeadlineExceeded);
}

/**
 * grpc-js's own DEADLINE_EXCEEDED (`Deadline exceeded after 0.004s,name resolution: ...`) in the
 * user's terms; a deadline error the server sent (with its ErrorDetail) is kept as it is.
 */
function localDeadline(ce: ConnectError, method: string, timeoutMs: number | undefined): ConnectError {
  if (ce.code !== Code.DeadlineExceeded || ce.details.length > 0 || !timeoutMs) return ce;
  return new ConnectError(deadlineMessage(method, timeoutMs), Code.DeadlineExceeded, ce.metadata, undefined, ce);
}

/**
 * A unary call's AbortSignal as Connect's runUnaryCall defines it (aborted by the caller's signal,
 * by the deadline, and when the call ends), made only when something reads it.
 */
class CallSignal {
  private controller: AbortController | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private onCallerAbort: (() => void) | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly caller: AbortSignal | undefined,
    private readonly timeoutMs: number | undefined,
    private readonly method: string,
  ) {}

  /** Whether the signal was made. */
  get materialized(): boolean {
    return this.controller !== undefined;
  }

  get signal(): AbortSignal {
    if (this.controller) return this.controller.signal;
    const c = (this.controller = new AbortController());
    const caller = this.caller;
    if (caller?.aborted) c.abort(caller.reason);
    else if (caller) {
      this.onCallerAbort = () => c.abort(caller.reason);
      caller.addEventListener('abort', this.onCallerAbort, { once: true });
    }
    if (this.timeoutMs !== undefined && !c.signal.aborted) {
      // Made late (a retry after a failure): the deadline still counts from the call's start.
      const left = this.timeoutMs - (Date.now() - this.startedAt);
      if (this.timeoutMs <= 0 || left <= 0) c.abort(deadlineError(this.method, this.timeoutMs));
      else this.timer = setTimeout(() => c.abort(deadlineError(this.method, this.timeoutMs)), left);
    }
    return c.signal;
  }

  private cleanup(): void {
    clearTimeout(this.timer);
    if (this.onCallerAbort) this.caller!.removeEventListener('abort', this.onCallerAbort);
  }

  /** The call succeeded. */
  done(): void {
    if (!this.controller) return;
    this.cleanup();
    this.controller.abort();
  }

  /** The call failed with `e`: the error to report (Canceled with the reason once aborted). */
  fail(e: unknown): ConnectError {
    const aborted = this.controller ? this.controller.signal : this.caller?.aborted ? this.caller : undefined;
    const err = aborted?.aborted ? ConnectError.from(aborted.reason, Code.Canceled) : ConnectError.from(e);
    if (this.controller) {
      this.cleanup();
      if (!this.controller.signal.aborted) this.controller.abort(err);
    }
    return err;
  }
}

/** The request messages as full messages (Connect's normalizeIterable, which it does not export). */
function normalizeIterable(desc: DescMessage, input: AsyncIterable<unknown>): AsyncIterable<any> {
  return {
    [Symbol.asyncIterator]() {
      const it = input[Symbol.asyncIterator]();
      const normalized = (r: IteratorResult<unknown>): IteratorResult<unknown> =>
        r.done ? r : { done: false, value: isMessage(r.value, desc) ? r.value : create(desc, r.value as never) };
      return {
        next: () => it.next().then(normalized),
        ...(it.throw ? { throw: (e?: unknown) => it.throw!(e).then(normalized) } : {}),
        ...(it.return ? { return: (v?: unknown) => it.return!(v).then(normalized) } : {}),
      };
    },
  };
}

/** gRPC metadata straight from the caller's HeadersInit (no Headers object in between). */
function metadataFromInit(init: HeadersInit | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (init === undefined) return md;
  if (init instanceof Headers) {
    init.forEach((v, k) => {
      md.add(k, v);
    });
  } else if (Array.isArray(init)) {
    for (const [k, v] of init) md.add(k.toLowerCase(), v);
  } else {
    for (const k of Object.keys(init)) md.add(k.toLowerCase(), (init as Record<string, string>)[k]);
  }
  return md;
}

function metadataToHeaders(md: grpc.Metadata | undefined): Headers {
  const h = new Headers();
  if (!md) return h;
  for (const [k, v] of Object.entries(md.getMap())) {
    if (typeof v === 'string') h.append(k, v);
  }
  return h;
}

function headersToMetadata(h: Headers): grpc.Metadata {
  const md = new grpc.Metadata();
  h.forEach((v, k) => {
    md.add(k, v);
  });
  return md;
}

/**
 * The per-call request state both call kinds share: the request object interceptors see, whose
 * header, context values and signal are made only when something reads them, and what each
 * attempt needs from it (the signal to honour, the context values, the metadata to send).
 */
class LazyCall {
  readonly cs: CallSignal;
  private header: Headers | undefined;
  private values: ContextValues | undefined;
  private base: object | undefined;

  constructor(
    private readonly callerSignal: AbortSignal | undefined,
    private readonly timeoutMs: number | undefined,
    private readonly headerInit: HeadersInit | undefined,
    contextValues: ContextValues | undefined,
    private readonly method: string,
  ) {
    this.cs = new CallSignal(callerSignal, timeoutMs, method);
    this.values = contextValues;
  }

  /** The request the interceptor chain starts from. */
  request<R extends UnaryRequest<any, any> | StreamRequest<any, any>>(stream: R['stream'], method: DescMethod, url: string, message: R['message']): R {
    const self = this;
    const req = {
      stream,
      service: method.parent,
      method,
      requestMethod: 'POST',
      url,
      get header() {
        return (self.header ??= new Headers(self.headerInit));
      },
      get contextValues() {
        return (self.values ??= createContextValues());
      },
      get signal() {
        return self.cs.signal;
      },
      message,
    };
    this.base = req;
    return req as unknown as R;
  }

  /** For one attempt of `req`: the signal to honour (checked now) and the context values. */
  attempt(req: UnaryRequest<any, any> | StreamRequest<any, any>): { ours: boolean; abortSignal: AbortSignal | undefined; values: ContextValues | undefined } {
    const ours = req === this.base;
    const abortSignal = ours && !this.cs.materialized ? this.callerSignal : req.signal;
    abortSignal?.throwIfAborted();
    if (ours && !this.cs.materialized && this.timeoutMs !== undefined && this.timeoutMs <= 0) throw deadlineError(this.method, this.timeoutMs);
    return { ours, abortSignal, values: ours ? this.values : req.contextValues };
  }

  /** The gRPC metadata for `req` (straight from the caller's init when nobody touched the headers). */
  metadata(req: UnaryRequest<any, any> | StreamRequest<any, any>, ours: boolean): grpc.Metadata {
    return ours && this.header === undefined ? metadataFromInit(this.headerInit) : headersToMetadata(req.header);
  }
}

/** A grpc-js error as a ConnectError, with google.rpc.Status details decoded. */
export function connectErrorFromGrpc(err: grpc.ServiceError | Error): ConnectError {
  const se = err as Partial<grpc.ServiceError>;
  if (typeof se.code !== 'number') return ConnectError.from(err, Code.Unavailable);
  const ce = new ConnectError(se.details ?? err.message, se.code as number as Code, metadataToHeaders(se.metadata), undefined, err);
  const raw = se.metadata?.get('grpc-status-details-bin')[0];
  if (raw instanceof Uint8Array) {
    try {
      const status = fromBinary(StatusSchema, raw);
      ce.details = status.details.map((d) => ({ type: d.typeUrl.slice(d.typeUrl.lastIndexOf('/') + 1), value: d.value }));
    } catch {
      // Malformed details: keep the status alone.
    }
  }
  return ce;
}

/**
 * A transaction's call failed on its connection: when the connection itself failed, say that the
 * transaction's server is out of reach (the transaction is lost; the server rolls it back).
 */
function pinnedFailure(ce: ConnectError, ch: PooledChannel): ConnectError {
  if (!isTransportFailure(ce)) return ce;
  const e = new ConnectError(
    `the connection to ${ch.endpoint.url}, the server holding this transaction, failed (${ce.rawMessage}); if it does not come back, the transaction is lost: the server rolls it back, begin a new one`,
    ce.code,
    ce.metadata,
    undefined,
    ce,
  );
  e.details = ce.details;
  return e;
}

/** Options of the grpc-js transport. */
export interface GrpcTransportOptions {
  pool: GrpcChannelPool;
  /** Base URL shown to interceptors (`http://host:port`). */
  baseUrl: string;
  interceptors?: Interceptor[];
}

/** Builds the transport. */
export function createGrpcJsTransport(opts: GrpcTransportOptions): Transport {
  const { pool, baseUrl } = opts;
  const interceptors = opts.interceptors ?? [];

  /**
   * A channel for one attempt: the pinned one (a transaction's), or one from the pool, avoiding
   * `avoid` (the endpoint a previous attempt failed on). A keyed Commit whose pinned connection is
   * gone may go to any server: the key settles its outcome there (src/server/idempotency.ts).
   */
  async function channelFor(pinned: unknown, avoid: string | undefined, anyServer: boolean): Promise<PooledChannel> {
    let ch: PooledChannel;
    if (pinned && !((pinned as PooledChannel).closed && anyServer)) {
      ch = pinned as PooledChannel;
      if (ch.closed) {
        throw annotateAttempt(
          new ConnectError(`the connection to ${ch.endpoint.url} this transaction was bound to is closed; the transaction cannot continue (begin a new one)`, Code.Unavailable),
          { sent: false, endpoint: ch.endpoint.url },
        );
      }
      ch.inFlight++;
    } else {
      const got = pool.acquire(avoid);
      ch = got instanceof Promise ? await got : got;
    }
    const ready = pool.ready(ch);
    if (ready) {
      try {
        await ready;
      } catch (e) {
        pool.release(ch);
        if (pinned === ch && e instanceof HeliosDBError) {
          throw annotateAttempt(
            new ConnectionError(
              `the server holding this transaction (${ch.endpoint.url}) cannot be reached (${e.message}); if it does not come back, the transaction is lost: the server rolls it back, begin a new one`,
              e.code,
              { cause: e, grpcCode: e.grpcCode, retryable: e.retryable },
            ),
            { sent: false, endpoint: ch.endpoint.url },
          );
        }
        throw e;
      }
    }
    return ch;
  }

  return {
    async unary(method, signal, timeoutMs, header, input, contextValues): Promise<UnaryResponse<any, any>> {
      const { ser, de, path } = codecOf(method);
      // Connect's runUnaryCall costs two AbortControllers, their listeners and a DOMException per
      // call (it aborts the finished call's signal without a reason), plus a Headers object each
      // way. This runs the same interceptor chain, with the request's signal, headers and context
      // values made only when an interceptor (or a caller's signal or deadline) needs them.
      const lazy = new LazyCall(signal, timeoutMs, header, contextValues, method.name);
      const cs = lazy.cs;
      // One deadline for every attempt of the call (retries included).
      const deadline = timeoutMs ? Date.now() + timeoutMs : undefined;
      const base = lazy.request<UnaryRequest<any, any>>(false, method, `${baseUrl}${path}`, isMessage(input, method.input) ? input : create(method.input, input as never));
      const send = async (req: UnaryRequest<any, any>): Promise<UnaryResponse<any, any>> => {
        const { ours, abortSignal, values } = lazy.attempt(req);
        let ch: PooledChannel;
        try {
          ch = await channelFor(values?.get(pinnedChannel), values?.get(avoidEndpoint), method.name === 'Commit' && !!(req.message as { idempotencyKey?: string }).idempotencyKey);
        } catch (e) {
          throw annotateAttempt(e, { sent: false, deadline });
        }
        const pinned = values?.get(pinnedChannel) === ch;
        try {
          abortSignal?.throwIfAborted();
          const metadata = lazy.metadata(req, ours);
          return await new Promise<UnaryResponse<any, any>>((resolve, reject) => {
            let responseMetadata: grpc.Metadata | undefined;
            let responseHeader: Headers | undefined;
            let trailer: Headers | undefined;
            const options: grpc.CallOptions = deadline ? { deadline } : {};
            const call = ch.client.makeUnaryRequest(path, ser, de, req.message as never, metadata, options, (err, value) => {
              abortSignal?.removeEventListener('abort', onAbort);
              if (err) {
                const ce = localDeadline(connectErrorFromGrpc(err), method.name, timeoutMs);
                pool.report(ch, ce);
                reject(annotateAttempt(pinned ? pinnedFailure(ce, ch) : ce, { endpoint: ch.endpoint.url, deadline }));
                return;
              }
              pool.report(ch);
              resolve({
                  stream: false,
                  service: method.parent,
                  method,
                  get header() {
                    return (responseHeader ??= metadataToHeaders(responseMetadata));
                  },
                  message: value as never,
                  get trailer() {
                    return (trailer ??= new Headers());
                  },
                });
            });
            const onAbort = () => call.cancel();
            abortSignal?.addEventListener('abort', onAbort, { once: true });
            call.on('metadata', (md: grpc.Metadata) => (responseMetadata = md));
          });
        } finally {
          pool.release(ch);
        }
      };
      let next: (req: UnaryRequest<any, any>) => Promise<UnaryResponse<any, any>> = send;
      for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i](next as never) as never;
      try {
        const res = await next(base);
        cs.done();
        return res;
      } catch (e) {
        throw cs.fail(e);
      }
    },

    async stream(method, signal, timeoutMs, header, input, contextValues): Promise<StreamResponse<any, any>> {
      const { ser, de, path } = codecOf(method);
      // As for unary calls: Connect's runStreamingCall, without its per-call AbortControllers and
      // Headers unless an interceptor (or the caller's signal or deadline) needs them.
      const lazy = new LazyCall(signal, timeoutMs, header, contextValues, method.name);
      const cs = lazy.cs;
      const deadline = timeoutMs ? Date.now() + timeoutMs : undefined;
      const base = lazy.request<StreamRequest<any, any>>(true, method, `${baseUrl}${path}`, normalizeIterable(method.input, input));
      const send = async (req: StreamRequest<any, any>): Promise<StreamResponse<any, any>> => {
        if (method.methodKind === 'client_streaming') return sendClientStream(req);
        if (method.methodKind !== 'server_streaming') {
          throw new ConnectError(`${method.methodKind} calls are not used by HeliosDB`, Code.Unimplemented);
        }
        let message: unknown;
        for await (const m of req.message) {
          message = m;
          break;
        }
        const { ours, abortSignal, values } = lazy.attempt(req);
        let ch: PooledChannel;
        try {
          ch = await channelFor(values?.get(pinnedChannel), values?.get(avoidEndpoint), false);
        } catch (e) {
          throw annotateAttempt(e, { sent: false, deadline });
        }
        const pinned = values?.get(pinnedChannel) === ch;
        if (abortSignal?.aborted) {
          pool.release(ch);
          abortSignal.throwIfAborted();
        }
        const metadata = lazy.metadata(req, ours);
        const options: grpc.CallOptions = deadline ? { deadline } : {};
        const call = ch.client.makeServerStreamRequest(path, ser, de, message as never, metadata, options);
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          abortSignal?.removeEventListener('abort', onAbort);
          pool.release(ch);
        };
        // Connect's stream iterables have no return(): a consumer that stops early aborts the
        // signal and may never read again, so the call slot is given back here too.
        const onAbort = () => {
          call.cancel();
          release();
        };
        abortSignal?.addEventListener('abort', onAbort, { once: true });
        async function* messages() {
          let reported = false;
          try {
            for await (const m of call) {
              if (!reported) {
                reported = true;
                pool.report(ch);
              }
              yield m;
            }
            if (!reported) pool.report(ch);
          } catch (e) {
            const ce = localDeadline(connectErrorFromGrpc(e as grpc.ServiceError), method.name, timeoutMs);
            pool.report(ch, ce);
            throw annotateAttempt(pinned ? pinnedFailure(ce, ch) : ce, { endpoint: ch.endpoint.url, deadline });
          } finally {
            call.cancel();
            release();
          }
        }
        let responseHeader: Headers | undefined;
        let trailer: Headers | undefined;
        return {
          stream: true,
          service: method.parent,
          method,
          get header() {
            return (responseHeader ??= new Headers());
          },
          get trailer() {
            return (trailer ??= new Headers());
          },
          message: messages() as AsyncIterable<never>,
        };
      };
      /**
       * A client-streaming call (CopyFrom): the channel first (so nothing is read from the
       * request before it can be sent), then the request's messages written with backpressure,
       * and the one response as the response stream.
       */
      const sendClientStream = async (req: StreamRequest<any, any>): Promise<StreamResponse<any, any>> => {
        const { ours, abortSignal, values } = lazy.attempt(req);
        let ch: PooledChannel;
        try {
          ch = await channelFor(values?.get(pinnedChannel), values?.get(avoidEndpoint), false);
        } catch (e) {
          throw annotateAttempt(e, { sent: false, deadline });
        }
        const pinned = values?.get(pinnedChannel) === ch;
        const metadata = lazy.metadata(req, ours);
        const options: grpc.CallOptions = deadline ? { deadline } : {};
        let settle!: (v: { ok: true; value: unknown } | { ok: false; error: unknown }) => void;
        const answer = new Promise<{ ok: true; value: unknown } | { ok: false; error: unknown }>((r) => (settle = r));
        const call = ch.client.makeClientStreamRequest(path, ser, de, metadata, options, (err, value) => settle(err ? { ok: false, error: err } : { ok: true, value }));
        const onAbort = () => call.cancel();
        abortSignal?.addEventListener('abort', onAbort, { once: true });
        try {
          const writing = (async () => {
            for await (const m of req.message) {
              if (!call.write(m as never)) {
                const drained = await Promise.race([once(call, 'drain').then(() => true), answer.then(() => false)]);
                if (!drained) return; // the call ended (an error) before the rest could be sent
              }
            }
            call.end();
          })();
          const [r] = await Promise.all([answer, writing.catch((e) => {
            call.cancel();
            throw e;
          })]);
          if (!r.ok) throw r.error;
          pool.report(ch);
          let responseHeader: Headers | undefined;
          let trailer: Headers | undefined;
          return {
            stream: true,
            service: method.parent,
            method,
            get header() {
              return (responseHeader ??= new Headers());
            },
            get trailer() {
              return (trailer ??= new Headers());
            },
            message: (async function* () {
              yield r.value;
            })() as AsyncIterable<never>,
          };
        } catch (e) {
          // The source's own failure (a bad chunk) passes as it is; grpc-js statuses are mapped.
          if (!(e && typeof e === 'object' && typeof (e as { code?: unknown }).code === 'number')) throw e;
          const ce = localDeadline(connectErrorFromGrpc(e as grpc.ServiceError), method.name, timeoutMs);
          pool.report(ch, ce);
          throw annotateAttempt(pinned ? pinnedFailure(ce, ch) : ce, { endpoint: ch.endpoint.url, deadline });
        } finally {
          abortSignal?.removeEventListener('abort', onAbort);
          pool.release(ch);
        }
      };
      let next: (req: StreamRequest<any, any>) => Promise<StreamResponse<any, any>> = send;
      for (let i = interceptors.length - 1; i >= 0; i--) next = interceptors[i](next as never) as never;
      let res: StreamResponse<any, any>;
      try {
        res = await next(base);
      } catch (e) {
        throw cs.fail(e);
      }
      // The call's signal ends with the stream: aborted (as Connect does) after the last message or
      // with the error that ended it.
      const it = res.message[Symbol.asyncIterator]();
      return {
        ...res,
        message: {
          [Symbol.asyncIterator]: () => ({
            next: () =>
              it.next().then(
                (r) => {
                  if (r.done) cs.done();
                  return r;
                },
                (e: unknown) => {
                  throw cs.fail(e);
                },
              ),
          }),
        },
      };
    },
  };
}
