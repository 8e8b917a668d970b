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
import type { Column, Rows } from '../../../gen/heliosdb/v1/value_pb.js';
import { DecodeError, HeliosDBError, ParameterError } from '../errors.js';
import { type ArrayItems, parseArrayLiteral } from './array-literal.js';
import { CompactReader, decodeUtf8 } from './compact.js';
import { parseInterval, parseTimestampMs } from './datetime.js';
import { type Int8Mode, valueToJs } from './decode-values.js';
import { arrayElementOid, Oid } from './oids.js';

export type { Int8Mode } from './decode-values.js';

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

function bad(what: string, s: string): DecodeError {
  const shown = s.length > 40 ? `${s.slice(0, 40)}...` : s;
  return new DecodeError(`${JSON.stringify(shown)} is not ${what}`);
}

// The parsers below check what PostgreSQL's text output can be, as cheaply as the conversion
// itself: the server's bytes are trusted to be well-formed, not to be anything at all.

function parseBool(s: string): boolean {
  if (s === 't') return true;
  if (s === 'f') return false;
  throw bad('a bool (t or f)', s);
}

function parseInteger(s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || s.length === 0) throw bad('an integer', s);
  return n;
}

function parseFloatText(s: string): number {
  const n = Number(s);
  // NaN only from 'NaN'; Number('') is 0.
  if ((Number.isNaN(n) && s !== 'NaN') || s.length === 0) throw bad('a floating-point number', s);
  return n;
}

function parseBigInt(s: string): bigint {
  try {
    if (s.length > 0) return BigInt(s);
  } catch {
    // Reported below.
  }
  throw bad('an int8', s);
}

function parseInt8Number(s: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || s.length === 0) throw bad('an int8', s);
  if (!Number.isSafeInteger(n)) {
    throw new ParameterError(
      `int8 value ${s} cannot be a JavaScript number without losing precision (client option int8: 'number'); use 'bigint' or 'string'`,
      'INT8_PRECISION_LOSS',
    );
  }
  return n;
}

function parseTimestamp(s: string): Date | string {
  const ms = parseTimestampMs(s);
  return ms === undefined ? s : new Date(ms);
}

function parseJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch (e) {
    throw new DecodeError(`invalid JSON: ${(e as Error).message}`, 'DECODE_ERROR', { cause: e });
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/** bytea's hex text output (`\x0a1b`), as array elements carry it. */
function hexToBytes(hex: string): Uint8Array {
  if (hex.charCodeAt(0) !== 0x5c || hex.charCodeAt(1) !== 0x78 || hex.length % 2 !== 0) throw bad('bytea hex text (\\x...)', hex);
  const n = (hex.length - 2) >> 1;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const hi = hexValue(hex.charCodeAt(2 + i * 2));
    const lo = hexValue(hex.charCodeAt(3 + i * 2));
    if (hi < 0 || lo < 0) throw bad('bytea hex text (\\x...)', hex);
    out[i] = (hi << 4) | lo;
  }
  return out;
}

