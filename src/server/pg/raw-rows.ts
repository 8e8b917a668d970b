/**
 * DataRow messages whose cells stay bytes. node-postgres decodes every cell of every row into a
 * JavaScript string (pg-protocol's parser) that the server would then encode back into bytes for
 * the compact row format: on a stream of large rows that round trip is most of the server's CPU
 * and garbage. A backend connection wired with {@link keepRowBytes} parses with pg-protocol's own
 * parser, except that a DataRow becomes a {@link RawDataRow}: its cells are read from the bytes of
 * the message (./../result-encoder.ts copies them straight into a batch), and `fields` decodes
 * them into strings for everything else (pg's own Query, pg-cursor), exactly as pg-protocol would.
 *
 * pg-protocol exports its Parser, not a hook for one message type: the one method overridden
 * here, `handlePacket`, is private in its types, hence the cast. pg-protocol's tests run against
 * the same parser; test/raw-rows.test.ts checks that both parsers agree on every row shape.
 * @packageDocumentation
 */
import { Parser } from 'pg-protocol/dist/parser.js';

/** Message code of a DataRow ('D'). */
const dataRowCode = 0x44;

/**
 * One DataRow, its cells still in the bytes pg-protocol read. Valid only while the message is
 * being handled (pg handles every message synchronously): the parser reuses its buffer.
 */
export class RawDataRow {
  readonly name = 'dataRow';
  private decoded: (string | null)[] | undefined;

  /**
   * @param bytes - the parser's buffer
   * @param offset - where the message body (the int16 cell count) starts
   * @param length - the message length, as its header gives it
   */
  constructor(
    readonly bytes: Buffer,
    readonly offset: number,
    readonly length: number,
  ) {}

  /** Number of cells. */
  get cellCount(): number {
    return this.bytes.readInt16BE(this.offset);
  }

  /** The cells as pg-protocol decodes them: UTF-8 strings, `null` for NULL. */
  get fields(): (string | null)[] {
    if (this.decoded) return this.decoded;
    const { bytes } = this;
    const n = bytes.readInt16BE(this.offset);
    const out = new Array<string | null>(n);
    let pos = this.offset + 2;
    for (let i = 0; i < n; i++) {
      const len = bytes.readInt32BE(pos);
      pos += 4;
      if (len === -1) out[i] = null;
      else {
        out[i] = bytes.toString('utf8', pos, pos + len);
        pos += len;
      }
    }
    this.decoded = out;
    return out;
  }
}

type Packet = (offset: number, code: number, length: number, bytes: Buffer) => unknown;

/** pg-protocol's parser, with DataRows left as bytes ({@link RawDataRow}). */
export class RowBytesParser extends Parser {
  constructor() {
    super();
    const base = (this as unknown as { handlePacket: Packet }).handlePacket.bind(this);
    (this as unknown as { handlePacket: Packet }).handlePacket = (offset, code, length, bytes) =>
      code === dataRowCode ? new RawDataRow(bytes, offset, length) : base(offset, code, length, bytes);
  }
}

/** The part of pg's Connection this wiring replaces (see pg/lib/connection.js attachListeners). */
interface WirableConnection {
  attachListeners(stream: NodeJS.ReadableStream): void;
  emit(event: string, msg: unknown): boolean;
  _emitMessage?: boolean;
}

/**
 * Makes the connection of a (not yet connected) pg Client deliver DataRows as {@link RawDataRow}.
 * Everything else is pg's own: the same events in the same order.
 */
export function keepRowBytes(client: { connection: unknown }): void {
  const con = client.connection as WirableConnection;
  con.attachListeners = function attachListeners(stream) {
    const parser = new RowBytesParser();
    stream.on('data', (buffer: Buffer) =>
      parser.parse(buffer, (msg) => {
        const name = (msg as { name: string }).name;
        if (this._emitMessage) this.emit('message', msg);
        this.emit(name === 'error' ? 'errorMessage' : name, msg);
      }),
    );
  };
}
