/**
 * The native gRPC listener: serves Connect ServiceImpls on a `@grpc/grpc-js` server (the measured
 * fast path), with deadlines and cancellation turned into an AbortSignal, server-streaming
 * backpressure, and errors sent with google.rpc.Status details in `grpc-status-details-bin`.
 * @packageDocumentation
 */
import { once } from 'node:events';
import { create, type DescMessage, type DescService, fromBinary, toBinary } from '@bufbuild/protobuf';
import { anyPack } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { StatusSchema } from '@heliosdb/client/wire';
import type { CallInfo } from '../auth/authenticator.js';
import type { PeerInfo, Principal } from '../auth/principal.js';
import type { CallContext } from '../call-context.js';
import {
  type ConnectionLimits,
  defaultConnectionLimits,
  type LimitedListener,
  listenLimited,
  maxAbandonedStreams,
  maxIncompleteRequests,
  maxSessionMemoryMb,
  requestTimeoutMs,
} from './connection-limits.js';
import { type GrpcRequestGate, grpcRequestGate } from './grpc-request-gate.js';
import { commonNameOf } from '../tls.js';
import { serializeStreamQueryResponse } from './rows-serializer.js';
import { type StreamQueryResponse, StreamQueryResponseSchema } from '@heliosdb/client/wire';

type AnyImpl = Record<string, (req: unknown, ctx: CallContext) => unknown>;

