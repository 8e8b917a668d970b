/**
 * The backend messages the PostgreSQL port writes itself (the start-up handshake, refusals, the
 * COPY FROM STDIN exchange it plays for the embedded engine), and readers of the few frontend
 * message fields it looks at. Framing and the start-up packet come from ../pglite/wire.ts;
 * pg-protocol serializes frontend messages only, so these are written here.
 * @packageDocumentation
 */
export {
  authenticationOk,
  backendKeyData,
  cancelRequestCode,
  gssEncRequestCode,
  parameterStatus,
  parseOptionsParam,
  protocolVersion3,
  readyForQuery,
  sslRequestCode,
  startupParams,
} from '../pglite/wire.js';

/** A typed message: one type byte, an int32 length that counts itself, the body. */
export function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** A NUL-terminated UTF-8 string. */
export const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]);

/** AuthenticationCleartextPassword. */
export function authenticationCleartextPassword(): Buffer {
  const body = Buffer.alloc(4);
  body.writeInt32BE(3, 0);
  return message('R', body);
}

/** AuthenticationSASL with the mechanisms offered. */
export function authenticationSasl(mechanisms: string[]): Buffer {
  const code = Buffer.alloc(4);
  code.writeInt32BE(10, 0);
  return message('R', Buffer.concat([code, ...mechanisms.map(cstr), Buffer.alloc(1)]));
}

/** AuthenticationSASLContinue with the server-first-message. */
export function authenticationSaslContinue(data: string): Buffer {
  const code = Buffer.alloc(4);
  code.writeInt32BE(11, 0);
  return message('R', Buffer.concat([code, Buffer.from(data, 'utf8')]));
}

/** AuthenticationSASLFinal with the server-final-message. */
export function authenticationSaslFinal(data: string): Buffer {
  const code = Buffer.alloc(4);
  code.writeInt32BE(12, 0);
  return message('R', Buffer.concat([code, Buffer.from(data, 'utf8')]));
}

/** The fields of an ErrorResponse or NoticeResponse (the codes of PostgreSQL's protocol). */
export interface ErrorFields {
  severity: 'ERROR' | 'FATAL' | 'NOTICE' | 'WARNING';
  /** SQLSTATE. */
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

/** ErrorResponse (or, with `type` 'N', NoticeResponse). */
export function errorResponse(e: ErrorFields, type: 'E' | 'N' = 'E'): Buffer {
  const parts = [
    Buffer.from('S'),
    cstr(e.severity),
    Buffer.from('V'),
    cstr(e.severity),
    Buffer.from('C'),
    cstr(e.code),
    Buffer.from('M'),
    cstr(e.message),
  ];
  if (e.detail) parts.push(Buffer.from('D'), cstr(e.detail));
  if (e.hint) parts.push(Buffer.from('H'), cstr(e.hint));
  parts.push(Buffer.alloc(1));
  return message(type, Buffer.concat(parts));
}

/** CopyInResponse: overall format 0 (text) or 1 (binary), no per-column formats. */
export function copyInResponse(binary: boolean): Buffer {
  const body = Buffer.alloc(3);
  body.writeInt8(binary ? 1 : 0, 0);
  body.writeInt16BE(0, 1);
  return message('G', body);
}

/** CommandComplete with its tag, e.g. `COPY 10`. */
export function commandComplete(tag: string): Buffer {
  return message('C', cstr(tag));
}

/** The NUL-terminated string at `pos` of `buf` and the position after it. */
export function cstringAt(buf: Buffer, pos: number): [string, number] {
  const end = buf.indexOf(0, pos);
  if (end < 0) throw new ProtocolViolation('a string in a message has no terminator');
  return [buf.toString('utf8', pos, end), end + 1];
}

/** A frontend message that breaks the protocol: the connection ends with FATAL 08P01. */
export class ProtocolViolation extends Error {
  override readonly name = 'ProtocolViolation';
}

/** The SQL text of a Query message. */
export function queryText(msg: Buffer): string {
  return cstringAt(msg, 5)[0];
}

/** The statement name and SQL text of a Parse message. */
export function parseFields(msg: Buffer): { name: string; sql: string; rest: Buffer } {
  const [name, p1] = cstringAt(msg, 5);
  const [sql, p2] = cstringAt(msg, p1);
  return { name, sql, rest: msg.subarray(p2) };
}

/** The RowDescription-less cells of a DataRow (text), NULL as null. */
export function dataRowCells(msg: Buffer): (string | null)[] {
  const n = msg.readInt16BE(5);
  const out: (string | null)[] = [];
  let pos = 7;
  for (let i = 0; i < n; i++) {
    const len = msg.readInt32BE(pos);
    pos += 4;
    if (len < 0) out.push(null);
    else {
      out.push(msg.toString('utf8', pos, pos + len));
      pos += len;
    }
  }
  return out;
}

/** The fields of an ErrorResponse from the engine, by code letter. */
export function errorFieldsOf(msg: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 5;
  while (pos < msg.length && msg[pos] !== 0) {
    const code = String.fromCharCode(msg[pos]!);
    const [v, next] = cstringAt(msg, pos + 1);
    out[code] = v;
    pos = next;
  }
  return out;
}

/** A Query message. */
export function queryMessage(sql: string): Buffer {
  return message('Q', cstr(sql));
}

/** A Sync message. */
export const syncMessage: Buffer = message('S', Buffer.alloc(0));
