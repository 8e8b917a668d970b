/**
 * What cassandra-driver throws, as the Connect errors a HeliosDB server would answer with, so that
 * `toHeliosError` gives the SDK's classes: a CQL error code becomes a SQLSTATE of the same meaning
 * (Syntax_error → 42601 → QueryError, Unauthorized → 42501 → PermissionDeniedError, Bad
 * credentials → 28P01 → AuthenticationError, Already_exists → 42P07, Invalid → 42000), and
 * Unavailable / Overloaded / Is_bootstrapping are retryable (the server ran nothing; the retry
 * rules send reads again, never a write without an idempotency key). A refused connection is a
 * request that never left. Node only.
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { ErrorDetailSchema, ErrorReason } from '../../../gen/heliosdb/v1/error_pb.js';
import { HeliosDBError } from '../errors.js';
import { databaseErrorOf } from '../protocol/database-error.js';
import { annotateAttempt } from './attempt-info.js';
import { detailedError } from './pg-errors.js';

/** CQL error codes (native protocol v4, section 9) and the SQLSTATE each stands for. */
const sqlstateOfCql: Record<number, string> = {
  0: 'XX000', // Server_error
  256: '28P01', // Bad credentials
  8192: '42601', // Syntax_error
  8448: '42501', // Unauthorized
  8704: '42000', // Invalid
  8960: '42000', // Config_error
  9216: '42P07', // Already_exists
};

/** Unavailable, Overloaded, Is_bootstrapping: refused before anything ran. */
const refusedCodes = new Set([0x1000, 0x1001, 0x1002]);
/** Read_timeout, Write_timeout: the replicas did not answer in time (a write's outcome is unknown). */
const timeoutCodes = new Set([0x1100, 0x1200]);

interface DriverErrorLike {
  name?: string;
  message?: string;
  code?: unknown;
  innerErrors?: Record<string, unknown>;
}

/** `[CQL 0x2000]`-style tag of a code. */
function tag(code: number): string {
  return `CQL 0x${code.toString(16).padStart(4, '0')}`;
}

/**
 * Converts an error of cassandra-driver into a ConnectError (HeliosDB and Connect errors pass
 * through). `endpoint` names the server (`cql://host:port`); `driverCall`: `err` came from a
 * driver call, whose TypeErrors are values it could not encode for their columns.
 */
export function fromCqlError(err: unknown, endpoint: string, driverCall = false): unknown {
  if (err instanceof HeliosDBError || err instanceof ConnectError) return err;
  const e = (err ?? {}) as DriverErrorLike;
  const message = e.message || String(err);
  if (e.name === 'ResponseError' && typeof e.code === 'number') {
    const code = e.code;
    if (refusedCodes.has(code)) {
      return detailedError(Code.Unavailable, `${message} (${tag(code)})`, { retryable: true, reason: ErrorReason.UNSPECIFIED });
    }
    if (timeoutCodes.has(code)) return detailedError(Code.DeadlineExceeded, `${message} (${tag(code)})`, { retryable: code === 0x1200 });
    const sqlstate = sqlstateOfCql[code] ?? 'XX000';
    const db = databaseErrorOf({ code: sqlstate, severity: 'ERROR', message });
    if (db) {
      const ce = detailedError(db.code, message, { ...db.detail, detail: tag(code) });
      return code === 0x0100 ? annotateAttempt(ce, { sent: false, endpoint }) : ce;
    }
  }
  if (e.name === 'NoHostAvailableError') {
    const inner = Object.values(e.innerErrors ?? {}) as DriverErrorLike[];
    const auth = inner.find((x) => x?.name === 'AuthenticationError');
    if (auth) {
      return annotateAttempt(
        detailedError(Code.Unauthenticated, `CQL authentication failed at ${endpoint}: ${auth.message ?? ''}`, { sqlstate: '28P01' }),
        { sent: false, endpoint },
      );
    }
    const why = inner.map((x) => x?.message).filter(Boolean)[0];
    return annotateAttempt(
      new ConnectError(`cannot connect to the CQL server at ${endpoint}: ${why ?? message}`, Code.Unavailable, undefined, undefined, err),
      { sent: false, endpoint },
    );
  }
  if (e.name === 'AuthenticationError') {
    return annotateAttempt(
      detailedError(Code.Unauthenticated, `CQL authentication failed at ${endpoint}: ${message}`, { sqlstate: '28P01' }),
      {
        sent: false,
        endpoint,
      },
    );
  }
  if (e.name === 'OperationTimedOutError') {
    return annotateAttempt(new ConnectError(`the CQL server at ${endpoint} did not answer in time: ${message}`, Code.Unavailable), {
      endpoint,
    });
  }
  if (driverCall && (err instanceof TypeError || e.name === 'ArgumentError')) {
    return detailedError(Code.InvalidArgument, `a parameter does not fit its CQL column: ${message}`, {
      reason: ErrorReason.INVALID_PARAMETER,
    });
  }
  return new ConnectError(message, Code.Internal, undefined, undefined, err);
}

/**
 * What CQL lacks (interactive transactions, savepoints, COPY, LISTEN, reserved sessions): the
 * caller gets a HeliosDBError with code `UNIMPLEMENTED` whose message says so. It travels as a
 * Connect error with an ErrorDetail (so no retry rule takes it for a lost answer) whose cause is
 * that HeliosDBError (what `toHeliosError` returns).
 */
export function cqlHasNo(what: string, instead: string): ConnectError {
  const message = `CQL has no ${what}, so a cql:// client cannot ${instead}`;
  const value = create(ErrorDetailSchema, { message, retryable: false });
  return new ConnectError(
    message,
    Code.Unimplemented,
    undefined,
    [{ desc: ErrorDetailSchema, value }],
    new HeliosDBError(message, 'UNIMPLEMENTED'),
  );
}
