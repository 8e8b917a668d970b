/**
 * One mapping from database and server failures to Connect errors that carry a typed
 * heliosdb.v1.ErrorDetail, with fitting status codes and retry advice.
 * @packageDocumentation
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { codeForSqlstate, ErrorDetailSchema, ErrorReason, retryableSqlstate } from '@heliosdb/client/wire';

export { codeForSqlstate } from '@heliosdb/client/wire';

type DetailInit = MessageInitShape<typeof ErrorDetailSchema>;

/** Builds a ConnectError carrying an ErrorDetail. */
export function serverError(code: Code, message: string, detail: DetailInit = {}): ConnectError {
  const value = create(ErrorDetailSchema, { ...detail, message });
  return new ConnectError(message, code, undefined, [{ desc: ErrorDetailSchema, value }]);
}

interface PgErrorLike {
  code?: string;
  message?: string;
  detail?: string;
  hint?: string;
  position?: string;
  schema?: string;
  table?: string;
  column?: string;
  constraint?: string;
  dataType?: string;
  severity?: string;
  where?: string;
}

const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Converts anything thrown while serving a call into a ConnectError with an ErrorDetail. */
export function toConnectError(err: unknown, extra: DetailInit = {}): ConnectError {
  if (err instanceof ConnectError) {
    if (extra.statementIndex === undefined) return err;
    const [detail] = err.findDetails(ErrorDetailSchema);
    return serverError(err.code, err.rawMessage, { ...(detail ?? {}), ...extra });
  }
  const e = (err ?? {}) as PgErrorLike & { code?: string };
  const message = e.message || String(err);
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && e.severity) {
    let code = codeForSqlstate(e.code, e.severity);
    let reason = ErrorReason.UNSPECIFIED;
    if (e.code === '57014' && /statement timeout/.test(message)) {
      // statement_timeout, not a cancellation by anyone: the server's own deadline passed.
      code = Code.DeadlineExceeded;
      reason = ErrorReason.STATEMENT_TIMEOUT;
    }
    return serverError(code, message, {
      reason,
      sqlstate: e.code,
      detail: e.detail ?? '',
      hint: e.hint ?? '',
      position: e.position ? Number(e.position) : 0,
      schema: e.schema ?? '',
      table: e.table ?? '',
      column: e.column ?? '',
      constraint: e.constraint ?? '',
      dataType: e.dataType ?? '',
      severity: e.severity ?? '',
      where: e.where ?? '',
      retryable: retryableSqlstate(e.code, e.severity),
      ...extra,
    });
  }
  if (/not queryable/i.test(message)) {
    // pg refuses to send on a connection it knows is dead: nothing was sent.
    return serverError(Code.Unavailable, `the database connection was lost before the statement was sent: ${message}`, {
      reason: ErrorReason.BACKEND_UNAVAILABLE,
      retryable: true,
      retryAfterMs: 100,
      ...extra,
    });
  }
  if ((typeof e.code === 'string' && networkCodes.has(e.code)) || /Connection terminated|connection.*(closed|ended)/i.test(message)) {
    return serverError(Code.Unavailable, `database unavailable: ${message}`, {
      reason: ErrorReason.BACKEND_UNAVAILABLE,
      retryable: true,
      retryAfterMs: 1000,
      ...extra,
    });
  }
  const heliosReason = (err as { heliosReason?: unknown } | null)?.heliosReason;
  if (heliosReason === 'USE_COPY_API') return serverError(Code.InvalidArgument, message, { reason: ErrorReason.USE_COPY_API, ...extra });
  if (/timeout exceeded when trying to connect/i.test(message)) {
    return serverError(Code.Unavailable, 'timed out waiting for a free database connection', {
      reason: ErrorReason.ACQUIRE_TIMEOUT,
      retryable: true,
      retryAfterMs: 1000,
      ...extra,
    });
  }
  return serverError(Code.Internal, message, extra);
}
