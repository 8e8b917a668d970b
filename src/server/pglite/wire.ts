/**
 * The few pieces of the PostgreSQL wire protocol the embedded engine's connection speaks itself:
 * framing the client's byte stream into whole messages, reading the StartupMessage, and writing
 * the backend messages of the start-up handshake. pg-protocol (which pg uses) parses backend
 * messages and serializes frontend ones only, so the server side of the handshake is written by
 * hand here (five fixed-layout messages).
 * @packageDocumentation
 */

/** Protocol version 3.0 in a StartupMessage. */
export const protocolVersion3 = 196608;
/** SSLRequest's code, in the place of a protocol version in an untyped first message. */
export const sslRequestCode = 80877103;
/** GSSENCRequest's code (as above). */
export const gssEncRequestCode = 80877104;
/** CancelRequest's code (as above). */
export const cancelRequestCode = 80877102;

/** Frontend message types that belong to an extended-protocol exchange (until Sync). */
const exchangeTypes = new Set(['P', 'B', 'D', 'E', 'C', 'H']);

/** True when a frontend message of `type` opens or continues an extended-protocol exchange. */
export function continuesExchange(type: string): boolean {
  return exchangeTypes.has(type);
}

/**
 * Accumulates bytes and hands out whole messages: typed ones (1-byte type, int32 length that
 * counts itself) once the start-up is over, untyped ones (int32 length, body) before.
 */
export class Framer {
  private buf: Buffer = Buffer.alloc(0);

  /** Appends bytes as they arrive. */
  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /** The next whole untyped message (StartupMessage, SSLRequest...), or undefined. */
  nextUntyped(): Buffer | undefined {
    if (this.buf.length < 4) return undefined;
    const len = this.buf.readInt32BE(0);
    if (len < 8 || len > 10_000) throw new Error(`invalid start-up packet length ${len}`);
    if (this.buf.length < len) return undefined;
    return this.take(len);
  }

  /** The next whole typed message, or undefined. */
  nextTyped(): Buffer | undefined {
    if (this.buf.length < 5) return undefined;
    const len = this.buf.readInt32BE(1);
    if (len < 4) throw new Error(`invalid message length ${len}`);
    if (this.buf.length < len + 1) return undefined;
    return this.take(len + 1);
  }

  private take(n: number): Buffer {
    const msg = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return msg;
  }
}

/** The key/value pairs of a StartupMessage (`msg` is the whole message, length included). */
export function startupParams(msg: Buffer): [string, string][] {
  const out: [string, string][] = [];
  let pos = 8;
  const cstring = (): string => {
    const end = msg.indexOf(0, pos);
    if (end < 0) throw new Error('malformed start-up packet');
    const s = msg.toString('utf8', pos, end);
    pos = end + 1;
    return s;
  };
  while (pos < msg.length) {
    const key = cstring();
    if (key === '') break;
    out.push([key, cstring()]);
  }
  return out;
}

/**
 * The settings of the `options` start-up parameter, as PostgreSQL reads its command line:
 * `-c name=value`, `-cname=value` and `--name=value`, separated by spaces, a backslash escaping
 * the next character.
 */
export function parseOptionsParam(options: string): [string, string][] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < options.length; i++) {
    const ch = options[i]!;
    if (ch === '\\' && i + 1 < options.length) {
      word += options[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  const out: [string, string][] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    let setting: string | undefined;
    if (w === '-c') setting = words[++i];
    else if (w.startsWith('-c')) setting = w.slice(2);
    else if (w.startsWith('--')) setting = w.slice(2);
    const eq = setting?.indexOf('=') ?? -1;
    if (setting === undefined || eq <= 0) throw new Error(`invalid command-line argument for server process: ${w}`);
    out.push([setting.slice(0, eq).replace(/-/g, '_'), setting.slice(eq + 1)]);
  }
  return out;
}

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]);

/** AuthenticationOk. */
export function authenticationOk(): Buffer {
  return message('R', Buffer.alloc(4));
}

/** ParameterStatus. */
export function parameterStatus(name: string, value: string): Buffer {
  return message('S', Buffer.concat([cstr(name), cstr(value)]));
}

/** BackendKeyData. */
export function backendKeyData(processId: number, secretKey: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeInt32BE(processId, 0);
  body.writeInt32BE(secretKey, 4);
  return message('K', body);
}

/** ReadyForQuery with a transaction status (`I`, `T` or `E`). */
export function readyForQuery(status: string): Buffer {
  return message('Z', Buffer.from(status, 'latin1'));
}

/** The fields of an ErrorResponse that HeliosDB produces itself. */
export interface ErrorFields {
  severity: string;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

/** ErrorResponse. */
export function errorResponse(e: ErrorFields): Buffer {
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
  return message('E', Buffer.concat(parts));
}
