/**
 * A span (kind CLIENT, the database semantic conventions) per statement the server sends to the
 * database for a traced call, a child of the call's span (./call-tracing.ts).
 * @packageDocumentation
 */
import { type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { ConnectError } from '@connectrpc/connect';
import { ErrorDetailSchema, sqlOperationName } from '@heliosdb/client/wire';
import { serverInstrumentationName, traceContextOf } from './call-tracing.js';
import { VERSION } from '../version.js';

/** The span of a statement `text` run for the call of `signal`; undefined when that call is not traced. */
export function startStatementSpan(signal: AbortSignal, text: string | undefined, engine: string): Span | undefined {
  const parent = traceContextOf(signal);
  if (!parent) return undefined;
  const operation = text ? sqlOperationName(text) : '';
  const attributes: Record<string, string> = { 'db.system.name': 'postgresql', 'heliosdb.engine': engine };
  if (operation) attributes['db.operation.name'] = operation;
  if (text) attributes['db.query.text'] = text;
  return trace
    .getTracer(serverInstrumentationName, VERSION)
    .startSpan(operation || 'postgresql', { kind: SpanKind.CLIENT, attributes }, parent);
}

/** Ends a statement's span, with the error it failed with. */
export function endStatementSpan(span: Span | undefined, error?: unknown): void {
  if (!span) return;
  if (error !== undefined) {
    const sqlstate =
      error instanceof ConnectError
        ? error.findDetails(ErrorDetailSchema)[0]?.sqlstate
        : ((error as { code?: unknown })?.code as string | undefined);
    if (typeof sqlstate === 'string' && /^[0-9A-Z]{5}$/.test(sqlstate)) {
      span.setAttribute('db.response.status_code', sqlstate);
      span.setAttribute('error.type', sqlstate);
    } else {
      span.setAttribute('error.type', error instanceof Error ? error.name : 'Error');
    }
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
  }
  span.end();
}