function textParserFor(oid: number, opts: DecodeOptions): TextParser | undefined {
  switch (oid) {
    case Oid.bool:
      return parseBool;
    case Oid.int2:
    case Oid.int4:
    case Oid.oid:
      return parseInteger;
    case Oid.float4:
    case Oid.float8:
      return parseFloatText;
    case Oid.int8:
      return opts.int8 === 'bigint' ? parseBigInt : opts.int8 === 'number' ? parseInt8Number : undefined;
    case Oid.timestamp:
    case Oid.timestamptz:
      return parseTimestamp;
    case Oid.interval:
      return (s) => parseInterval(s) ?? s;
    case Oid.json:
    case Oid.jsonb:
      return parseJson;
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

/**
 * Decodes the row batches of one result layout, in either row format: compact (what the SDK
 * asks for) or typed Values (what a server that does not honour the request sends). Input that
 * does not decode throws {@link DecodeError} naming the column and row, never a raw
 * TypeError/RangeError/SyntaxError.
 */
export class RowDecoder {
  readonly names: string[];
  private readonly columns: readonly Column[];
  private readonly parsers: (TextParser | undefined)[];
  private readonly binary: boolean[];
  private readonly int8: Int8Mode;

  constructor(columns: readonly Column[], opts: DecodeOptions) {
    this.columns = columns;
    this.names = columns.map((c) => c.name);
    this.parsers = columns.map((c) => textParserFor(c.typeOid, opts));
    this.binary = columns.map((c) => c.typeOid === Oid.bytea);
    this.int8 = opts.int8;
  }

  /** Decodes a batch into arrays of cells. */
  arrays(rows: Rows | undefined): unknown[][] {
    if (!rows || rows.rowCount === 0) return [];
    if (this.typed(rows)) return this.typedRows(rows, (cells) => cells);
    const n = this.names.length;
    const reader = this.reader(rows);
    const bytes = rows.compact;
    const out = new Array<unknown[]>(rows.rowCount);
    let r = 0;
    let c = 0;
    try {
      for (; r < rows.rowCount; r++) {
        const row = new Array<unknown>(n);
        for (c = 0; c < n; c++) row[c] = this.cell(reader, bytes, c);
        out[r] = row;
      }
    } catch (e) {
      throw this.cellError(e, r, c);
    }
    this.checkEnd(reader);
    return out;
  }

  /** Decodes a batch into objects keyed by column name (a later duplicate name wins, as in pg). */
  objects<T>(rows: Rows | undefined): T[] {
    if (!rows || rows.rowCount === 0) return [];
    const names = this.names;
    if (this.typed(rows)) {
      return this.typedRows(rows, (cells) => {
        const row: Record<string, unknown> = {};
        for (let c = 0; c < cells.length; c++) row[names[c]] = cells[c];
        return row as T;
      });
    }
    const n = names.length;
    const reader = this.reader(rows);
    const bytes = rows.compact;
    const out = new Array<T>(rows.rowCount);
    let r = 0;
    let c = 0;
    try {
      for (; r < rows.rowCount; r++) {
        const row: Record<string, unknown> = {};
        for (c = 0; c < n; c++) row[names[c]] = this.cell(reader, bytes, c);
        out[r] = row as T;
      }
    } catch (e) {
      throw this.cellError(e, r, c);
    }
    this.checkEnd(reader);
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

  /** Whether the batch came as typed Values (ROW_FORMAT_VALUES) rather than compact bytes. */
  private typed(rows: Rows): boolean {
    return rows.values.length > 0 && rows.compact.length === 0;
  }

  /** A reader of the batch's compact bytes, after checking they can hold `rowCount` rows at all. */
  private reader(rows: Rows): CompactReader {
    const n = this.names.length;
    const length = rows.compact.length;
    // Every cell takes a byte at least; a count beyond that is corrupt (and would allocate).
    if (n === 0 ? length !== 0 : rows.rowCount * n > length) {
      throw new DecodeError(
        `a row batch of ${rows.rowCount} rows of ${n} columns cannot fit in ${length} bytes: the batch is truncated or corrupt`,
      );
    }
    return new CompactReader(rows.compact);
  }

  private checkEnd(reader: CompactReader): void {
    if (!reader.done)
      throw new DecodeError(`a row batch has ${reader.bytes.length - reader.pos} bytes after its last row: the batch is corrupt`);
  }

  private typedRows<R>(rows: Rows, make: (cells: unknown[]) => R): R[] {
    const n = this.columns.length;
    if (rows.values.length !== rows.rowCount) {
      throw new DecodeError(`a row batch says ${rows.rowCount} rows and holds ${rows.values.length}`);
    }
    const out = new Array<R>(rows.values.length);
    let r = 0;
    let c = 0;
    try {
      for (; r < rows.values.length; r++) {
        const values = rows.values[r].values;
        if (values.length !== n) throw new DecodeError(`row ${r + 1} has ${values.length} cells for ${n} columns`);
        const cells = new Array<unknown>(n);
        for (c = 0; c < n; c++) cells[c] = valueToJs(values[c], this.columns[c].typeOid, this.int8);
        out[r] = make(cells);
      }
    } catch (e) {
      throw this.cellError(e, r, c);
    }
    return out;
  }

  /** A failure while decoding row `r`, column `c`, as a typed error naming them. */
  private cellError(e: unknown, r: number, c: number): HeliosDBError {
    if (e instanceof HeliosDBError && !(e instanceof DecodeError)) return e;
    const col = this.columns[c];
    const where = col
      ? `column ${JSON.stringify(col.name)} (${col.typeName || `type ${col.typeOid}`}) of row ${r + 1} in its batch`
      : `row ${r + 1} in its batch`;
    const message = e instanceof Error ? e.message : String(e);
    return new DecodeError(`cannot decode ${where}: ${message}`, 'DECODE_ERROR', { cause: e });
  }
}
