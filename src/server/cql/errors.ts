/**
 * CQL errors (native_protocol_v4.spec section 9): {@link CqlError} carries a code and its extra
 * fields, and {@link toCqlError} maps what the database or the server threw onto one.
 * @packageDocumentation
 */
import { ConnectError } from '@connectrpc/connect';
import { ErrorDetailSchema } from '@heliosdb/client/wire';
import { BodyWriter } from './frame.js';

/** Error codes of section 9. */
export const ErrorCode = {
  server: 0x0000,
  protocol: 0x000a,
  badCredentials: 0x0100,
  unavailable: 0x1000,
  overloaded: 0x1001,
  truncate: 0x1003,
  writeTimeout: 0x1100,
  readTimeout: 0x1200,
  syntax: 0x2000,
  unauthorized: 0x2100,
  invalid: 0x2200,
  config: 0x2300,
  alreadyExists: 0x2400,
  unprepared: 0x2500,
} as const;

/** An error answered as an ERROR message. */
export class CqlError extends Error {
  constructor(
    readonly code: number,
    message: string,
    /** Extra fields: the keyspace and table of Already_exists, the id of Unprepared. */
    readonly extra: { keyspace?: string; table?: string; id?: Buffer } = {},
  ) {
    super(message);
    this.name = 'CqlError';
  }

  /** The ERROR body. */
  encode(): Buffer {
    const w = new BodyWriter().int(this.code).string(this.message);
    if (this.code === ErrorCode.alreadyExists) w.string(this.extra.keyspace ?? '').string(this.extra.table ?? '');
    else if (this.code === ErrorCode.unprepared) w.shortBytes(this.extra.id ?? Buffer.alloc(0));
    else if (this.code === ErrorCode.unavailable) w.short(1).int(1).int(0);
    else if (this.code === ErrorCode.writeTimeout) w.short(1).int(0).int(1).string('SIMPLE');
    else if (this.code === ErrorCode.readTimeout) w.short(1).int(0).int(1).byte(0);
    return w.build();
  }
}

/** A statement CQL allows but this server cannot honour (Invalid, with the reason). */
export function unsupported(what: string): CqlError {
  return new CqlError(ErrorCode.invalid, `${what} is not supported by HeliosDB's CQL listener (docs/cql.md)`);
}

/** An Invalid error. */
export function invalid(message: string): CqlError {
  return new CqlError(ErrorCode.invalid, message);
}

/** The CQL error for a PostgreSQL SQLSTATE. */
function fromSqlstate(sqlstate: string, message: string): CqlError {
  if (sqlstate === '42501' || sqlstate === '25006') return new CqlError(ErrorCode.unauthorized, message);
  if (sqlstate === '42P06' || sqlstate === '42P07') return new CqlError(ErrorCode.alreadyExists, message);
  if (sqlstate === '57014') return new CqlError(ErrorCode.writeTimeout, message);
  if (sqlstate.startsWith('08') || sqlstate.startsWith('57') || sqlstate === '53300') return new CqlError(ErrorCode.unavailable, message);
  if (sqlstate === '40001' || sqlstate === '40P01') return new CqlError(ErrorCode.writeTimeout, message);
  if (sqlstate.startsWith('42') || sqlstate.startsWith('22') || sqlstate.startsWith('23') || sqlstate === '3F000')
    return new CqlError(ErrorCode.invalid, message);
  return new CqlError(ErrorCode.server, message);
}

/** Maps anything thrown while running a request onto a CQL error. */
export function toCqlError(e: unknown): CqlError {
  if (e instanceof CqlError) return e;
  if (e instanceof ConnectError) {
    const detail = e.findDetails(ErrorDetailSchema)[0];
    if (detail?.sqlstate) return fromSqlstate(detail.sqlstate, e.rawMessage);
    return new CqlError(ErrorCode.server, e.rawMessage);
  }
  const code = (e as { code?: unknown } | null)?.code;
  const message = (e as { message?: string } | null)?.message ?? String(e);
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return fromSqlstate(code, message);
  return new CqlError(ErrorCode.server, message);
}
