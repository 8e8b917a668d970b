/**
 * The one mapping from a PostgreSQL SQLSTATE to a gRPC status code and retry advice, shared by
 * the server (its ErrorDetail) and the client's PostgreSQL transport, so an error reads the same
 * whichever way it came. Browser-safe.
 * @packageDocumentation
 */
import { Code } from '@connectrpc/connect';

/**
 * The status code a SQLSTATE maps to (every class of PostgreSQL's Appendix A has one, so no
 * database error reaches a client as UNKNOWN). `severity` is the error's: a connection exception
 * (class 08) that PostgreSQL reports as an ordinary ERROR came from the statement itself (a
 * subscription that cannot reach its publisher) on a connection that still works.
 */
export function codeForSqlstate(sqlstate: string, severity = 'ERROR'): Code {
  switch (sqlstate) {
    case '40001': // serialization_failure
    case '40P01': // deadlock_detected
    case '55P03': // lock_not_available
      return Code.Aborted;
    case '23505': // unique_violation
      return Code.AlreadyExists;
    case '42501': // insufficient_privilege
      return Code.PermissionDenied;
    case '57014': // query_canceled
      return Code.Canceled;
    case '53300': // too_many_connections
    case '57P01': // admin_shutdown
    case '57P02': // crash_shutdown
    case '57P03': // cannot_connect_now
      return Code.Unavailable;
    case '08P01': // protocol_violation: a malformed request (e.g. the wrong number of parameters)
      return Code.InvalidArgument;
  }
  switch (sqlstate.slice(0, 2)) {
    case '08': // connection exception
      return statementOwn08(severity) ? Code.FailedPrecondition : Code.Unavailable;
    case '28': // invalid authorization
      return Code.Unauthenticated;
    case '03': // SQL statement not yet complete
    case '0F': // locator exception
    case '0L': // invalid grantor
    case '0P': // invalid role specification
    case '0A': // feature not supported
    case '21': // cardinality violation
    case '22': // data exception (bad value, overflow, bad text representation)
    case '26': // invalid SQL statement name (no such prepared statement)
    case '2F': // SQL routine exception
    case '34': // invalid cursor name
    case '3D': // invalid catalog name
    case '3F': // invalid schema name
    case '42': // syntax error or access rule violation
      return Code.InvalidArgument;
    case '09': // triggered action exception
    case '0B': // invalid transaction initiation
    case '0Z': // diagnostics exception
    case '20': // case not found
    case '23': // integrity constraint violation
    case '24': // invalid cursor state
    case '25': // invalid transaction state
    case '27': // triggered data change violation
    case '2B': // dependent privilege descriptors still exist
    case '2D': // invalid transaction termination
    case '38': // external routine exception
    case '39': // external routine invocation exception
    case '3B': // savepoint exception
    case '44': // WITH CHECK OPTION violation
    case '55': // object not in prerequisite state
    case '57': // operator intervention (the others: a dropped database, ...)
    case 'HV': // foreign data wrapper error
    case 'P0': // PL/pgSQL error, RAISE EXCEPTION among them
      return Code.FailedPrecondition;
    case '40': // transaction rollback
    case '72': // snapshot too old
      return Code.Aborted;
    case '53': // insufficient resources
    case '54': // program limit exceeded
      return Code.ResourceExhausted;
    case '58': // system error (a missing file, I/O)
    case 'F0': // configuration file error
    case 'XX': // internal error
      return Code.Internal;
  }
  return Code.Unknown;
}

/**
 * A class 08 error below FATAL is the statement's own, not a broken connection (severity is
 * PostgreSQL's possibly translated word; FATAL stays untranslated in most of its catalogs, so with
 * lc_messages in Russian a lost connection's 08 error is taken for the statement's, not retried).
 */
function statementOwn08(severity: string): boolean {
  return severity !== 'FATAL' && severity !== 'PANIC';
}

/** Whether a failure with this SQLSTATE may succeed when sent again (as a whole transaction). */
export function retryableSqlstate(sqlstate: string, severity: string): boolean {
  return (
    sqlstate === '40001' ||
    sqlstate === '40P01' ||
    sqlstate === '55P03' ||
    sqlstate === '53300' ||
    (sqlstate.startsWith('08') && sqlstate !== '08P01' && !statementOwn08(severity)) ||
    sqlstate === '57P01' ||
    sqlstate === '57P02' ||
    sqlstate === '57P03'
  );
}
