/**
 * One mapping from database and server failures to Connect errors that carry a typed
 * heliosdb.v1.ErrorDetail, with fitting status codes and retry advice.
 * @packageDocumentation
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { ErrorDetailSchema } from '@heliosdb/client/wire';

type DetailInit = MessageInitShape<typeof ErrorDetailSchema>;

/** Builds a ConnectError carrying an ErrorDetail. */
export function serverError(code: Code, message: string, detail: DetailInit = {}): ConnectError {
  const value = create(ErrorDetailSchema, { ...detail, message });
  return new ConnectError(message, code, undefined, [{ desc: ErrorDetailSchema, value }]);
}

/** Errors outside the database, by reason. */
export const reasons = {
  transactionNotFound: 'TRANSACTION_NOT_FOUND',
  transactionExpired: 'TRANSACTION_EXPIRED',
  transactionBusy: 'TRANSACTION_BUSY',
  tooManyTransactions: 'TOO_MANY_TRANSACTIONS',
  rowLimitExceeded: 'ROW_LIMIT_EXCEEDED',
  rowTooLarge: 'ROW_TOO_LARGE',
  backendUnavailable: 'BACKEND_UNAVAILABLE',
  acquireTimeout: 'ACQUIRE_TIMEOUT',
  invalidParameter: 'INVALID_PARAMETER',
  invalidRequest: 'INVALID_REQUEST',
  statementNotFound: 'STATEMENT_NOT_FOUND',
  transactionControl: 'TRANSACTION_CONTROL_OUTSIDE_SESSION',
  cancelled: 'CANCELLED',
  deadlineExceeded: 'DEADLINE_EXCEEDED',
  statementTimeout: 'STATEMENT_TIMEOUT',
  shuttingDown: 'SHUTTING_DOWN',
  /** The database connection broke while a statement or COMMIT ran: its outcome is unknown. */
  backendConnectionLost: 'BACKEND_CONNECTION_LOST',
  /** The server could not log in to the database as the principal's login role. */
  backendLoginFailed: 'BACKEND_LOGIN_FAILED',
} as const;

/** The status code a SQLSTATE maps to. */
export function codeForSqlstate(sqlstate: string): Code {
  const cls = sqlstate.slice(0, 2);
  switch (sqlstate) {
    case '40001': // serialization_failure
    case '40P01': // deadlock_detected
      return Code.Aborted;
    case '23505': // unique_violation
      return Code.AlreadyExists;
    case '42501': // insufficient_privilege
      return Code.PermissionDenied;
    case '57014': // query_canceled
      return Code.Canceled;
    case '42P01': // undefined_table
    case '42883': // undefined_function
    case '42703': // undefined_column
      return Code.InvalidArgument;
    case '53300': // too_many_connections
    case '57P01': // admin_shutdown
    case '57P02': // crash_shutdown
    case '57P03': // cannot_connect_now
      return Code.Unavailable;
    case '55P03': // lock_not_available
      return Code.Aborted;
    case '08P01': // protocol_violation: a malformed request (e.g. the wrong number of parameters)
      return Code.InvalidArgument;
  }
  switch (cls) {
    case '23': // integrity constraint violation
      return Code.FailedPrecondition;
    case '22': // data exception (bad value, overflow, bad text representation)
    case '42': // syntax error or access rule violation
    case '2F':
    case '0A': // feature not supported
      return Code.InvalidArgument;
    case '25': // invalid transaction state
    case '0B': // invalid transaction initiation
    case '2D': // invalid transaction termination
    case '3B': // savepoint exception (e.g. no such savepoint)
    case '2B': // dependent privilege descriptors / objects still exist (e.g. DROP without CASCADE)
      return Code.FailedPrecondition;
    case '28': // invalid authorization
      return Code.Unauthenticated;
    case '08': // connection exception
      return Code.Unavailable;
    case '53': // insufficient resources
      return Code.ResourceExhausted;
    case '54': // program limit exceeded
      return Code.ResourceExhausted;
    case '40':
      return Code.Aborted;
    case 'XX':
      return Code.Internal;
  }
  return Code.Unknown;
}

/** Whether a failure with this SQLSTATE may succeed when sent again (as a whole transaction). */
function retryableSqlstate(sqlstate: string): boolean {
  return (
    sqlstate === '40001' ||
    sqlstate === '40P01' ||
    sqlstate === '55P03' ||
    sqlstate === '53300' ||
    (sqlstate.startsWith('08') && sqlstate !== '08P01') ||
    sqlstate === '57P01' ||
    sqlstate === '57P02' ||
    sqlstate === '57P03'
  );
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
    let code = codeForSqlstate(e.code);
    let reason = '';
    if (e.code === '57014' && /statement timeout/.test(message)) {
      // statement_timeout, not a cancellation by anyone: the server's own deadline passed.
      code = Code.DeadlineExceeded;
      reason = reasons.statementTimeout;
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
      retryable: retryableSqlstate(e.code),
      ...extra,
    });
  }
  if (/not queryable/i.test(message)) {
    // pg refuses to send on a connection it knows is dead: nothing was sent.
    return serverError(Code.Unavailable, `the database connection was lost before the statement was sent: ${message}`, {
      reason: reasons.backendUnavailable,
      retryable: true,
      retryAfterMs: 100,
      ...extra,
    });
  }
  if ((typeof e.code === 'string' && networkCodes.has(e.code)) || /Connection terminated|connection.*(closed|ended)/i.test(message)) {
    return serverError(Code.Unavailable, `database unavailable: ${message}`, {
      reason: reasons.backendUnavailable,
      retryable: true,
      retryAfterMs: 1000,
      ...extra,
    });
  }
  const heliosReason = (err as { heliosReason?: unknown } | null)?.heliosReason;
  if (heliosReason === 'USE_COPY_API') return serverError(Code.InvalidArgument, message, { reason: 'USE_COPY_API', ...extra });
  if (/timeout exceeded when trying to connect/i.test(message)) {
    return serverError(Code.Unavailable, 'timed out waiting for a free database connection', {
      reason: reasons.acquireTimeout,
      retryable: true,
      retryAfterMs: 1000,
      ...extra,
    });
  }
  return serverError(Code.Internal, message, extra);
}
