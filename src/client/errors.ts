/**
 * The HeliosDB error hierarchy, and the one seam that maps transport failures
 * and the server's ErrorDetail onto it. Browser-safe.
 *
 * ```
 * HeliosDBError
 * ├── ConnectionError ── ConnectionTimeoutError, AmbiguousResultError
 * ├── QueryError ── ConstraintViolationError ── UniqueViolationError, ForeignKeyViolationError,
 * │                                             NotNullViolationError, CheckViolationError
 * ├── TransactionError ── SerializationFailureError, DeadlockDetectedError
 * ├── AuthenticationError
 * ├── PermissionDeniedError
 * ├── TimeoutError
 * ├── CancelledError
 * ├── ParameterError
 * ├── ConfigurationError
 * ├── DecodeError
 * └── RetryableError (also matches, via instanceof, every error whose `retryable` is true)
 * ```
 *
 * `console.log(err)` shows `Name [CODE]: message`, the stack and only the fields that are set;
 * `JSON.stringify(err)` gives the same fields (parameters stay redacted unless `logParameters`).
 * @packageDocumentation
 */
import { Code, ConnectError } from '@connectrpc/connect';
import { type ErrorDetail, ErrorDetailSchema, ErrorReason } from '../../gen/heliosdb/v1/error_pb.js';
import { explainTls } from './connection-messages.js';
import type { ErrorReasonName, GrpcStatusName, HeliosDBErrorCode } from './error-codes.js';
import { errorFields, inspectError } from './error-format.js';

/** Fields every HeliosDB error can carry. */
export interface HeliosDBErrorOptions {
  /** The underlying error (a ConnectError, a network error, ...). */
  cause?: unknown;
  /** The transport status code (gRPC / Connect code number). Default `Code.Unknown`. */
  grpcCode?: Code;
  /** Whether retrying may succeed. Default false. */
  retryable?: boolean;
  /** Server-suggested wait before a retry, ms. Default undefined. */
  retryAfterMs?: number;
  /** The server's error detail, when it sent one. */
  detail?: ErrorDetail;
}

/** Root of every error the SDK throws. `code` is a stable machine-readable name. */
export class HeliosDBError extends Error {
  /** Stable error code, e.g. `UNIQUE_VIOLATION`, `CONNECT_TIMEOUT` (every value: {@link HeliosDBErrorCode}). */
  readonly code: HeliosDBErrorCode;
  /** The transport status code (Connect `Code`, equal to the gRPC status number). */
  readonly grpcCode: Code;
  /** Whether retrying the operation (for transactions: the whole transaction) may succeed. */
  readonly retryable: boolean;
  /** Server-suggested wait before retrying, ms; undefined when unknown. */
  readonly retryAfterMs: number | undefined;
  /** SQLSTATE of database errors (e.g. `23505`); undefined otherwise. */
  readonly sqlstate: string | undefined;
  /** Machine-readable reason of server errors outside the database (e.g. `TRANSACTION_EXPIRED`). */
  readonly reason: string | undefined;

  constructor(message: string, code: HeliosDBErrorCode = 'HELIOSDB_ERROR', options: HeliosDBErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.grpcCode = options.grpcCode ?? Code.Unknown;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
    this.sqlstate = options.detail?.sqlstate || undefined;
    this.reason = reasonName(options.detail?.reason);
    Object.setPrototypeOf(this, new.target.prototype);
  }

  /**
   * The error as JSON: `name`, `code`, `message` and every field that is set (`sqlstate`,
   * `constraint`, `query`, ...; `params` redacted unless the client has `logParameters: true`),
   * with `cause` summarised. bigints become decimal text and bytes `<N bytes>`.
   */
  toJSON(): Record<string, unknown> {
    return errorFields(this);
  }

  /** What `console.log(err)` and `util.inspect(err)` print (Node calls it; browsers ignore it). */
  [Symbol.for('nodejs.util.inspect.custom')](
    depth: number,
    options: object,
    inspect?: (value: unknown, options?: object) => string,
  ): string {
    return inspectError(this, depth, options, inspect);
  }
}

/** The server could not be reached, or a connection broke. */
export class ConnectionError extends HeliosDBError {}

