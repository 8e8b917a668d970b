/**
 * Whole messages out of a byte stream, in both directions of the PostgreSQL port: untyped ones
 * (the start-up packets: int32 length, body) and typed ones (one type byte, int32 length that
 * counts itself). A length outside the protocol's bounds is a {@link ProtocolViolation}, never an
 * allocation.
 * @packageDocumentation
 */
import { ProtocolViolation } from './messages.js';

/** Longest start-up packet PostgreSQL accepts (10000 bytes). */
const maxStartupBytes = 10_000;

/** See the file comment. */
export class MessageFramer {
  private buf: Buffer = Buffer.alloc(0);

  /** @param maxMessageBytes the largest typed message accepted */
  constructor(private readonly maxMessageBytes: number) {}

  /** Appends bytes as they arrive. */
  push(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /** Bytes received that are no whole message yet. */
  get pending(): number {
    return this.buf.length;
  }

  /** Takes every byte not consumed yet. */
  drain(): Buffer {
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }

  /** The next whole untyped message, or undefined. */
  nextUntyped(): Buffer | undefined {
    if (this.buf.length < 4) return undefined;
    const len = this.buf.readInt32BE(0);
    if (len < 8 || len > maxStartupBytes) throw new ProtocolViolation(`invalid start-up packet length ${len}`);
    if (this.buf.length < len) return undefined;
    return this.take(len);
  }

  /** The next whole typed message, or undefined. */
  nextTyped(): Buffer | undefined {
    if (this.buf.length < 5) return undefined;
    const len = this.buf.readInt32BE(1);
    if (len < 4 || len > this.maxMessageBytes) throw new ProtocolViolation(`invalid message length ${len}`);
    if (this.buf.length < len + 1) return undefined;
    return this.take(len + 1);
  }

  private take(n: number): Buffer {
    const msg = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return msg;
  }
}
