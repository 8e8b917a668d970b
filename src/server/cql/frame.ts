/**
 * The CQL native protocol v4 frame (native_protocol_v4.spec section 2): a 9-byte header
 * (version, flags, stream, opcode, body length) and a body; and the body's notation (section 3:
 * [int], [short], [string], [long string], [bytes], [short bytes], [string list], [string map],
 * [string multimap], [value]) read with {@link BodyReader} and written with {@link BodyWriter}.
 * @packageDocumentation
 */

/** The protocol version this server speaks. */
export const protocolVersion = 4;

/** Header length in bytes. */
export const headerBytes = 9;

/** Opcodes (section 2.4). */
export const Opcode = {
  error: 0x00,
  startup: 0x01,
  ready: 0x02,
  authenticate: 0x03,
  options: 0x05,
  supported: 0x06,
  query: 0x07,
  result: 0x08,
  prepare: 0x09,
  execute: 0x0a,
  register: 0x0b,
  event: 0x0c,
  batch: 0x0d,
  authChallenge: 0x0e,
  authResponse: 0x0f,
  authSuccess: 0x10,
} as const;

/** Header flags (section 2.2). */
export const FrameFlag = { compression: 0x01, tracing: 0x02, customPayload: 0x04, warning: 0x08 } as const;

/** A frame as read from the wire. */
export interface Frame {
  /** The version byte's low 7 bits (the direction bit cleared). */
  readonly version: number;
  readonly flags: number;
  readonly stream: number;
  readonly opcode: number;
  readonly body: Buffer;
}

/** A malformed request: answered with a protocol error (0x000A). */
export class ProtocolViolation extends Error {}

/** The header of the next frame in `buf`, or undefined when fewer than 9 bytes have arrived. */
export function peekHeader(buf: Buffer): { version: number; flags: number; stream: number; opcode: number; length: number } | undefined {
  if (buf.length < headerBytes) return undefined;
  return {
    version: buf[0] & 0x7f,
    flags: buf[1],
    stream: buf.readInt16BE(2),
    opcode: buf[4],
    length: buf.readInt32BE(5),
  };
}

/** Encodes a response frame (the direction bit set) with `body`. */
export function encodeFrame(stream: number, opcode: number, body: Buffer, flags = 0, version = protocolVersion): Buffer {
  const head = Buffer.allocUnsafe(headerBytes);
  head[0] = 0x80 | version;
  head[1] = flags;
  head.writeInt16BE(stream, 2);
  head[4] = opcode;
  head.writeInt32BE(body.length, 5);
  return Buffer.concat([head, body]);
}

/** A value of the [value] notation: bytes, null (-1) or unset (-2). */
export type WireValue = Buffer | null | 'unset';

/** Reads the notation of section 3 from a body; every read checks the bounds. */
export class BodyReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  /** Bytes not read yet. */
  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number): void {
    if (n < 0 || this.pos + n > this.buf.length) throw new ProtocolViolation('the message body ends early');
  }

  byte(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  short(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  int(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  long(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  raw(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  string(): string {
    return this.raw(this.short()).toString('utf8');
  }

  longString(): string {
    return this.raw(this.int()).toString('utf8');
  }

  /** [bytes]: null for a negative length. */
  bytes(): Buffer | null {
    const n = this.int();
    return n < 0 ? null : this.raw(n);
  }

  shortBytes(): Buffer {
    return this.raw(this.short());
  }

  /** [value]: bytes, null (-1) or unset (-2). */
  value(): WireValue {
    const n = this.int();
    if (n === -1) return null;
    if (n === -2) return 'unset';
    if (n < 0) throw new ProtocolViolation(`invalid value length ${n}`);
    return this.raw(n);
  }

  stringMap(): Map<string, string> {
    const n = this.short();
    const out = new Map<string, string>();
    for (let i = 0; i < n; i++) out.set(this.string(), this.string());
    return out;
  }

  stringList(): string[] {
    const n = this.short();
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(this.string());
    return out;
  }
}

/** Writes the notation of section 3. */
export class BodyWriter {
  private readonly parts: Buffer[] = [];

  byte(v: number): this {
    this.parts.push(Buffer.from([v & 0xff]));
    return this;
  }

  short(v: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16BE(v);
    this.parts.push(b);
    return this;
  }

  int(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }

  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }

  string(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.short(b.length).raw(b);
  }

  longString(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.int(b.length).raw(b);
  }

  /** [bytes]; null is written as length -1. */
  bytes(b: Buffer | null): this {
    if (b === null) return this.int(-1);
    return this.int(b.length).raw(b);
  }

  shortBytes(b: Buffer): this {
    return this.short(b.length).raw(b);
  }

  stringList(list: readonly string[]): this {
    this.short(list.length);
    for (const s of list) this.string(s);
    return this;
  }

  stringMultimap(map: ReadonlyMap<string, readonly string[]>): this {
    this.short(map.size);
    for (const [k, v] of map) this.string(k).stringList(v);
    return this;
  }

  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}