/** No connection became available in time (`connectTimeoutMs`, `acquisitionTimeoutMs`). */
export class ConnectionTimeoutError extends ConnectionError {}

/**
 * A write (an auto-commit statement that changes data, or a transaction's commit) may or may not
 * have been applied: its request may have reached the server, but the answer was lost (the
 * connection broke, or the deadline passed) and its idempotency key could not settle it (keys
 * turned off, the retry budget or the deadline used up). The client does not guess: check the
 * data before doing it again. `cause` is the last failure. Never retryable as such (`code`
 * `AMBIGUOUS_RESULT`). See docs/resilience.md.
 */
export class AmbiguousResultError extends ConnectionError {
  /** The idempotency key the write was sent with, if any: sending the same request with it within the server's window still returns the first outcome. */
  readonly idempotencyKey: string | undefined;

  constructor(message: string, options: HeliosDBErrorOptions & { idempotencyKey?: string } = {}) {
    super(message, 'AMBIGUOUS_RESULT', { ...options, retryable: false });
    this.idempotencyKey = options.idempotencyKey || undefined;
  }
}

/** Options of a {@link QueryError}. */
export interface QueryErrorOptions extends HeliosDBErrorOptions {
  /** The SQL text. */
  query?: string;
  /** The parameters; shown only when the client has `logParameters: true`. */
  params?: readonly unknown[];
}

/** A statement failed in the database (bad SQL, bad value, constraint, ...). */
export class QueryError extends HeliosDBError {
  /** The SQL that failed. */
  readonly query: string | undefined;
  /** The parameters, or `'[redacted]'` unless the client was created with `logParameters: true`. */
  readonly params: readonly unknown[] | '[redacted]' | undefined;
  /** PostgreSQL's DETAIL. */
  readonly detail: string | undefined;
  /** PostgreSQL's HINT. */
  readonly hint: string | undefined;
  /** 1-based character position of the error in `query`. */
  readonly position: number | undefined;
  readonly schema: string | undefined;
  readonly table: string | undefined;
  readonly column: string | undefined;
  readonly dataType: string | undefined;
  /** Name of the violated constraint, when there is one. */
  readonly constraint: string | undefined;
  /** Index of the failing statement in a batch. */
  readonly statementIndex: number | undefined;

  constructor(message: string, code: HeliosDBErrorCode = 'QUERY_ERROR', options: QueryErrorOptions = {}) {
    super(message, code, options);
    const d = options.detail;
    this.query = options.query;
    this.params = options.params;
    this.detail = d?.detail || undefined;
    this.hint = d?.hint || undefined;
    this.position = d?.position || undefined;
    this.schema = d?.schema || undefined;
    this.table = d?.table || undefined;
    this.column = d?.column || undefined;
    this.dataType = d?.dataType || undefined;
    this.constraint = d?.constraint || undefined;
    this.statementIndex = d?.statementIndex;
  }
}

/** An integrity constraint was violated (SQLSTATE class 23). */
export class ConstraintViolationError extends QueryError {}
/** 23505. */
export class UniqueViolationError extends ConstraintViolationError {}
/** 23503. */
export class ForeignKeyViolationError extends ConstraintViolationError {}
/** 23502. */
export class NotNullViolationError extends ConstraintViolationError {}
/** 23514. */
export class CheckViolationError extends ConstraintViolationError {}

/** A transaction failed or was used wrongly (finished, expired, unknown). */
export class TransactionError extends HeliosDBError {}
/** 40001: retry the whole transaction (`client.transaction` does). */
export class SerializationFailureError extends TransactionError {}
/** 40P01: retry the whole transaction (`client.transaction` does). */
export class DeadlockDetectedError extends TransactionError {}

/** Credentials were missing or wrong. */
export class AuthenticationError extends HeliosDBError {}
/** The principal may not do this (SQLSTATE 42501, PERMISSION_DENIED). */
export class PermissionDeniedError extends HeliosDBError {}
/** The call's deadline (`timeoutMs`) or the server's statement timeout passed; the statement was cancelled. */
export class TimeoutError extends HeliosDBError {}
/** The call was cancelled (AbortSignal); the statement was cancelled on the server. */
export class CancelledError extends HeliosDBError {}
/** A parameter value cannot be sent (unsupported type, invalid Date, ...), or a result cannot be mapped (int8 beyond 2^53 with `int8: 'number'`). */
export class ParameterError extends HeliosDBError {}

