/**
 * Fuzz cases for every client decoder: per decoder a generator of inputs (well-formed ones,
 * mutated ones, random ones; text from ./fuzz-text.ts) and the call that decodes them, and the
 * runner that classifies each outcome. Used by test/client-decoders-fuzz.test.ts
 * inside a worker thread, so that a decoder that loops forever fails the test instead of hanging it.
 * @packageDocumentation
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { NullValue } from '@bufbuild/protobuf/wkt';
import { type Column, ColumnSchema, type Rows, RowsSchema, type Value, ValueSchema } from '../../gen/heliosdb/v1/value_pb.js';
import { HeliosDBError } from '../../src/client/errors.js';
import { parseArrayLiteral } from '../../src/client/protocol/array-literal.js';
import { CompactWriter } from '../../src/client/protocol/compact.js';
import { parseTimestampMicros, parseTimestampMs } from '../../src/client/protocol/datetime.js';
import { type Int8Mode, RowDecoder } from '../../src/client/protocol/decode.js';
import { Oid } from '../../src/client/protocol/oids.js';
import {
  arrayText,
  hexText,
  intervalParts,
  jsonText,
  mutate,
  numberText,
  randomTree,
  type Rng,
  timestampText,
  tricky,
  variant,
} from './fuzz-text.js';

/** One fuzz case: what it decodes (shown on failure) and the decoding. */
export interface FuzzCase {
  input: string;
  /** Decodes the input; returns a complaint when the value is wrong for a well-formed input. */
  run(): string | undefined;
}

/** How a case ended. */
export type Outcome =
  | { kind: 'value' }
  | { kind: 'typed'; name: string }
  | { kind: 'raw'; name: string; message: string }
  | { kind: 'wrong'; complaint: string };

/** Runs one case and classifies what happened. */
export function classify(c: FuzzCase): Outcome {
  try {
    const complaint = c.run();
    return complaint ? { kind: 'wrong', complaint } : { kind: 'value' };
  } catch (e) {
    if (e instanceof HeliosDBError && e.constructor !== HeliosDBError) return { kind: 'typed', name: e.constructor.name };
    const err = e as Error;
    return { kind: 'raw', name: err?.constructor?.name ?? typeof e, message: String(err?.message ?? e) };
  }
}

// --- batches ---------------------------------------------------------------------------------

function column(name: string, typeOid: number, typeName: string): Column {
  return create(ColumnSchema, { name, typeOid, typeName, typeModifier: -1 });
}

/** Column types of the fuzzed batches, with a generator of well-formed cell text. */
const cellTypes: [oid: number, name: string, good: (rng: Rng) => string][] = [
  [Oid.bool, 'bool', (r) => r.pick(['t', 'f'])],
  [Oid.int2, 'int2', (r) => String(r.int(65536) - 32768)],
  [Oid.int4, 'int4', (r) => String(r.int(2 ** 32) - 2 ** 31)],
  [Oid.int8, 'int8', numberText],
  [Oid.float8, 'float8', numberText],
  [Oid.numeric, 'numeric', numberText],
  [Oid.text, 'text', (r) => r.string(tricky, 20)],
  [Oid.date, 'date', (r) => r.pick(['2024-02-29', '0044-03-15 BC', 'infinity', '-infinity'])],
  [Oid.timestamp, 'timestamp', (r) => timestampText(r, false)],
  [Oid.timestamptz, 'timestamptz', (r) => timestampText(r, true)],
  [Oid.interval, 'interval', (r) => intervalParts(r).text],
  [Oid.json, 'json', jsonText],
  [Oid.jsonb, 'jsonb', jsonText],
  [1007, '_int4', (r) => `{${Array.from({ length: r.int(4) }, () => String(r.int(1000))).join(',')}}`],
  [1009, '_text', (r) => arrayText(randomTree(r, 2))],
  [1001, '_bytea', (r) => `{${Array.from({ length: r.int(3) }, () => `"\\${hexText(r)}"`).join(',')}}`],
  [1185, '_timestamptz', (r) => `{"${timestampText(r, true)}"}`],
  [199, '_json', (r) => arrayText([jsonText(r), jsonText(r)])],
];

