/**
 * Values between the wire contract and cassandra-driver: a parameter `Value` as the JavaScript
 * value the driver encodes for the bound column (it knows the column's type from the prepared
 * statement), and a page of driver rows as a compact `ResultSet` that the client decodes with its
 * usual decoders. Each CQL type travels as the PostgreSQL type of the same meaning: bigint,
 * counter and varint as int8 (the client's `int8` mode, `bigint` by default), decimal as numeric
 * (a string), uuid and timeuuid as uuid (a string), timestamp as timestamptz (a Date), blob as
 * bytea (a Uint8Array), date and time as text, and collections, tuples and user types as JSON
 * (arrays and objects). Node only.
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { ErrorReason } from '../../../gen/heliosdb/v1/error_pb.js';
import { type Column, ColumnSchema, type Rows, RowsSchema, type Value } from '../../../gen/heliosdb/v1/value_pb.js';
import { CompactWriter } from '../protocol/compact.js';
import { formatTimestampMicros } from '../protocol/datetime.js';
import { Oid } from '../protocol/oids.js';
import { detailedError } from './pg-errors.js';

/** A result column as the driver describes it. */
export interface CqlColumn {
  name: string;
  type: { code: number; info: unknown };
}

const inetOid = 869;

/** CQL type code → [PostgreSQL type OID, CQL name]. Collections and others: JSON. */
const scalarTypes: Record<number, [number, string]> = {
  1: [Oid.text, 'ascii'],
  2: [Oid.int8, 'bigint'],
  3: [Oid.bytea, 'blob'],
  4: [Oid.bool, 'boolean'],
  5: [Oid.int8, 'counter'],
  6: [Oid.numeric, 'decimal'],
  7: [Oid.float8, 'double'],
  8: [Oid.float4, 'float'],
  9: [Oid.int4, 'int'],
  10: [Oid.text, 'text'],
  11: [Oid.timestamptz, 'timestamp'],
  12: [Oid.uuid, 'uuid'],
  13: [Oid.text, 'varchar'],
  14: [Oid.int8, 'varint'],
  15: [Oid.uuid, 'timeuuid'],
  16: [inetOid, 'inet'],
  17: [Oid.date, 'date'],
  18: [Oid.text, 'time'],
  19: [Oid.int2, 'smallint'],
  20: [Oid.int2, 'tinyint'],
  21: [Oid.text, 'duration'],
};

const collectionNames: Record<number, string> = { 32: 'list', 33: 'map', 34: 'set', 48: 'udt', 49: 'tuple' };

/** The result's columns, typed so the client's decoders give the values described in the file comment. */
export function cqlColumns(columns: readonly CqlColumn[] | null | undefined): Column[] {
  return (columns ?? []).map((c) => {
    const scalar = scalarTypes[c.type.code];
    return create(ColumnSchema, {
      name: c.name,
      typeOid: scalar ? scalar[0] : collectionNames[c.type.code] ? Oid.json : Oid.text,
      typeName: scalar ? scalar[1] : (collectionNames[c.type.code] ?? 'custom'),
    });
  });
}

function floatText(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  return String(n);
}

/** A nested value (inside a collection) as JSON: integers as numbers when exact, else as strings. */
function jsonValue(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return v;
  if (v instanceof Date) return v.toISOString();
  if (Buffer.isBuffer(v)) return `\\x${v.toString('hex')}`;
  if (Array.isArray(v)) return v.map(jsonValue);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(jsonValue(k)), jsonValue(x)]));
  if (v instanceof Set) return [...v].map(jsonValue);
  const ctor = (v as object).constructor?.name;
  if (ctor === 'Long' || ctor === 'Integer') {
    const s = String(v);
    return Number.isSafeInteger(Number(s)) ? Number(s) : s;
  }
  if (ctor === 'Tuple') return ((v as { values(): unknown[] }).values?.() ?? []).map(jsonValue);
  if (ctor && ctor !== 'Object') return String(v);
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, jsonValue(x)]));
}

/** One cell's text (bytes for blobs), in the form its column's PostgreSQL type prints. */
function cellText(code: number, v: unknown): string | Uint8Array {
  switch (code) {
    case 0x03:
      return v as Uint8Array;
    case 0x04:
      return v ? 't' : 'f';
    case 0x07:
    case 0x08:
      return floatText(v as number);
    case 0x0b:
      return formatTimestampMicros(BigInt((v as Date).getTime()) * 1000n, true);
  }
  if (scalarTypes[code]) return String(v);
  if (collectionNames[code]) return JSON.stringify(jsonValue(v));
  return String(v);
}

/** Encodes driver rows (each an array of cells in column order) as one compact batch. */
export function cqlRows(columns: readonly CqlColumn[], rows: readonly (readonly unknown[])[]): Rows {
  const w = new CompactWriter(rows.length * columns.length * 8 + 64);
  for (const row of rows) {
    for (let i = 0; i < columns.length; i++) {
      const v = row[i];
      if (v === null || v === undefined) {
        w.null();
        continue;
      }
      const c = cellText(columns[i].type.code, v);
      if (typeof c === 'string') w.text(c);
      else w.bytes(c);
    }
  }
  return create(RowsSchema, { rowCount: rows.length, compact: w.finish() });
}

/** A parameter Value as what the driver encodes for the bound column's CQL type. */
export function cqlParam(v: Value): unknown {
  const k = v.kind;
  switch (k.case) {
    case undefined:
    case 'nullValue':
      return null;
    case 'bool':
    case 'int32':
    case 'float32':
    case 'float64':
    case 'numeric':
    case 'text':
    case 'uuid':
    case 'date':
    case 'time':
      return k.value;
    case 'int64':
      // The driver takes a number or a decimal string for bigint, counter and varint.
      return Number.isSafeInteger(Number(k.value)) ? Number(k.value) : k.value.toString();
    case 'bytes':
      return Buffer.from(k.value.buffer, k.value.byteOffset, k.value.byteLength);
    case 'timestamp':
    case 'timestamptz':
      return new Date(Number(k.value / 1000n));
    case 'json':
      // A plain object: a map or a user type.
      return JSON.parse(k.value);
    case 'array':
      return k.value.values.map(cqlParam);
    case 'interval':
      throw detailedError(Code.InvalidArgument, 'an interval parameter has no CQL type (CQL durations are not supported as parameters)', {
        reason: ErrorReason.INVALID_PARAMETER,
      });
  }
}

/** Every parameter, for the driver. */
export function cqlParams(params: readonly Value[]): unknown[] {
  return params.map(cqlParam);
}