/**
 * The client's options are wrong: an unknown option (the message names the nearest known one,
 * e.g. `connectionString` -> `url`). `code` is `INVALID_CONFIG`. Thrown by `createClient`.
 */
export class ConfigurationError extends HeliosDBError {
  constructor(message: string, code: HeliosDBErrorCode = 'INVALID_CONFIG', options: HeliosDBErrorOptions = {}) {
    super(message, code, options);
  }
}

/**
 * A result could not be decoded: the bytes the server sent do not hold what the column's type
 * says (a truncated row batch, malformed array text, invalid JSON, ...). `code` is
 * `DECODE_ERROR`. It points at a broken server or proxy; it is never retryable.
 */
export class DecodeError extends HeliosDBError {
  constructor(message: string, code: HeliosDBErrorCode = 'DECODE_ERROR', options: HeliosDBErrorOptions = {}) {
    super(message, code, options);
  }
}

/**
 * A temporary failure: retrying after `retryAfterMs` may succeed. `instanceof RetryableError` is
 * also true for every other HeliosDB error whose `retryable` is true (serialization failures,
 * deadlocks, an unreachable database), so one check covers them all.
 */
export class RetryableError extends HeliosDBError {
  constructor(message: string, code: HeliosDBErrorCode = 'RETRYABLE', options: HeliosDBErrorOptions = {}) {
    super(message, code, { ...options, retryable: true });
  }

  static override [Symbol.hasInstance](x: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class instanceof was asked about (a subclass keeps the plain check)
    if (this !== RetryableError) return Function.prototype[Symbol.hasInstance].call(this, x);
    return x instanceof HeliosDBError && x.retryable;
  }
}

/** @internal What a failing operation was doing, for the error's fields. */
export interface ErrorContext {
  query?: string;
  params?: readonly unknown[];
  /** Include `params` in the error (client option `logParameters`). Default false. */
  logParameters?: boolean;
}

const constraintClasses: Record<string, [typeof ConstraintViolationError, HeliosDBErrorCode]> = {
  '23505': [UniqueViolationError, 'UNIQUE_VIOLATION'],
  '23503': [ForeignKeyViolationError, 'FOREIGN_KEY_VIOLATION'],
  '23502': [NotNullViolationError, 'NOT_NULL_VIOLATION'],
  '23514': [CheckViolationError, 'CHECK_VIOLATION'],
};

/** The code of a TLS failure (certificate verification, handshake) in an error's cause chain. */
function tlsErrorCodeOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    if (code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || /CERT|SIGNATURE|_ISSUER|SELF_SIGNED/.test(code)) return code;
  }
  return undefined;
}

/** Why `WHERE CURRENT OF` finds no row, in PostgreSQL's FETCH semantics. */
const cursorHint =
  'a FETCH leaves the cursor on the last row it returned, or after the last row when it returned fewer rows than it asked for (the end of the result); ' +
  'to UPDATE or DELETE ... WHERE CURRENT OF every row, fetch one row at a time (cursor.fetch(1), or fetchSize: 1), or update the fetched rows by key';