function serializer(desc: DescMessage): (msg: unknown) => Buffer {
  if (desc.typeName === StreamQueryResponseSchema.typeName)
    return (msg) => serializeStreamQueryResponse(create(StreamQueryResponseSchema, msg as StreamQueryResponse));
  return (msg: unknown): Buffer => {
    const bytes = toBinary(desc, create(desc, msg as never));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(desc: DescMessage) {
  return (buf: Buffer) => fromBinary(desc, buf);
}

/** gRPC metadata seen through the Headers `get` the service uses. */
class MetadataHeaders {
  constructor(private readonly md: grpc.Metadata) {}
  get(name: string): string | null {
    const v = this.md.get(name.toLowerCase());
    if (v.length === 0) return null;
    return v.map(String).join(', ');
  }
}

/** Encodes a ConnectError as a grpc-js status with rich details. */
export function grpcStatusOf(err: unknown, log: Logger): Partial<grpc.StatusObject> {
  let ce: ConnectError;
  if (err instanceof ConnectError) ce = err;
  else {
    log.error({ err }, 'unexpected error while serving a call');
    ce = new ConnectError(err instanceof Error ? err.message : String(err), Code.Internal);
  }
  const metadata = new grpc.Metadata();
  const details = ce.details.map((d) =>
    'desc' in d
      ? anyPack(d.desc, create(d.desc, d.value as never))
      : { $typeName: 'google.protobuf.Any' as const, typeUrl: `type.googleapis.com/${d.type}`, value: d.value },
  );
  const status = create(StatusSchema, { code: ce.code, message: ce.rawMessage, details });
  metadata.set('grpc-status-details-bin', Buffer.from(toBinary(StatusSchema, status)));
  return { code: ce.code as number as grpc.status, details: ce.rawMessage, metadata };
}

function contextOf(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): {
  ctx: CallContext;
  dispose: () => void;
} {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : Number(deadline);
  const expire = () => ac.abort(new ConnectError('deadline exceeded', Code.DeadlineExceeded));
  if (Number.isFinite(deadlineMs)) timer = setTimeout(expire, Math.max(0, deadlineMs - Date.now()));
  const onCancel = () => {
    if (Number.isFinite(deadlineMs) && Date.now() >= deadlineMs - 1) expire();
    else ac.abort(new ConnectError('cancelled by the client', Code.Canceled));
  };
  call.on('cancelled', onCancel);
  return {
    ctx: {
      signal: ac.signal,
      requestHeader: new MetadataHeaders(call.metadata),
      timeoutMs: () => (Number.isFinite(deadlineMs) ? deadlineMs - Date.now() : undefined),
    },
    dispose: () => {
      if (timer) clearTimeout(timer);
      call.removeListener('cancelled', onCancel);
    },
  };
}

type AnyServerCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;

/** Resolves the principal of a call (see ./auth/authenticator.ts); throws a ConnectError to refuse it. */
export type Authenticate = ((call: CallInfo) => Promise<Principal>) & {
  /** Whether the listener's connections are TLS (set by the gRPC listener for its calls). */
  encrypted?: boolean;
};

/**
 * The peer of a call: its address, and the client certificate grpc-js verified (mutual TLS; grpc-js
 * describes only verified peers). Every connection of a listener is TLS or none is.
 */
function peerOf(call: AnyServerCall, encrypted: boolean): PeerInfo {
  const peer = call.getPeer();
  const address = peer.startsWith('[')
    ? peer.slice(1, peer.indexOf(']'))
    : peer.lastIndexOf(':') > 0
      ? peer.slice(0, peer.lastIndexOf(':'))
      : peer;
  const auth = encrypted ? call.getAuthContext() : undefined;
  return {
    address,
    encrypted,
    certificateCommonName: auth?.transportSecurityType === 'ssl' ? commonNameOf(auth.sslPeerCertificate) : undefined,
  };
}

/** Authenticates a call and puts its principal and peer on `ctx`. */
async function authenticateCall(
  authenticate: Authenticate,
  service: DescService,
  method: string,
  call: AnyServerCall,
  ctx: CallContext,
): Promise<void> {
  const peer = peerOf(call, authenticate.encrypted === true);
  ctx.peer = peer;
  ctx.principal = await authenticate({
    service: service.typeName,
    method,
    headers: ctx.requestHeader,
    peer,
    signal: ctx.signal,
    timeoutMs: ctx.timeoutMs,
  });
}

/** Adds a Connect-style service implementation to a grpc-js server. */
export function addService(server: grpc.Server, service: DescService, impl: object, log: Logger, authenticate?: Authenticate): void {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  const fns = impl as AnyImpl;
  for (const method of service.methods) {
    const fn = fns[method.localName].bind(impl);
    const responseStream = method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming';
    const requestStream = method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming';
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream,
      responseStream,
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
      originalName: method.name,
    };
    if (requestStream && !responseStream) {
      // Client streaming (CopyFrom): the handler reads the request messages as an async iterable,
      // with backpressure (the stream is read only as fast as the handler consumes it).
      handlers[method.localName] = (call: grpc.ServerReadableStream<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const { ctx, dispose } = contextOf(call as unknown as grpc.ServerUnaryCall<unknown, unknown>);
        const requests = (async function* () {
          for await (const m of call) yield m;
        })();
        const p = authenticate
          ? authenticateCall(authenticate, service, method.name, call as unknown as AnyServerCall, ctx).then(() => fn(requests, ctx))
          : Promise.resolve().then(() => fn(requests, ctx));
        answer(p, dispose, callback, log);
      };
    } else if (!responseStream) {
      handlers[method.localName] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const { ctx, dispose } = contextOf(call);
        let p: Promise<unknown>;
        try {
          p = authenticate
            ? authenticateCall(authenticate, service, method.name, call, ctx).then(() => fn(call.request, ctx))
            : Promise.resolve(fn(call.request, ctx));
        } catch (e) {
          p = Promise.reject(e);
        }
        answer(p, dispose, callback, log);
      };
    } else {
      // Server streaming, and bidirectional (SessionService): the handler reads the request
      // messages as an async iterable, authenticated once when the stream opens.
      handlers[method.localName] = (call: grpc.ServerWritableStream<unknown, unknown>) => {
        const { ctx, dispose } = contextOf(call);
        void (async () => {
          if (authenticate) {
            if (requestStream) ctx.reauthenticate = () => authenticateCall(authenticate, service, method.name, call, ctx);
            try {
              await authenticateCall(authenticate, service, method.name, call, ctx);
            } catch (err) {
              if (!ctx.signal.aborted) call.emit('error', grpcStatusOf(err, log));
              dispose();
              return;
            }
          }
          const input = requestStream
            ? (async function* () {
                for await (const m of call as unknown as AsyncIterable<unknown>) yield m;
              })()
            : call.request;
          const it = (fn(input, ctx) as AsyncIterable<unknown>)[Symbol.asyncIterator]();
          let finished = false;
          try {
            for (;;) {
              const r = await it.next();
              if (r.done) {
                finished = true;
                break;
              }
              if (ctx.signal.aborted) break;
              if (!call.write(r.value)) {
                // Both waits are removed afterwards: a long stream waits for 'drain' many times,
                // and a listener left on the call's signal per wait piles up.
                const waited = new AbortController();
                await Promise.race([
                  once(call, 'drain', { signal: waited.signal }).catch(() => {}),
                  once(ctx.signal as unknown as NodeJS.EventEmitter, 'abort', { signal: waited.signal }).catch(() => {}),
                ]);
                waited.abort();
                if (ctx.signal.aborted) break;
              }
            }
            if (finished) call.end();
          } catch (err) {
            finished = true;
            if (!ctx.signal.aborted) call.emit('error', grpcStatusOf(err, log));
          } finally {
            if (!finished) await it.return?.().catch(() => {});
            dispose();
          }
        })();
      };
    }
  }
  server.addService(definition as grpc.ServiceDefinition, handlers);
}

