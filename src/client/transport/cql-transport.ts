/**
 * A Connect `Transport` that answers HeliosDB's RPCs itself over CQL (cassandra-driver): the
 * statement calls by `cql-statements.ts`, server information and health checks by `system.local`,
 * and what CQL has not (interactive transactions, savepoints, COPY, LISTEN, reserved sessions)
 * refused with a HeliosDBError `UNIMPLEMENTED` that says so. Everything above the seam (the
 * client API, the row decoders, `toHeliosError`, the retry, breaker and metrics interceptors) is
 * unchanged. Node only.
 * @packageDocumentation
 */
import { create, type DescMessage, type DescMethodStreaming, type DescMethodUnary } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from '@connectrpc/connect';
import { runStreamingCall, runUnaryCall } from '@connectrpc/connect/protocol';
import { Health, HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from '../../../gen/grpc/health/v1/health_pb.js';
import { DatabaseService, GetServerInfoResponseSchema } from '../../../gen/heliosdb/v1/database_pb.js';
import { cqlHasNo, fromCqlError } from './cql-errors.js';
import type { CqlStatements } from './cql-statements.js';
import { abortError } from './pg-backend.js';
import { maxUnaryRows } from './pg-statements.js';

/** What the transport dispatches to. */
export interface CqlHandlers {
  statements: CqlStatements;
  /** `SELECT release_version FROM system.local`'s answer. */
  releaseVersion(): Promise<string>;
  /** The server, for errors (`cql://host:port`). */
  endpoint: string;
  maxMessageBytes: number;
}

/** A request or response message of any method (requests are dispatched by method name). */
type AnyMessage = any;

const refusals: Record<string, [string, string]> = {
  BeginTransaction: ['interactive transactions', 'begin a transaction (use client.batch for several writes that apply together)'],
  Commit: ['interactive transactions', 'commit'],
  Rollback: ['interactive transactions', 'roll back'],
  Savepoint: ['savepoints', 'set a savepoint'],
  RollbackToSavepoint: ['savepoints', 'roll back to a savepoint'],
  ReleaseSavepoint: ['savepoints', 'release a savepoint'],
  ReserveSession: ['reserved sessions (session state lives on no connection)', 'reserve a session'],
  ReleaseSession: ['reserved sessions', 'release a session'],
  CopyTo: ['COPY', 'run COPY ... TO STDOUT'],
  CopyFrom: ['COPY', 'run COPY ... FROM STDIN'],
  Listen: ['LISTEN/NOTIFY', 'listen for notifications'],
};

/** Settles with `p`, or rejects as soon as `signal` aborts (the driver's request finishes on its own). */
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

async function unaryAnswer(h: CqlHandlers, service: string, method: string, m: AnyMessage): Promise<unknown> {
  if (service === Health.typeName) {
    await h.releaseVersion();
    return create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING });
  }
  if (service !== DatabaseService.typeName) throw new ConnectError(`${service} is not served over cql://`, Code.Unimplemented);
  const st = h.statements;
  switch (method) {
    case 'Query':
      return st.query(m);
    case 'Execute':
      return st.execute(m);
    case 'Prepare':
      return st.prepare(m);
    case 'ExecutePrepared':
      return st.executePrepared(m);
    case 'ClosePrepared':
      // The driver keeps prepared statements for the client's life.
      return {};
    case 'ExecuteBatch':
      return st.executeBatch(m);
    case 'GetServerInfo': {
      const version = await h.releaseVersion();
      return create(GetServerInfoResponseSchema, {
        version,
        engine: 'cql',
        engineVersion: `CQL native protocol v4, release ${version}`,
        limits: { maxMessageBytes: h.maxMessageBytes, maxUnaryRows, statementTimeoutMs: 0 },
      });
    }
  }
  const refusal = refusals[method];
  if (refusal) throw cqlHasNo(...refusal);
  throw new ConnectError(`${method} is not served over cql://`, Code.Unimplemented);
}

function streamAnswer(h: CqlHandlers, method: string, req: StreamRequest<AnyMessage, AnyMessage>): AsyncIterable<unknown> {
  if (method === 'StreamQuery') {
    return (async function* () {
      let first: AnyMessage;
      for await (const m of req.message) {
        first = m;
        break;
      }
      try {
        yield* h.statements.streamQuery(first, req.signal);
      } catch (e) {
        throw fromCqlError(e, h.endpoint);
      }
    })();
  }
  const refusal = refusals[method];
  if (refusal) throw cqlHasNo(...refusal);
  throw new ConnectError(`${method} is not served over cql://`, Code.Unimplemented);
}

/** Builds the transport over the handlers, with `interceptors` (outermost first). */
export function createCqlTransport(h: CqlHandlers, interceptors: Interceptor[]): Transport {
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
          const work = unaryAnswer(h, method.parent.typeName, method.name, req.message).catch((e) => {
            throw fromCqlError(e, h.endpoint);
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
          const answers = streamAnswer(h, method.name, req) as AsyncIterable<never>;
          return { stream: true, service: method.parent, method, header: new Headers(), message: answers, trailer: new Headers() };
        },
      });
    },
  };
}