function batch(rowCount: number, compact: Uint8Array, values: Rows['values'] = []): Rows {
  return create(RowsSchema, { rowCount, compact, values });
}

const int8Modes: Int8Mode[] = ['bigint', 'number', 'string'];

/** Decodes `rows` as arrays or as objects, in an int8 mode: both chosen now, so that a run can be repeated exactly. */
function decodeWith(rng: Rng, columns: Column[], rows: Rows): () => unknown[] {
  const decoder = new RowDecoder(columns, { int8: rng.pick(int8Modes) });
  return rng.chance(0.5) ? () => decoder.arrays(rows) : () => decoder.objects(rows);
}

/** A case decoding one cell of the given type from text. */
function cellCase(rng: Rng, oid: number, name: string, text: string, check?: (v: unknown) => string | undefined): FuzzCase {
  const w = new CompactWriter(64);
  w.text(text);
  const rows = batch(1, w.finish());
  const mode = rng.pick(int8Modes);
  return {
    input: `${name} cell ${JSON.stringify(text)} (int8: ${mode})`,
    run: () => {
      const v = new RowDecoder([column('c', oid, name)], { int8: mode }).arrays(rows)[0][0];
      return check?.(v);
    },
  };
}

function describeBytes(b: Uint8Array): string {
  return b.length > 64 ? `${Buffer.from(b.subarray(0, 64)).toString('hex')}... (${b.length} bytes)` : Buffer.from(b).toString('hex');
}

// --- the decoders ----------------------------------------------------------------------------

