/**
 * A PostgreSQL error report (the fields node-postgres puts on its errors) as the status code and
 * ErrorDetail a HeliosDB server answers with: one mapping for the server and the client's
 * `postgres://` transport. Browser-safe.
 * @packageDocumentation
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { type ErrorDetailSchema, ErrorReason } from '../../../gen/heliosdb/v1/error_pb.js';
import { codeForSqlstate, retryableSqlstate } from './sqlstate.js';

/** The fields of a PostgreSQL error report, as node-postgres names them. */
export interface PgErrorLike {
  code?: unknown;
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

/**
 * The status code and ErrorDetail of a database error report, or undefined when `err` is not
 * one (no SQLSTATE and severity). A `statement_timeout` (57014) is the server's own deadline:
 * DEADLINE_EXCEEDED with reason STATEMENT_TIMEOUT.
 */
export function databaseErrorOf(
  err: unknown,
): { code: Code; message: string; detail: MessageInitShape<typeof ErrorDetailSchema> } | undefined {
  const e = (err ?? {}) as PgErrorLike;
  const sqlstate = typeof e.code === 'string' ? e.code : '';
  if (!/^[0-9A-Z]{5}$/.test(sqlstate) || !e.severity) return undefined;
  const message = e.message || String(err);
  let code = codeForSqlstate(sqlstate, e.severity);
  let reason = ErrorReason.UNSPECIFIED;
  if (sqlstate === '57014' && /statement timeout/.test(message)) {
    code = Code.DeadlineExceeded;
    reason = ErrorReason.STATEMENT_TIMEOUT;
  }
  return {
    code,
    message,
    detail: {
      reason,
      sqlstate,
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
      retryable: retryableSqlstate(sqlstate, e.severity),
    },
  };
}
