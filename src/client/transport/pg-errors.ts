/**
 * What node-postgres throws, as the Connect errors a HeliosDB server would answer with: a
 * database error carries its ErrorDetail (SQLSTATE, position, constraint, ...) with the status
 * code and retry advice of the shared SQLSTATE mapping, so `toHeliosError` gives the same classes
 * and codes on every transport; a broken or refused connection is a transport failure, which the
 * retry rules treat as on gRPC. Node only.
 * @packageDocumentation
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { ErrorDetailSchema, ErrorReason } from '../../../gen/heliosdb/v1/error_pb.js';
import { HeliosDBError } from '../errors.js';
import { databaseErrorOf, type PgErrorLike } from '../protocol/database-error.js';
import { annotateAttempt } from './attempt-info.js';

type DetailInit = MessageInitShape<typeof ErrorDetailSchema>;

/** A Connect error carrying an ErrorDetail. */
export function detailedError(code: Code, message: string, detail: DetailInit = {}): ConnectError {
  const value = create(ErrorDetailSchema, { ...detail, message });
  return new ConnectError(message, code, undefined, [{ desc: ErrorDetailSchema, value }]);
}

const refused = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const broken = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/**
 * Converts an error of node-postgres into a ConnectError (HeliosDB errors pass through).
 * `endpoint` names the server (for the retry budget); `sentAsRead`: the call ran on a read-only
 * connection, so a write's refusal (25006) means "not a read, nothing ran"; `statementIndex`:
 * the failing statement of a batch.
 */
export function fromPgError(err: unknown, endpoint: string, opts: { sentAsRead?: boolean; statementIndex?: number } = {}): unknown {
  if (err instanceof HeliosDBError || err instanceof ConnectError) return err;
  const e = (err ?? {}) as PgErrorLike;
  const message = e.message || String(err);
  const code = typeof e.code === 'string' ? e.code : '';
  const db = databaseErrorOf(err);
  if (db) {
    // A write in a call sent as a read (the read-only connection refused it): nothing ran.
    if (code === '25006' && opts.sentAsRead) {
      return detailedError(Code.FailedPrecondition, `sent as a read, but it writes: ${message}`, {
        sqlstate: code,
        reason: ErrorReason.NOT_A_READ,
      });
    }
    const fatal = e.severity === 'FATAL' || e.severity === 'PANIC';
    const ce = detailedError(db.code, message, {
      ...db.detail,
      ...(opts.statementIndex !== undefined ? { statementIndex: opts.statementIndex } : {}),
    });
    return fatal && code.startsWith('28') ? annotateAttempt(ce, { sent: false, endpoint }) : ce;
  }
  if (refused.has(code)) {
    return annotateAttempt(
      new ConnectError(`cannot connect to PostgreSQL at ${endpoint}: ${message}`, Code.Unavailable, undefined, undefined, err),
      {
        sent: false,
        endpoint,
      },
    );
  }
  if (broken.has(code) || /Connection terminated|connection.*(closed|ended)|not queryable/i.test(message)) {
    return annotateAttempt(
      new ConnectError(`the connection to PostgreSQL at ${endpoint} was lost: ${message}`, Code.Unavailable, undefined, undefined, err),
      {
        endpoint,
      },
    );
  }
  return new ConnectError(message, Code.Internal, undefined, undefined, err);
}
