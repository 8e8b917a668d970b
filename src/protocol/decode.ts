/**
 * Result decoding: compact row batches (PostgreSQL text cells) -> JavaScript values. Browser-safe.
 *
 * | PostgreSQL | JavaScript |
 * |---|---|
 * | bool | boolean |
 * | int2, int4, oid, float4, float8 | number (NaN, +-Infinity kept) |
 * | int8 | bigint (client option `int8`: `'number'` throws beyond 2^53, `'string'`) |
 * | numeric, money | string (exact) |
 * | text, varchar, char, name, uuid, xml, enums, ... | string |
 * | bytea | Uint8Array |
 * | date | string `YYYY-MM-DD` |
 * | time, timetz | string |
 * | timestamp, timestamptz | Date (timestamp read as UTC); `'infinity'` / `'-infinity'` as strings |
 * | interval | `{ months, days, micros }` |
 * | json, jsonb | parsed value |
 * | one-dimensional arrays | arrays of the element mapping |
 * @packageDocumentation
 */
import type { Column, Rows } from '../../gen/heliosdb/v1/value_pb.js';
import { ParameterError } from '../errors.js';
import { type ArrayItems, parseArrayLiteral } from './array-literal.js';
import { CompactReader, decodeUtf8 } from './compact.js';
import { parseInterval, parseTimestampMs } from './datetime.js';
import { arrayElementOid, Oid } from './oids.js';

/** How int8 (bigint) columns are returned. */
export type Int8Mode = 'bigint' | 'number' | 'string';

/** An interval exactly as PostgreSQL stores it. */
export interface Interval {
  months: number;
  days: number;
  micros: bigint;
}

/** Options of result decoding. */
export interface DecodeOptions {
  /** Default `'bigint'`. */
  int8: Int8Mode;
}

type TextParser = (s: string) => unknown;

function parseInt8Number(s: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n)) {
    throw new ParameterError(`int8 value ${s} cannot be a JavaScript number without losing precision (client option int8: 'number'); use 'bigint' or 'string'`, 'INT8_PRECISION_LOSS');
  }
  return n;
}

function parseTimestamp(s: string): Date | string {
  const ms = parseTimestampMs(s);
  return ms === undefined ? s : new Date(ms);
}

function hexToBytes(hex: string): Uint8Array {
  const n = (hex.length - 2) >> 1;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = parseInt(hex.substr(2 + i * 2, 2), 16);
  return out;
}

function textParserFor(oid: number, opts: DecodeOptions): TextParser | undefined {
  switch (oid) {
    case Oid.bool:
      return (s) => s === 't';
    case Oid.int2:
    case Oid.int4:
    case Oid.oid:
    case Oid.float4:
    case Oid.float8:
      return Number;
    case Oid.int8:
      return opts.int8 === 'bigint' ? BigInt : opts.int8 === 'number' ? parseInt8Number : undefined;
    case Oid.timestamp:
    case Oid.timestamptz:
      return parseTimestamp;
    case Oid.interval:
      return (s) => parseInterval(s) ?? s;
    case Oid.json:
    case Oid.jsonb:
      return JSON.parse;
    case Oid.bytea:
      return hexToBytes; // only for array elements: bytea cells travel as raw bytes
  }
  const element = arrayElementOid[oid];
  if (element !== undefined) {
    const parseElement = textParserFor(element, opts);
    const map = (items: ArrayItems): unknown[] =>
      items.map((item) => (item === null ? null : Array.isArray(item) ? map(item) : parseElement ? parseElement(item) : item));
    return (s) => map(parseArrayLiteral(s));
  }
  return undefined;
}

/** Decodes the row batches of one result layout. */
export class RowDecoder {
  readonly names: string[];
  private readonly parsers: (TextParser | undefined)[];
  private readonly binary: boolean[];

  constructor(columns: readonly Column[], opts: DecodeOptions) {
    this.names = columns.map((c) => c.name);
    this.parsers = columns.map((c) => textParserFor(c.typeOid, opts));
    this.binary = columns.map((c) => c.typeOid === Oid.bytea);
  }

  /** Decodes a batch into arrays of cells. */
  arrays(rows: Rows | undefined): unknown[][] {
    if (!rows || rows.rowCount === 0) return [];
    const n = this.names.length;
    const out = new Array<unknown[]>(rows.rowCount);
    const reader = new CompactReader(rows.compact);
    const bytes = rows.compact;
    for (let r = 0; r < rows.rowCount; r++) {
      const row = new Array<unknown>(n);
      for (let c = 0; c < n; c++) row[c] = this.cell(reader, bytes, c);
      out[r] = row;
    }
    return out;
  }

  /** Decodes a batch into objects keyed by column name (a later duplicate name wins, as in pg). */
  objects<T>(rows: Rows | undefined): T[] {
    if (!rows || rows.rowCount === 0) return [];
    const n = this.names.length;
    const names = this.names;
    const out = new Array<T>(rows.rowCount);
    const reader = new CompactReader(rows.compact);
    const bytes = rows.compact;
    for (let r = 0; r < rows.rowCount; r++) {
      const row: Record<string, unknown> = {};
      for (let c = 0; c < n; c++) row[names[c]] = this.cell(reader, bytes, c);
      out[r] = row as T;
    }
    return out;
  }

  private cell(reader: CompactReader, bytes: Uint8Array, c: number): unknown {
    const len = reader.next();
    if (len < 0) return null;
    const start = reader.start;
    if (this.binary[c]) return new Uint8Array(bytes.subarray(start, start + len));
    const s = decodeUtf8(bytes, start, start + len);
    const p = this.parsers[c];
    return p ? p(s) : s;
  }
}