/** Options of the native gRPC listener. */
export interface GrpcListenerOptions {
  host: string;
  port: number;
  maxMessageBytes: number;
  /** TLS (and mutual TLS) credentials; default insecure. */
  credentials?: grpc.ServerCredentials;
  /** Authenticates every call; default none (every call anonymous). */
  authenticate?: Authenticate;
  /** Connection, idle and stream limits; default {@link defaultConnectionLimits}. */
  limits?: ConnectionLimits;
  /**
   * Longest time a call may send no request message while the server waits for one (then it
   * ends with CANCELLED), ms. Default {@link requestTimeoutMs} (300000).
   */
  requestTimeoutMs?: number;
  /** Calls receiving their request at once before more are refused. Default {@link maxIncompleteRequests} (2000). */
  maxIncompleteRequests?: number;
}

/**
 * The grpc-js options that hold before a call is authenticated: streams per connection, the idle
 * timeout (grpc-js counts a connection with an open stream as busy) and nghttp2's memory per
 * connection (grpc-js's default is unlimited).
 */
export function grpcLimitOptions(limits: ConnectionLimits): grpc.ServerOptions {
  return {
    'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
    'grpc.max_connection_idle_ms': limits.idleConnectionTimeoutMs,
    'grpc-node.max_session_memory': maxSessionMemoryMb,
  };
}

/**
 * A grpc-js server whose connections come from a listener of ours. grpc-js has no option capping
 * its connections, so the listener is a `net.Server` with `maxConnections` (see
 * ./connection-limits.ts) and its sockets are handed to grpc-js through its public
 * `createConnectionInjector` (TLS, when the credentials have it, is still done by grpc-js's own
 * HTTP/2 server). Shutting down stops that listener too, and ends connections still in their TLS
 * handshake, which grpc-js does not know of yet.
 */
export class LimitedGrpcServer extends grpc.Server {
  private listener: LimitedListener | undefined;
  private gate: GrpcRequestGate | undefined;

  /** Serves the connections `listener` accepts from now on; `gate` is the one in its interceptors. */
  attach(listener: LimitedListener, gate?: GrpcRequestGate): void {
    this.listener = listener;
    this.gate = gate;
  }

  /** Client connections open now, counted by the listener (grpc-js keeps no public count). */
  get connectionCount(): number {
    return this.listener?.sockets.size ?? 0;
  }

  /** Calls receiving their request now (see {@link maxIncompleteRequests}). */
  get incompleteRequests(): number {
    return this.gate?.incomplete ?? 0;
  }

  override tryShutdown(callback: (error?: Error) => void): void {
    this.listener?.server.close();
    super.tryShutdown((err) => {
      this.destroySockets();
      callback(err);
    });
  }

  override forceShutdown(): void {
    this.listener?.server.close();
    super.forceShutdown();
    this.destroySockets();
  }

  private destroySockets(): void {
    for (const s of this.listener?.sockets ?? []) s.destroy();
  }
}

/** Starts a grpc-js server with the given services; resolves to it and its bound port. */
export async function startGrpcListener(
  opts: GrpcListenerOptions,
  services: { service: DescService; impl: object }[],
  log: Logger,
): Promise<{ server: LimitedGrpcServer; port: number }> {
  const limits = opts.limits ?? defaultConnectionLimits;
  const gate = grpcRequestGate({
    maxIncompleteRequests: opts.maxIncompleteRequests ?? maxIncompleteRequests,
    stallMs: opts.requestTimeoutMs ?? requestTimeoutMs,
    maxAbandonedStreams,
    log,
  });
  const server = new LimitedGrpcServer({
    // Counts and limits calls still receiving their request, before their handler runs.
    interceptors: [gate.interceptor],
    'grpc.max_receive_message_length': opts.maxMessageBytes,
    'grpc.max_send_message_length': opts.maxMessageBytes,
    'grpc.max_metadata_size': 16 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 1000,
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    ...grpcLimitOptions(limits),
  });
  const credentials = opts.credentials ?? grpc.ServerCredentials.createInsecure();
  const authenticate = opts.authenticate
    ? Object.assign((c: CallInfo) => opts.authenticate!(c), { encrypted: credentials._isSecure() })
    : undefined;
  for (const s of services) addService(server, s.service, s.impl, log, authenticate);
  const injector = server.createConnectionInjector(credentials);
  const listener = await listenLimited(
    { host: opts.host, port: opts.port, maxConnections: limits.maxConnections, name: 'grpc', log },
    (socket) => {
      gate.connection(socket);
      injector.injectConnection(socket);
    },
  );
  server.attach(listener, gate);
  return { server, port: listener.port };
}

/** Ends a call with one response: the handler's result, or its error as a gRPC status. */
function answer(p: Promise<unknown>, dispose: () => void, callback: grpc.sendUnaryData<unknown>, log: Logger): void {
  p.then(
    (res) => {
      dispose();
      callback(null, res);
    },
    (err) => {
      dispose();
      callback(grpcStatusOf(err, log) as grpc.ServiceError);
    },
  );
}
