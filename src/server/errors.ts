/**
 * One mapping from database and server failures to Connect errors that carry a typed
 * heliosdb.v1.ErrorDetail, with fitting status codes and retry advice.
 * @packageDocumentation
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { databaseErrorOf, ErrorDetailSchema, ErrorReason, type PgErrorLike } from '@heliosdb/client/wire';

export { codeForSqlstate } from '@heliosdb/client/wire';

type DetailInit = MessageInitShape<typeof ErrorDetailSchema>;

/** Builds a ConnectError carrying an ErrorDetail. */
export function serverError(code: Code, message: string, detail: DetailInit = {}): ConnectError {
  const value = create(ErrorDetailSchema, { ...detail, message });
  return new ConnectError(message, code, undefined, [{ desc: ErrorDetailSchema, value }]);
}

const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Converts anything thrown while serving a call into a ConnectError with an ErrorDetail. */
export function toConnectError(err: unknown, extra: DetailInit = {}): ConnectError {
  if (err instanceof ConnectError) {
    if (extra.statementIndex === undefined) return err;
    const [detail] = err.findDetails(ErrorDetailSchema);
    return serverError(err.code, err.rawMessage, { ...(detail ?? {}), ...extra });
  }
  const db = databaseErrorOf(err);
  if (db) return serverError(db.code, db.message, { ...db.detail, ...extra });
  const e = (err ?? {}) as PgErrorLike & { code?: string };
  const message = e.message || String(err);
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
