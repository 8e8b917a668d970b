/**
 * Building heliosdb.v1.Value parameters and reading results in both row formats.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { NullValue } from '@bufbuild/protobuf/wkt';
import { type Column, type ResultSet, type Rows, type Value, ValueSchema } from '../../gen/heliosdb/v1/value_pb.js';
import { CompactReader } from '../../src/client/protocol/compact.js';

type Kind = Exclude<Value['kind']['case'], undefined>;

function value<K extends Kind>(kind: K, v: Extract<Value['kind'], { case: K }>['value']): Value {
  return create(ValueSchema, { kind: { case: kind, value: v } as Value['kind'] });
}

/** Value constructors, one per kind. */
export const V = {
  null: (): Value => value('nullValue', NullValue.NULL_VALUE),
  bool: (b: boolean) => value('bool', b),
  int32: (n: number) => value('int32', n),
  int64: (n: bigint) => value('int64', n),
  float32: (n: number) => value('float32', n),
  float64: (n: number) => value('float64', n),
  numeric: (s: string) => value('numeric', s),
  text: (s: string) => value('text', s),
  bytes: (b: Uint8Array) => value('bytes', b),
  uuid: (s: string) => value('uuid', s),
  date: (s: string) => value('date', s),
  time: (s: string) => value('time', s),
  timestamp: (us: bigint) => value('timestamp', us),
  timestamptz: (us: bigint) => value('timestamptz', us),
  interval: (months: number, days: number, micros: bigint) =>
    create(ValueSchema, { kind: { case: 'interval', value: { months, days, micros } } }),
  json: (s: string) => value('json', s),
  array: (values: Value[], elementTypeOid = 0) => create(ValueSchema, { kind: { case: 'array', value: { elementTypeOid, values } } }),
};

/** A Value as a plain JS value: null, boolean, number, bigint, string, bytes, interval or array. */
export type Plain = null | boolean | number | bigint | string | Uint8Array | { months: number; days: number; micros: bigint } | Plain[];

/** Converts a Value to a {@link Plain} value (losing which kind carried it). */
export function plain(v: Value): Plain {
  const k = v.kind;
  switch (k.case) {
    case undefined:
    case 'nullValue':
      return null;
    case 'interval':
      return { months: k.value.months, days: k.value.days, micros: k.value.micros };
    case 'array':
      return k.value.values.map(plain);
    default:
      return k.value;
  }
}

/** The rows of a ROW_FORMAT_VALUES result as arrays of Values. */
export function valueRows(rows: Rows | undefined): Value[][] {
  assert.ok(rows, 'the result has rows');
  assert.equal(rows.compact.length, 0, 'a VALUES result carries no compact bytes');
  assert.equal(rows.values.length, rows.rowCount, 'row_count matches the rows sent');
  return rows.values.map((r) => r.values);
}

/** The rows of a ROW_FORMAT_VALUES result as plain JS values. */
export function plainRows(result: ResultSet | undefined): Plain[][] {
  assert.ok(result, 'a result was returned');
  return valueRows(result.rows).map((r) => r.map(plain));
}

/** One cell of a compact batch: PostgreSQL text, raw bytes for bytea, null for NULL. */
export type CompactCell = string | Uint8Array | null;

/** Decodes a ROW_FORMAT_COMPACT batch with the result's columns (bytea cells stay bytes). */
export function compactRows(rows: Rows | undefined, columns: Column[]): CompactCell[][] {
  assert.ok(rows, 'the result has rows');
  assert.equal(rows.values.length, 0, 'a COMPACT result carries no Value rows');
  const reader = new CompactReader(rows.compact);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const out: CompactCell[][] = [];
  for (let r = 0; r < rows.rowCount; r++) {
    const row: CompactCell[] = [];
    for (const col of columns) {
      assert.ok(!reader.done, `compact batch ends early at row ${r}`);
      const len = reader.next();
      if (len < 0) row.push(null);
      else {
        const bytes = rows.compact.subarray(reader.start, reader.start + len);
        row.push(col.typeOid === 17 ? bytes.slice() : decoder.decode(bytes));
      }
    }
    out.push(row);
  }
  assert.ok(reader.done, 'compact batch has no bytes left after row_count rows');
  return out;
}

/** Hex of bytes. */
export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
