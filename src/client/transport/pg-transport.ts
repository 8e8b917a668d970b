/**
 * A Connect `Transport` that answers HeliosDB's RPCs itself over the PostgreSQL protocol: each
 * DatabaseService (and grpc.health.v1) request is served by the handlers in `pg-*.ts` and
 * answered with the same response messages and errors a HeliosDB server sends, so everything above
 * the seam (the client API, the row decoders, `toHeliosError`, the retry, breaker and metrics
 * interceptors) is unchanged. Node only.
 * @packageDocumentation
 */
import { create, type DescMessage, type DescMethodStreaming, type DescMethodUnary } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  createContextValues,
  type ContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from '@connectrpc/connect';
import { runStreamingCall, runUnaryCall } from '@connectrpc/connect/protocol';
import { HealthCheckResponse_ServingStatus, HealthCheckResponseSchema, Health } from '../../../gen/grpc/health/v1/health_pb.js';
import { DatabaseService } from '../../../gen/heliosdb/v1/database_pb.js';
import { abortError, type PgCall } from './pg-backend.js';
import { fromPgError } from './pg-errors.js';
import type { PgSessions } from './pg-sessions.js';
import type { PgStatements } from './pg-statements.js';
import type { PgStreams } from './pg-streams.js';

/** The handlers the transport dispatches to. */
export interface PgHandlers {
  statements: PgStatements;
  sessions: PgSessions;
  streams: PgStreams;
  /** The server, for errors (`postgres://host:port`). */
  endpoint: string;
}

/** A request or response message of any method (requests are dispatched by method name). */
type AnyMessage = any;

/** Settles with `p`, or rejects with the signal's reason as soon as it aborts (the work finishes on its own). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(abortError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

async function unaryAnswer(h: PgHandlers, service: string, method: string, m: AnyMessage, call: PgCall): Promise<unknown> {
  if (service === Health.typeName) {
    await h.sessions.healthy(call);
    return create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING });
  }
  if (service !== DatabaseService.typeName) throw new ConnectError(`${service} is not served over postgres://`, Code.Unimplemented);
  const { statements: st, sessions: ss } = h;
  switch (method) {
    case 'Query':
      return st.query(m, call);
    case 'Execute':
      return st.execute(m, call);
    case 'Prepare':
      return st.prepare(m, call);
    case 'ExecutePrepared':
      return st.executePrepared(m, call);
    case 'ClosePrepared':
      // Each connection keeps the statement until it closes (node-postgres prepares it once per connection).
      return {};
    case 'ExecuteBatch':
      return st.executeBatch(m, call);
    case 'BeginTransaction':
      return ss.beginTransaction(m, call);
    case 'Commit':
      await ss.commit(m, call);
      return {};
    case 'Rollback':
      await ss.rollback(m, call);
      return {};
    case 'Savepoint':
      return ss.savepoint(m, call);
    case 'RollbackToSavepoint':
      await ss.rollbackToSavepoint(m, call);
      return {};
    case 'ReleaseSavepoint':
      await ss.releaseSavepoint(m, call);
      return {};
    case 'ReserveSession':
      return ss.reserveSession(call);
    case 'ReleaseSession':
      await ss.releaseSession(m, call);
      return {};
    case 'GetServerInfo':
      return ss.serverInfo(call);
  }
  throw new ConnectError(`${method} is not served over postgres://`, Code.Unimplemented);
}

function streamAnswer(h: PgHandlers, method: string, req: StreamRequest<AnyMessage, AnyMessage>, call: PgCall): AsyncIterable<unknown> {
  switch (method) {
    case 'StreamQuery':
    case 'CopyTo':
    case 'Listen':
      return (async function* () {
        let first: AnyMessage;
        for await (const m of req.message) {
          first = m;
          break;
        }
        const gen =
          method === 'StreamQuery'
            ? h.streams.streamQuery(first, call)
            : method === 'CopyTo'
              ? h.streams.copyTo(first, call)
              : h.streams.listen(first, call);
        try {
          yield* gen;
        } catch (e) {
          throw fromPgError(e, h.endpoint);
        }
      })();
    case 'CopyFrom':
      return (async function* () {
        yield await h.streams.copyFrom(req.message as AsyncIterable<AnyMessage>, call);
      })();
  }
  throw new ConnectError(`${method} is not served over postgres://`, Code.Unimplemented);
}

/** Builds the transport over the handlers, with `interceptors` (outermost first). */
export function createPgTransport(h: PgHandlers, interceptors: Interceptor[]): Transport {
  const url = (m: { parent: { typeName: string }; name: string }) => `${h.endpoint}/${m.parent.typeName}/${m.name}`;
  return {
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      message: AnyMessage,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      return runUnaryCall<I, O>({
        interceptors,
        signal,
        timeoutMs,
        req: {
          stream: false,
          service: method.parent,
          method,
          requestMethod: 'POST',
          url: url(method),
          header: new Headers(header),
          contextValues: contextValues ?? createContextValues(),
          message,
        },
        next: async (req: UnaryRequest<I, O>): Promise<UnaryResponse<I, O>> => {
          const call: PgCall = { signal: req.signal, header: req.header };
          const work = unaryAnswer(h, method.parent.typeName, method.name, req.message, call).catch((e) => {
            throw fromPgError(e, h.endpoint);
          });
          const out = await untilAborted(work, req.signal);
          return {
            stream: false,
            service: method.parent,
            method,
            header: new Headers(),
            message: create(method.output, out as never),
            trailer: new Headers(),
          };
        },
      });
    },

    stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: HeadersInit | undefined,
      input: AsyncIterable<AnyMessage>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      return runStreamingCall<I, O>({
        interceptors,
        signal,
        timeoutMs,
        req: {
          stream: true,
          service: method.parent,
          method,
          requestMethod: 'POST',
          url: url(method),
          header: new Headers(header),
          contextValues: contextValues ?? createContextValues(),
          message: input,
        },
        next: async (req: StreamRequest<I, O>): Promise<StreamResponse<I, O>> => {
          const call: PgCall = { signal: req.signal, header: req.header };
          const answers = streamAnswer(h, method.name, req, call) as AsyncIterable<never>;
          return {
            stream: true,
            service: method.parent,
            method,
            header: new Headers(),
            message: answers,
            trailer: new Headers(),
          };
        },
      });
    },
  };
}
