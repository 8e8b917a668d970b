/**
 * Client spans: one span (kind CLIENT) per DatabaseService call, with OpenTelemetry's database
 * semantic conventions (`db.system.name`, `db.operation.name`, `db.query.text` without parameter
 * values, `server.address`, `server.port`, the SQLSTATE as `db.response.status_code` and
 * `error.type` on errors), each retry an event on it, a stream's span ending at its last row; the
 * span's W3C `traceparent` goes with every attempt (gRPC metadata or HTTP header), through the
 * application's propagator when it registered one. With no tracer provider registered the
 * interceptor only reads one global and calls the next one. Browser-safe.
 * @packageDocumentation
 */
import type { Attributes, Context, Histogram, Span, TextMapSetter } from '@opentelemetry/api';
import {
  Code,
  ConnectError,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type UnaryRequest,
  type UnaryResponse,
} from '@connectrpc/connect';
import { toHeliosError } from '../errors.js';
import { observeRetries } from './call-observer.js';
import { clientInstruments } from './client-meter.js';
import { activeContext, type OtelGlobal, otelGlobal, spanKey } from './otel-global.js';
import { formatTraceparent, traceparentHeader } from './traceparent.js';

/** Options of client tracing (client option `tracing`). */
export interface TracingOptions {
  /** Record each statement's SQL text as `db.query.text` (never its parameter values). Default `true`. */
  queryText?: boolean;
}

/** The instrumentation scope of the client's spans and metrics. */
export const instrumentationName = '@heliosdb/client';

const databaseService = 'heliosdb.v1.DatabaseService';
/** SpanKind.CLIENT and SpanStatusCode.ERROR of the API (numbers, so nothing is imported). */
const CLIENT = 2;
const ERROR = 2;

/** RPCs without SQL text, by the name of what they do. */
const operationOfMethod: Record<string, string> = {
  BeginTransaction: 'BEGIN',
  Commit: 'COMMIT',
  Rollback: 'ROLLBACK',
  Savepoint: 'SAVEPOINT',
  RollbackToSavepoint: 'ROLLBACK TO SAVEPOINT',
  ReleaseSavepoint: 'RELEASE SAVEPOINT',
  CopyFrom: 'COPY',
  ClosePrepared: 'DEALLOCATE',
};

/** Long-lived calls that are no operation: not traced. */
const untraced = new Set(['Listen']);

const firstWord = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*([A-Za-z]+)/;

/** The SQL command a text starts with (`SELECT`, `INSERT`, ...), upper case; `''` when none. */
export function sqlOperationName(sql: string): string {
  return firstWord.exec(sql)?.[1]?.toUpperCase() ?? '';
}

const headerSetter: TextMapSetter<Headers> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

const endpoints = new Map<string, { address: string; port: number | undefined }>();

/** `server.address` and `server.port` of a request URL (cached per URL). */
function endpointOf(url: string): { address: string; port: number | undefined } {
  let e = endpoints.get(url);
  if (!e) {
    try {
      const u = new URL(url);
      const port = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : u.protocol === 'http:' ? 80 : undefined;
      e = { address: u.hostname.replace(/^\[|\]$/g, ''), port };
    } catch {
      e = { address: '', port: undefined };
    }
    if (endpoints.size < 256) endpoints.set(url, e);
  }
  return e;
}

interface SqlFields {
  sql?: string;
  statements?: { sql: string }[];
  parameterSets?: unknown[];
  parameterColumns?: { setCount: number };
}

/** What a call is, in the semantic conventions' terms. */
function describe(
  req: UnaryRequest | StreamRequest,
  m: SqlFields,
  queryText: boolean,
): { name: string; attributes: Attributes; metric: Attributes } {
  const method = req.method.name;
  let operation = operationOfMethod[method] ?? '';
  let text = m.sql ?? '';
  let batchSize = 0;
  if (method === 'ExecuteBatch') {
    const sqls = m.statements && m.statements.length > 0 ? m.statements.map((s) => s.sql) : [text];
    batchSize =
      m.statements && m.statements.length > 0 ? m.statements.length : (m.parameterColumns?.setCount ?? m.parameterSets?.length ?? 0);
    text = sqls.join('; ');
    const ops = [...new Set(sqls.map(sqlOperationName))];
    operation = `BATCH${ops.length === 1 && ops[0] ? ` ${ops[0]}` : ''}`;
  } else if (!operation) {
    operation = (text ? sqlOperationName(text) : '') || method;
  }
  const { address, port } = endpointOf(req.url);
  const metric: Attributes = { 'db.system.name': 'postgresql', 'db.operation.name': operation };
  if (address) metric['server.address'] = address;
  if (port !== undefined) metric['server.port'] = port;
  const attributes: Attributes = { ...metric, 'rpc.method': method };
  if (queryText && text) attributes['db.query.text'] = text;
  if (batchSize > 1) attributes['db.operation.batch.size'] = batchSize;
  return { name: operation, attributes, metric };
}