/** Per decoder, a generator of cases. */
export const decoders: Record<string, (rng: Rng) => FuzzCase> = {
  /** Compact row batches: well-formed, truncated, corrupted, with wrong row counts, or random bytes. */
  compact(rng) {
    const n = rng.int(5);
    const columns = Array.from({ length: n }, (_, i) => {
      const t = rng.pick(cellTypes);
      return { col: column(`c${i}`, t[0], t[1]), good: t[2] };
    });
    const rowCount = rng.int(4);
    const w = new CompactWriter(256);
    for (let r = 0; r < rowCount; r++) {
      for (const c of columns) {
        if (rng.chance(0.1)) w.null();
        else if (c.col.typeOid === Oid.bytea) w.bytes(rng.bytes(rng.int(8)));
        else w.text(c.good(rng));
      }
    }
    let bytes = w.finish();
    let count = rowCount;
    const how = n === 0 ? 0 : rng.int(6);
    if (how === 1) bytes = bytes.slice(0, rng.int(bytes.length + 1));
    else if (how === 2 && bytes.length > 0) bytes[rng.int(bytes.length)] = rng.int(256);
    else if (how === 3) count = rng.pick([rowCount + 1, rowCount + 1000, 2 ** 32 - 1, 0]);
    else if (how === 4) bytes = rng.bytes(rng.int(64));
    else if (how === 5) bytes = Uint8Array.from([...bytes, ...rng.pick([[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], [0x80], [5, 1, 2]])]);
    const rows = batch(count, bytes);
    const cols = columns.map((c) => c.col);
    const decode = decodeWith(rng, cols, rows);
    return {
      input: `columns [${cols.map((c) => c.typeName).join(', ')}], rowCount ${count}, bytes ${describeBytes(bytes)}`,
      run: () => {
        const out = decode();
        return how === 0 && out.length !== count ? `decoded ${out.length} rows of ${count}` : undefined;
      },
    };
  },

  /** Array literals: PostgreSQL's output of random arrays must parse back exactly; mutated and random text must not crash. */
  arrays(rng) {
    const tree = randomTree(rng, 3);
    const good = arrayText(tree);
    const v = variant(rng, () => good, '{}",\\aN1 ', 30);
    const text = v.wellFormed ? good : v.text;
    if (rng.chance(0.3)) {
      const t = rng.pick(cellTypes.filter((c) => c[1].startsWith('_')));
      return cellCase(rng, t[0], t[1], rng.chance(0.5) ? t[2](rng) : mutate(rng, t[2](rng), '{}",\\aN1 x0'));
    }
    return {
      input: `array literal ${JSON.stringify(text)}`,
      run: () => {
        const parsed = parseArrayLiteral(text);
        if (v.wellFormed && JSON.stringify(parsed) !== JSON.stringify(tree))
          return `parsed ${JSON.stringify(parsed)}, expected ${JSON.stringify(tree)}`;
        return undefined;
      },
    };
  },

  /** date cells are passed through as text, whatever they hold. */
  dates(rng) {
    const { text } = variant(rng, () => rng.pick(['2024-02-29', '0044-03-15 BC', 'infinity', '-infinity', '5874897-12-31']));
    if (rng.chance(0.3)) return cellCase(rng, 1182, '_date', `{${text}}`);
    return cellCase(rng, Oid.date, 'date', text, (v) =>
      v === text ? undefined : `date ${JSON.stringify(text)} came back as ${String(v)}`,
    );
  },

  /** timestamp and timestamptz cells: a Date, or the text itself (infinity, beyond Date's range, not PostgreSQL's format). */
  timestamps(rng) {
    const tz = rng.chance(0.5);
    const { text } = variant(rng, () => timestampText(rng, tz), '0123456789-:. +BC', 40);
    if (rng.chance(0.3)) {
      return {
        input: `parseTimestampMicros/parseTimestampMs ${JSON.stringify(text)}`,
        run: () => {
          parseTimestampMicros(text);
          parseTimestampMs(text);
        },
      };
    }
    return cellCase(rng, tz ? Oid.timestamptz : Oid.timestamp, tz ? 'timestamptz' : 'timestamp', text, (v) =>
      v instanceof Date
        ? Number.isNaN(v.getTime())
          ? `${JSON.stringify(text)} gave an Invalid Date`
          : undefined
        : typeof v === 'string'
          ? undefined
          : `${JSON.stringify(text)} gave ${typeof v}`,
    );
  },

  /** interval cells: exact parts for PostgreSQL's output, the text itself for anything else. */
  intervals(rng) {
    const p = intervalParts(rng);
    const { text, wellFormed } = variant(rng, () => p.text, '0123456789-+: .yearmonsd', 40);
    const t = wellFormed ? p.text : text;
    return cellCase(rng, Oid.interval, 'interval', t, (v) => {
      if (!wellFormed) return v !== null && (typeof v === 'string' || typeof v === 'object') ? undefined : `gave ${String(v)}`;
      const iv = v as { months: number; days: number; micros: bigint };
      return iv.months === p.months && iv.days === p.days && iv.micros === p.micros
        ? undefined
        : `${JSON.stringify(t)} gave ${String(iv.months)}/${String(iv.days)}/${String(iv.micros)}`;
    });
  },

  /** bytea: raw cells are the bytes themselves; bytea[] elements are hex text. */
  bytea(rng) {
    if (rng.chance(0.5)) {
      const b = rng.bytes(rng.int(40));
      const w = new CompactWriter(64);
      w.bytes(b);
      const rows = batch(1, w.finish());
      return {
        input: `bytea cell ${describeBytes(b)}`,
        run: () => {
          const got = new RowDecoder([column('b', Oid.bytea, 'bytea')], { int8: 'bigint' }).arrays(rows)[0][0] as Uint8Array;
          return Buffer.from(got).equals(Buffer.from(b)) ? undefined : 'bytes differ';
        },
      };
    }
    const { text } = variant(rng, () => `{"\\${hexText(rng)}",NULL}`, '\\x0123456789abcdefg{}",', 30);
    return cellCase(rng, 1001, '_bytea', text);
  },

  /** Numbers, numerics and bools: exact values for well-formed text, a typed error or a value for anything else. */
  numerics(rng) {
    const t = rng.pick([
      [Oid.int2, 'int2'],
      [Oid.int4, 'int4'],
      [Oid.int8, 'int8'],
      [Oid.oid, 'oid'],
      [Oid.float4, 'float4'],
      [Oid.float8, 'float8'],
      [Oid.numeric, 'numeric'],
      [Oid.money, 'money'],
      [Oid.bool, 'bool'],
    ] as const);
    const { text } = variant(rng, () => (t[1] === 'bool' ? rng.pick(['t', 'f']) : numberText(rng)), '0123456789-+.eE xINFaN', 30);
    return cellCase(rng, t[0], t[1], text);
  },

  /** json and jsonb cells (and json[]): the parsed value, or DecodeError for text that is not JSON. */
  json(rng) {
    const deep = rng.chance(0.05) ? '['.repeat(2000 + rng.int(20000)) : '';
    const { text } = variant(rng, () => deep || jsonText(rng), '{}[]":,1aé\\ tn', 40);
    const t = rng.pick([
      [Oid.json, 'json'],
      [Oid.jsonb, 'jsonb'],
      [199, '_json'],
    ] as const);
    return cellCase(rng, t[0], t[1], t[1] === '_json' ? arrayText([text]) : text);
  },

  /** ROW_FORMAT_VALUES batches: random typed Values (nested arrays, extreme timestamps, bad JSON, wrong cell counts). */
  values(rng) {
    const n = 1 + rng.int(3);
    const oids = [Oid.int8, Oid.oid, Oid.int4, Oid.text, Oid.timestamptz, Oid.json, 1016, 1009, Oid.bytea, Oid.interval];
    const cols = Array.from({ length: n }, (_, i) => {
      const oid = rng.pick(oids);
      return column(`v${i}`, oid, String(oid));
    });
    const randomValue = (depth: number): Value => {
      const r = rng.int(14);
      const kind = ((): MessageInitShape<typeof ValueSchema>['kind'] => {
        switch (r) {
          case 0:
            return { case: 'nullValue', value: NullValue.NULL_VALUE };
          case 1:
            return { case: 'int64', value: rng.pick([0n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, BigInt(rng.int(1000))]) };
          case 2:
            return {
              case: 'timestamptz',
              value: rng.pick([0n, 2n ** 63n - 1n, -(2n ** 63n), 9_000_000_000_000_000_000n, -1n, BigInt(rng.int(2 ** 31)) * 1000000n]),
            };
          case 3:
            return { case: 'timestamp', value: rng.pick([-1n, 8_640_000_000_000_000_001n, 1n]) };
          case 4:
            return { case: 'json', value: rng.chance(0.5) ? jsonText(rng) : rng.string('{}[]":,1a', 10) };
          case 5:
            return { case: 'bytes', value: rng.bytes(rng.int(10)) };
          case 6:
            return { case: 'interval', value: { months: rng.int(100), days: -rng.int(100), micros: BigInt(rng.int(1e9)) } };
          case 7:
          case 8:
            return {
              case: 'array',
              value: {
                elementTypeOid: rng.pick([0, Oid.int8, Oid.text]),
                values: depth > 8 ? [] : Array.from({ length: rng.int(3) }, () => randomValue(depth + 1)),
              },
            };
          case 9:
            return { case: 'float64', value: rng.pick([NaN, Infinity, -0, 1.5]) };
          case 10:
            return { case: 'text', value: rng.string(tricky, 10) };
          case 11:
            return { case: 'bool', value: rng.chance(0.5) };
          case 12:
            return { case: undefined };
          default:
            return { case: 'int32', value: rng.int(1000) };
        }
      })();
      return create(ValueSchema, { kind });
    };
    const rowCount = rng.int(4);
    const values = Array.from({ length: rowCount }, () => ({
      values: Array.from({ length: rng.chance(0.9) ? n : rng.int(5) }, () => randomValue(0)),
    }));
    const declared = rng.chance(0.9) ? rowCount : rng.int(6);
    const rows = create(RowsSchema, { rowCount: declared, values });
    const decode = decodeWith(rng, cols, rows);
    return {
      input: `values batch: columns [${cols.map((c) => c.typeOid).join(', ')}], rowCount ${declared}, ${JSON.stringify(values, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)).slice(0, 400)}`,
      run: () => {
        decode();
      },
    };
  },
};
