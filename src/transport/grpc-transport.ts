/**
 * A Connect `Transport` over the pooled `@grpc/grpc-js` channels: the Node fast path. Connect's
 * interceptors (metrics, retry, auth) run unchanged on top of it, as they do on the browser
 * transport. A call can be pinned to one channel through the `pinnedChannel` context value
 * (transactions do this).
 * @packageDocumentation
 */
import { type DescMessage, type DescMethod, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type Interceptor,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from '@connectrpc/connect';
import { runStreamingCall, runUnaryCall } from '@connectrpc/connect/protocol';
import * as grpc from '@grpc/grpc-js';
import { StatusSchema } from '../../gen/google/rpc/status_pb.js';
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
  h.forEach((v, k) => md.add(k, v));
  return md;
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

  async function channelFor(pinned: unknown): Promise<PooledChannel> {
    let ch: PooledChannel;
    if (pinned) {
      ch = pinned as PooledChannel;
      if (ch.closed) throw new ConnectError('the connection this transaction was bound to is closed', Code.Unavailable);
      ch.inFlight++;
    } else {
      const got = pool.acquire();
      ch = got instanceof Promise ? await got : got;
    }
    const ready = pool.ready(ch);
    if (ready) {
      try {
        await ready;
      } catch (e) {
        pool.release(ch);
        throw e;
      }
    }
    return ch;
  }

  return {
    async unary(method, signal, timeoutMs, header, input, contextValues): Promise<UnaryResponse<any, any>> {
      const { ser, de, path } = codecOf(method);
      return runUnaryCall({
        interceptors,
        signal,
        timeoutMs,
        req: {
          stream: false,
          service: method.parent,
          method,
          requestMethod: 'POST',
          url: `${baseUrl}${path}`,
          header: new Headers(header),
          contextValues: contextValues ?? createContextValues(),
          message: input,
        },
        next: async (req) => {
          req.signal.throwIfAborted();
          const ch = await channelFor(req.contextValues.get(pinnedChannel));
          try {
            req.signal.throwIfAborted();
            return await new Promise<UnaryResponse<any, any>>((resolve, reject) => {
              let responseHeader: Headers | undefined;
              const options: grpc.CallOptions = timeoutMs ? { deadline: Date.now() + timeoutMs } : {};
              const call = ch.client.makeUnaryRequest(path, ser, de, req.message as never, headersToMetadata(req.header), options, (err, value) => {
                req.signal.removeEventListener('abort', onAbort);
                if (err) reject(connectErrorFromGrpc(err));
                else
                  resolve({
                    stream: false,
                    service: method.parent,
                    method,
                    header: responseHeader ?? new Headers(),
                    message: value as never,
                    trailer: new Headers(),
                  });
              });
              const onAbort = () => call.cancel();
              req.signal.addEventListener('abort', onAbort, { once: true });
              call.on('metadata', (md: grpc.Metadata) => (responseHeader = metadataToHeaders(md)));
            });
          } finally {
            pool.release(ch);
          }
        },
      });
    },

    async stream(method, signal, timeoutMs, header, input, contextValues): Promise<StreamResponse<any, any>> {
      const { ser, de, path } = codecOf(method);
      return runStreamingCall({
        interceptors,
        signal,
        timeoutMs,
        req: {
          stream: true,
          service: method.parent,
          method,
          requestMethod: 'POST',
          url: `${baseUrl}${path}`,
          header: new Headers(header),
          contextValues: contextValues ?? createContextValues(),
          message: input,
        },
        next: async (req) => {
          if (method.methodKind !== 'server_streaming') {
            throw new ConnectError(`${method.methodKind} calls are not used by HeliosDB`, Code.Unimplemented);
          }
          let message: unknown;
          for await (const m of req.message) {
            message = m;
            break;
          }
          req.signal.throwIfAborted();
          const ch = await channelFor(req.contextValues.get(pinnedChannel));
          if (req.signal.aborted) {
            pool.release(ch);
            req.signal.throwIfAborted();
          }
          const options: grpc.CallOptions = timeoutMs ? { deadline: Date.now() + timeoutMs } : {};
          const call = ch.client.makeServerStreamRequest(path, ser, de, message as never, headersToMetadata(req.header), options);
          let released = false;
          const release = () => {
            if (released) return;
            released = true;
            req.signal.removeEventListener('abort', onAbort);
            pool.release(ch);
          };
          // Connect's stream iterables have no return(): a consumer that stops early aborts the
          // signal and may never read again, so the call slot is given back here too.
          const onAbort = () => {
            call.cancel();
            release();
          };
          req.signal.addEventListener('abort', onAbort, { once: true });
          async function* messages() {
            try {
              for await (const m of call) yield m;
            } catch (e) {
              throw connectErrorFromGrpc(e as grpc.ServiceError);
            } finally {
              call.cancel();
              release();
            }
          }
          return {
            stream: true,
            service: method.parent,
            method,
            header: new Headers(),
            trailer: new Headers(),
            message: messages() as AsyncIterable<never>,
          };
        },
      });
    },
  };
}