/** Starts the span of a call and sends its context with the request. */
function startSpan(g: OtelGlobal, req: UnaryRequest | StreamRequest, name: string, attributes: Attributes): Span {
  const parent: Context = activeContext(g);
  const tracer = g.trace!.getTracer(instrumentationName);
  const span = tracer.startSpan(name, { kind: CLIENT, attributes }, parent);
  const withSpan = parent.setValue(spanKey, span);
  const propagator = g.propagation;
  if (propagator && propagator.fields().length > 0) propagator.inject(withSpan, req.header, headerSetter);
  else if (span.spanContext().traceId) req.header.set(traceparentHeader, formatTraceparent(span.spanContext()));
  observeRetries(req, (note) => {
    const e = toHeliosError(note.error);
    span.addEvent('retry', {
      'heliosdb.retry.attempt': note.attempt,
      'heliosdb.retry.delay_ms': Math.round(note.delayMs),
      'error.type': e.sqlstate ?? e.code,
    });
  });
  return span;
}

/**
 * The request's SQL fields: a unary request's message, or the one message of a server-streaming
 * request (read, and put back for the layers inside); none for a request stream (CopyFrom).
 */
async function requestFields(req: UnaryRequest | StreamRequest): Promise<SqlFields> {
  if (!req.stream) return req.message as SqlFields;
  if (req.method.methodKind !== 'server_streaming') return {};
  const messages: unknown[] = [];
  for await (const m of req.message) messages.push(m);
  (req as { message: AsyncIterable<unknown> }).message = {
    async *[Symbol.asyncIterator]() {
      yield* messages;
    },
  };
  return (messages[0] ?? {}) as SqlFields;
}

/** One call's span and duration, ended once. */
class CallRecord {
  private readonly t0 = performance.now();
  constructor(
    private readonly span: Span | undefined,
    private readonly duration: Histogram | undefined,
    private readonly metric: Attributes,
  ) {}

  /** The call succeeded (`cancelled`: its caller stopped reading a stream). */
  ok(cancelled = false): void {
    if (cancelled) this.span?.setAttribute('heliosdb.cancelled', true);
    this.finish(undefined);
  }

  /** The call failed, or was cancelled by its caller (an AbortSignal, a stream left early): no failure. A deadline is one. */
  failed(caught: unknown, signal: AbortSignal | undefined): void {
    if (signal?.aborted && ConnectError.from(signal.reason).code !== Code.DeadlineExceeded) {
      this.ok(true);
      return;
    }
    const e = toHeliosError(caught);
    const type = e.sqlstate ?? e.code;
    if (this.span) {
      if (e.sqlstate) this.span.setAttribute('db.response.status_code', e.sqlstate);
      this.span.setAttribute('error.type', type);
      this.span.setStatus({ code: ERROR, message: e.message });
    }
    this.finish(e.sqlstate ? { 'db.response.status_code': e.sqlstate, 'error.type': type } : { 'error.type': type });
  }

  private finish(extra: Attributes | undefined): void {
    this.span?.end();
    this.duration?.record((performance.now() - this.t0) / 1000, extra ? { ...this.metric, ...extra } : this.metric);
  }
}

/**
 * The tracing interceptor (see the file comment), which also records `db.client.operation.duration`
 * when a meter provider is registered; the client places it outside the retry interceptor, so
 * that one span and one duration cover every attempt.
 */
export function tracingInterceptor(options: TracingOptions = {}): Interceptor {
  const queryText = options.queryText ?? true;
  return (next) => (req) => {
    const g = otelGlobal();
    // The fast path: no provider registered, not even a promise of our own.
    if (!g || (!g.trace && !g.metrics) || req.service.typeName !== databaseService || untraced.has(req.method.name)) return next(req);
    return traced(g, req, next, queryText);
  };
}

/** A call with a span and a duration. */
async function traced(
  g: OtelGlobal,
  req: UnaryRequest | StreamRequest,
  next: (req: UnaryRequest | StreamRequest) => Promise<UnaryResponse | StreamResponse>,
  queryText: boolean,
): Promise<UnaryResponse | StreamResponse> {
  const { name, attributes, metric } = describe(req, await requestFields(req), queryText);
  const span = g.trace ? startSpan(g, req, name, attributes) : undefined;
  const record = new CallRecord(span, g.metrics ? clientInstruments()?.duration : undefined, metric);
  let res;
  try {
    res = await next(req);
  } catch (e) {
    record.failed(e, req.signal);
    throw e;
  }
  if (!res.stream) {
    record.ok();
    return res;
  }
  const inner = res.message;
  return {
    ...res,
    message: (async function* () {
      let settled = false;
      try {
        yield* inner;
        settled = true;
        record.ok();
      } catch (e) {
        settled = true;
        record.failed(e, req.signal);
        throw e;
      } finally {
        if (!settled) record.ok(true);
      }
    })(),
  };
}
