/**
 * The compact row encoding (ROW_FORMAT_COMPACT): all cells of a batch in one byte string, each a
 * varint of (byte length + 1), 0 meaning NULL, followed by the bytes. Browser-safe.
 * @packageDocumentation
 */

import { DecodeError } from '../errors.js';

// ignoreBOM: a leading U+FEFF is part of the cell, not a byte-order mark to drop.
const utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Decodes UTF-8 bytes `[start, end)` of `bytes` into a string, with a fast path for short ASCII. */
export function decodeUtf8(bytes: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n <= 24) {
    let s = '';
    for (let i = start; i < end; i++) {
      const b = bytes[i];
      if (b >= 0x80) return utf8Decoder.decode(bytes.subarray(start, end));
      s += String.fromCharCode(b);
    }
    return s;
  }
  return utf8Decoder.decode(bytes.subarray(start, end));
}

/** Reads the cells of a compact batch in row-major order. */
export class CompactReader {
  /** Read position: the start of the next cell header. */
  pos = 0;
  /** Byte offset of the cell returned by the last `next()`. */
  start = 0;
  constructor(readonly bytes: Uint8Array) {}

  /**
   * Reads the next cell and moves past it; returns its byte length (-1 for NULL). Throws
   * {@link DecodeError} when the batch ends before the cell does (a truncated or corrupt batch).
   */
  next(): number {
    const bytes = this.bytes;
    let pos = this.pos;
    if (pos >= bytes.length) throw truncated(pos + 1, bytes.length);
    let b = bytes[pos++];
    let v = b & 0x7f;
    if (b >= 0x80) {
      let shift = 7;
      do {
        if (pos >= bytes.length) throw truncated(pos + 1, bytes.length);
        // A cell is smaller than a message (2^32 bytes at most): five varint bytes are plenty.
        if (shift > 28) throw new DecodeError(`compact row batch is corrupt: a cell header at byte ${this.pos} is longer than 5 bytes`);
        b = bytes[pos++];
        v += (b & 0x7f) * 2 ** shift;
        shift += 7;
      } while (b >= 0x80);
    }
    const len = v - 1;
    if (len > 0 && pos + len > bytes.length) throw truncated(pos + len, bytes.length);
    this.start = pos;
    this.pos = len > 0 ? pos + len : pos;
    return len;
  }

  get done(): boolean {
    return this.pos >= this.bytes.length;
  }
}

function truncated(needed: number, length: number): DecodeError {
  return new DecodeError(`compact row batch is truncated: it has ${length} bytes, the next cell needs ${needed} or more`);
}

/** Builds a compact batch. Grows its buffer as needed; `finish()` returns the bytes so far. */
export class CompactWriter {
  private buf: Uint8Array;
  private pos = 0;

  constructor(initialBytes = 16 * 1024) {
    this.buf = new Uint8Array(initialBytes);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  private header(len: number): void {
    let v = len + 1;
    const buf = this.buf;
    while (v >= 0x80) {
      buf[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    buf[this.pos++] = v;
  }

  /** Appends a NULL cell. */
  null(): void {
    this.ensure(1);
    this.buf[this.pos++] = 0;
  }

  /** Appends a text cell, UTF-8 encoded. */
  text(s: string): void {
    const max = s.length * 3;
    this.ensure(max + 5);
    if (s.length < 64) {
      // Short strings: encode inline, ASCII fast path.
      let ascii = true;
      for (let i = 0; i < s.length; i++) {
        if (s.charCodeAt(i) >= 0x80) {
          ascii = false;
          break;
        }
      }
      if (ascii) {
        this.header(s.length);
        const buf = this.buf;
        let p = this.pos;
        for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i);
        this.pos = p;
        return;
      }
    }
    // Reserve the largest header for `max`, encode, then move the bytes if the header is shorter.
    const headerAt = this.pos;
    const reserve = varintSize(max + 1);
    const { written } = utf8Encoder.encodeInto(s, this.buf.subarray(headerAt + reserve));
    const actual = varintSize(written + 1);
    if (actual !== reserve) {
      this.buf.copyWithin(headerAt + actual, headerAt + reserve, headerAt + reserve + written);
    }
    this.header(written);
    this.pos = headerAt + actual + written;
  }

  /** Appends a cell whose bytes are `src[start, end)` (UTF-8 text or binary, as they are). */
  copy(src: Uint8Array, start: number, end: number): void {
    const len = end - start;
    this.ensure(len + 5);
    this.header(len);
    this.buf.set(src.subarray(start, end), this.pos);
    this.pos += len;
  }

  /** Appends a binary cell. */
  bytes(b: Uint8Array): void {
    this.ensure(b.length + 5);
    this.header(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Returns the batch and starts a new one. */
  finish(): Uint8Array {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    return out;
  }
}

/** Bytes of the unsigned varint (LEB128, as protobuf writes it) holding `v`. */
export function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}
