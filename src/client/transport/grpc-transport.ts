/**
 * A Connect `Transport` over the pooled `@grpc/grpc-js` channels: the Node fast path. Connect's
 * interceptors (metrics, retry, auth) run unchanged on top of it, as they do on the browser
 * transport. A call can be pinned to one channel through the `pinnedChannel` context value
 * (transactions do this).
 * @packageDocumentation
 */
import { create, isMessage } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  createContextKey,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from '@connectrpc/connect';
import { once } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { ConnectionError, HeliosDBError } from '../errors.js';
import { callKindOf } from '../call-kind.js';
import { isTransportFailure } from '../interceptors/failure.js';
import { annotateAttempt, avoidEndpoint } from './attempt-info.js';
import { LazyCall, localDeadline } from './grpc-call-state.js';
import { codecOf, connectErrorFromGrpc, metadataToHeaders, normalizeIterable } from './grpc-codec.js';
import type { GrpcChannelPool } from './grpc-pool.js';
import type { PooledChannel } from './pooled-channel.js';
import { SessionUnsupported } from './grpc-session.js';
import type { GrpcSessions } from './grpc-sessions.js';

/** Context value naming the channel a call must use (a `PooledChannel` from `GrpcChannelPool.pin`). */
export const pinnedChannel = createContextKey<unknown>(undefined, { description: 'heliosdb pinned channel' });

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

/** A unary response carrying `message` (a session operation's result), without headers or trailers. */
function unaryResponse(method: UnaryRequest<any, any>['method'], message: unknown): UnaryResponse<any, any> {
  let header: Headers | undefined;
  let trailer: Headers | undefined;
  return {
    stream: false,
    service: method.parent,
    method,
    get header() {
      return (header ??= new Headers());
    },
    message: message as never,
    get trailer() {
      return (trailer ??= new Headers());
    },
  };
}

/** Options of the grpc-js transport. */
export interface GrpcTransportOptions {
  pool: GrpcChannelPool;
  /** Base URL shown to interceptors (`http://host:port`). */
  baseUrl: string;
  interceptors?: Interceptor[];
  /** Unary DatabaseService calls over multiplexed sessions (./grpc-sessions.ts); default none (every call its own HTTP/2 stream). */
  sessions?: GrpcSessions;
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
  async function channelFor(pinned: unknown, avoid: string | undefined, anyServer: boolean, pack = false): Promise<PooledChannel> {
    let ch: PooledChannel;
    if (pinned && !((pinned as PooledChannel).closed && anyServer)) {
      ch = pinned as PooledChannel;
      if (ch.closed) {
        throw annotateAttempt(
          new ConnectError(
            `the connection to ${ch.endpoint.url} this transaction was bound to is closed; the transaction cannot continue (begin a new one)`,
            Code.Unavailable,
          ),
          { sent: false, endpoint: ch.endpoint.url },
        );
      }
      ch.inFlight++;
    } else {
      const got = pool.acquire(avoid, pack);
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
      const base = lazy.request<UnaryRequest<any, any>>(
        false,
        method,
        `${baseUrl}${path}`,
        isMessage(input, method.input) ? input : create(method.input, input as never),
      );
      const send = async (req: UnaryRequest<any, any>): Promise<UnaryResponse<any, any>> => {
        const { ours, abortSignal, values } = lazy.attempt(req);
        let ch: PooledChannel;
        try {
          // A keyed commit settles on any server (its key is in the database), even when its channel closed.
          const keyedCommit = callKindOf(method, req.message) === 'commit' && !!(req.message as { idempotencyKey?: string }).idempotencyKey;
          ch = await channelFor(values?.get(pinnedChannel), values?.get(avoidEndpoint), keyedCommit, opts.sessions !== undefined);
        } catch (e) {
          throw annotateAttempt(e, { sent: false, deadline });
        }
        const pinned = values?.get(pinnedChannel) === ch;
        try {
          abortSignal?.throwIfAborted();
          const metadata = lazy.metadata(req, ours);
          const session = opts.sessions?.sessionFor(ch, method, metadata);
          if (session) {
            try {
              const value = await session.run(method.localName, req.message, deadline, abortSignal);
              pool.report(ch);
              return unaryResponse(method, value);
            } catch (e) {
              if (!(e instanceof SessionUnsupported)) {
                const ce = localDeadline(ConnectError.from(e), method.name, timeoutMs);
                pool.report(ch, ce);
                throw annotateAttempt(pinned ? pinnedFailure(ce, ch) : ce, { endpoint: ch.endpoint.url, deadline });
              }
              // The server has no sessions: this call, and the next ones for a while, go unary.
            }
          }
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
        const call = ch.client.makeClientStreamRequest(path, ser, de, metadata, options, (err, value) =>
          settle(err ? { ok: false, error: err } : { ok: true, value }),
        );
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
          const [r] = await Promise.all([
            answer,
            writing.catch((e) => {
              call.cancel();
              throw e;
            }),
          ]);
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