/** @internal Maps anything a call threw onto the hierarchy. Already-mapped errors pass through. */
export function toHeliosError(err: unknown, ctx: ErrorContext = {}): HeliosDBError {
  if (err instanceof HeliosDBError) return err;
  // Connect wraps errors thrown inside a transport (the pool's, for instance); unwrap ours.
  if (err instanceof ConnectError && err.cause instanceof HeliosDBError) return err.cause;
  const ce = ConnectError.from(err);
  const detail = ce.findDetails(ErrorDetailSchema)[0];
  const message = detail?.message || ce.rawMessage;
  const base: QueryErrorOptions = {
    cause: err,
    grpcCode: ce.code,
    detail,
    retryable: detail?.retryable ?? false,
    retryAfterMs: detail?.retryAfterMs || undefined,
    query: ctx.query,
    params: ctx.params === undefined ? undefined : ctx.logParameters ? ctx.params : ('[redacted]' as never),
  };
  const sqlstate = detail?.sqlstate ?? '';
  if (sqlstate) {
    const cls = constraintClasses[sqlstate];
    if (cls) return new cls[0](message, cls[1], base);
    if (sqlstate.startsWith('23')) return new ConstraintViolationError(message, 'CONSTRAINT_VIOLATION', base);
    if (sqlstate === '40001') return new SerializationFailureError(message, 'SERIALIZATION_FAILURE', base);
    if (sqlstate === '40P01') return new DeadlockDetectedError(message, 'DEADLOCK_DETECTED', base);
    // 42501, and a read-only principal's write (25006 sent as PERMISSION_DENIED).
    if (sqlstate === '42501' || ce.code === Code.PermissionDenied) return new PermissionDeniedError(message, 'PERMISSION_DENIED', base);
    if (sqlstate.startsWith('28')) return new AuthenticationError(message, 'AUTHENTICATION_FAILED', base);
    if (sqlstate === '57014') {
      if (ce.code === Code.Canceled) return new CancelledError(message, 'CANCELLED', base);
      return new TimeoutError(message, 'TIMEOUT', base);
    }
    if (sqlstate === '25P02') return new TransactionError(message, 'TRANSACTION_ABORTED', base);
    if (sqlstate === '24000' && /is not positioned on a row/.test(message))
      return new QueryError(`${message}: ${cursorHint}`, 'QUERY_ERROR', base);
    if (sqlstate.startsWith('08') && ce.code === Code.Unavailable) return new ConnectionError(message, 'CONNECTION_ERROR', base);
    return new QueryError(message, 'QUERY_ERROR', base);
  }
  const reason = reasonName(detail?.reason);
  if (reason?.startsWith('TRANSACTION_')) return new TransactionError(message, reason, base);
  const tlsCode = tlsErrorCodeOf(ce.cause);
  if (tlsCode) {
    const why = explainTls(`${tlsCode} ${message}`);
    return new ConnectionError(why ? `${why} (${tlsCode})` : `TLS: ${message} (${tlsCode})`, 'TLS_ERROR', base);
  }
  switch (ce.code) {
    case Code.Unavailable:
      return new ConnectionError(message, 'CONNECTION_ERROR', { ...base, retryable: true });
    case Code.DeadlineExceeded:
      return new TimeoutError(message, 'TIMEOUT', base);
    case Code.Canceled:
      return new CancelledError(message, 'CANCELLED', base);
    case Code.Unauthenticated:
      return new AuthenticationError(message, 'AUTHENTICATION_FAILED', base);
    case Code.PermissionDenied:
      return new PermissionDeniedError(message, 'PERMISSION_DENIED', base);
    case Code.InvalidArgument:
      return new QueryError(message, reason || 'INVALID_ARGUMENT', base);
    case Code.ResourceExhausted:
      if (reason === 'ROW_LIMIT_EXCEEDED' || reason === 'ROW_TOO_LARGE') return new QueryError(message, reason, base);
      break;
  }
  if (base.retryable) return new RetryableError(message, reason || codeName(ce.code), base);
  return new HeliosDBError(message, reason || codeName(ce.code), base);
}

/**
 * @internal
 * The name of an {@link ErrorReason} (`TRANSACTION_EXPIRED`), what {@link HeliosDBError.reason}
 * holds; `undefined` for none, and `REASON_<n>` for a reason newer than this client.
 */
export function reasonName(reason: ErrorReason | undefined): ErrorReasonName | undefined {
  if (!reason) return undefined;
  return (ErrorReason[reason] as ErrorReasonName | undefined) ?? `REASON_${reason}`;
}

/** `Code.ResourceExhausted` -> `RESOURCE_EXHAUSTED`, the gRPC spelling. */
function codeName(code: Code): GrpcStatusName {
  const name = Code[code] as string | undefined;
  return name ? (name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase() as GrpcStatusName) : 'UNKNOWN';
}
