/**
 * Row encoding measurement: ROW_FORMAT_VALUES (a Value message per cell) against
 * ROW_FORMAT_COMPACT (one byte string per batch), for the server's encode step (PostgreSQL text
 * cells -> protobuf bytes) and the client's decode step (bytes -> JavaScript rows).
 * Run: npx tsx bench/encoding.ts [--quick]
 */
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import type { FieldDef } from 'pg';
import { type Column, RowFormat, RowsSchema } from '../gen/heliosdb/v1/value_pb.js';
import { RowDecoder } from '../src/client/protocol/decode.js';
import { RowEncoder } from '../src/server/result-encoder.js';

const quick = process.argv.includes('--quick');

interface Shape {
  name: string;
  oids: number[];
  row: (i: number) => (string | null)[];
  rows: number;
}

const shapes: Shape[] = [
  {
    name: 'mixed 5 columns (int4, int8, text, float8, timestamptz)',
    oids: [23, 20, 25, 701, 1184],
    row: (i) => [String(i), String(i * 1000003), `user-${i}@example.com`, String(i / 7), '2026-11-24 06:15:08.123456+00'],
    rows: quick ? 20_000 : 200_000,
  },
  {
    name: 'wide text (1 KB per row)',
    oids: [23, 25],
    row: (i) => [String(i), 'x'.repeat(1000)],
    rows: quick ? 5_000 : 50_000,
  },
];

function fields(oids: number[]): FieldDef[] {
  return oids.map((oid, i) => ({
    name: `c${i}`,
    dataTypeID: oid,
    tableID: 0,
    columnID: 0,
    dataTypeSize: -1,
    dataTypeModifier: -1,
    format: 'text',
  }));
}

function columns(oids: number[]): Column[] {
  return oids.map((oid, i) => ({ $typeName: 'heliosdb.v1.Column', name: `c${i}`, typeOid: oid, typeName: '', typeModifier: -1 }));
}

function time(fn: () => void, reps: number): number {
  fn(); // warm up
  const samples: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

/** Decodes ROW_FORMAT_VALUES rows into plain objects, as a client would. */
function decodeValues(bytes: Uint8Array, names: string[]): unknown[] {
  const rows = fromBinary(RowsSchema, bytes);
  return rows.values.map((r) => {
    const o: Record<string, unknown> = {};
    r.values.forEach((v, i) => {
      // The same JavaScript values the compact path produces.
      const k = v.kind;
      o[names[i]] = k.case === 'timestamptz' ? new Date(Number(k.value / 1000n)) : k.value;
    });
    return o;
  });
}

const results: Record<string, unknown>[] = [];
for (const shape of shapes) {
  const cells = Array.from({ length: shape.rows }, (_, i) => shape.row(i));
  const out: Record<string, unknown> = { shape: shape.name, rows: shape.rows };
  for (const format of [RowFormat.VALUES, RowFormat.COMPACT]) {
    const label = format === RowFormat.VALUES ? 'values' : 'compact';
    let bytes = new Uint8Array();
    const encMs = time(
      () => {
        const enc = new RowEncoder(format);
        enc.setFields(fields(shape.oids));
        for (const c of cells) enc.add(c);
        bytes = toBinary(RowsSchema, enc.take());
      },
      quick ? 3 : 7,
    );
    const names = shape.oids.map((_, i) => `c${i}`);
    const decoder = new RowDecoder(columns(shape.oids), { int8: 'bigint' });
    const decMs = time(
      () => {
        if (format === RowFormat.VALUES) decodeValues(bytes, names);
        else decoder.objects(fromBinary(RowsSchema, bytes));
      },
      quick ? 3 : 7,
    );
    out[`${label}Bytes`] = bytes.length;
    out[`${label}EncodeMs`] = +encMs.toFixed(1);
    out[`${label}DecodeMs`] = +decMs.toFixed(1);
  }
  out.encodeSpeedup = +((out.valuesEncodeMs as number) / (out.compactEncodeMs as number)).toFixed(2);
  out.decodeSpeedup = +((out.valuesDecodeMs as number) / (out.compactDecodeMs as number)).toFixed(2);
  out.sizeRatio = +((out.valuesBytes as number) / (out.compactBytes as number)).toFixed(2);
  results.push(out);
}
console.table(results);
