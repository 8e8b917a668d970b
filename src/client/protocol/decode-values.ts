/**
 * Result decoding of ROW_FORMAT_VALUES (a typed `Value` per cell) into the same JavaScript values
 * as the compact path (./decode.ts): what the client reads when a server (or a proxy in front of
 * one) answers in the self-describing format instead of the compact one it asked for.
 * Browser-safe.
 * @packageDocumentation
 */
import type { Value } from '../../../gen/heliosdb/v1/value_pb.js';
import { DecodeError, ParameterError } from '../errors.js';
import { formatTimestampMicros, INFINITY_MICROS, NEG_INFINITY_MICROS } from './datetime.js';
import { arrayElementOid, Oid } from './oids.js';

/** How int8 (bigint) columns are returned (the client option `int8`). */
export type Int8Mode = 'bigint' | 'number' | 'string';

/** PostgreSQL's MAXDIM. */
const MAX_DIMENSIONS = 6;

function int8Of(v: bigint, mode: Int8Mode): bigint | number | string {
  if (mode === 'bigint') return v;
  if (mode === 'string') return v.toString();
  const n = Number(v);
  if (!Number.isSafeInteger(n)) {
    throw new ParameterError(
      `int8 value ${v} cannot be a JavaScript number without losing precision (client option int8: 'number'); use 'bigint' or 'string'`,
      'INT8_PRECISION_LOSS',
    );
  }
  return n;
}

/** A timestamp's microseconds as a Date, `'infinity'` / `'-infinity'`, or ISO text beyond Date's range. */
function timestampOf(micros: bigint, utc: boolean): Date | string {
  if (micros === INFINITY_MICROS) return 'infinity';
  if (micros === NEG_INFINITY_MICROS) return '-infinity';
  // Floor division: -1 µs is the millisecond before the epoch.
  let ms = micros / 1000n;
  if (micros < 0n && ms * 1000n !== micros) ms -= 1n;
  if (ms < -8640000000000000n || ms > 8640000000000000n) return formatTimestampMicros(micros, utc);
  return new Date(Number(ms));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DecodeError(`invalid JSON in a json value: ${(e as Error).message}`, 'DECODE_ERROR', { cause: e });
  }
}

/**
 * A typed Value as the JavaScript value the type mapping promises for a column of type `oid`
 * (the README's table): the kind says how it travelled, the OID only settles int8 against oid and
 * the element type of arrays. A kind that cannot be mapped throws {@link DecodeError}.
 */
export function valueToJs(v: Value, oid: number, int8: Int8Mode, depth = 0): unknown {
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
      // The server sends oid (and int8) as int64; oid maps to number.
      return oid === Oid.int8 ? int8Of(k.value, int8) : Number(k.value);
    case 'bytes':
      return k.value;
    case 'timestamp':
      return timestampOf(k.value, false);
    case 'timestamptz':
      return timestampOf(k.value, true);
    case 'interval':
      return { months: k.value.months, days: k.value.days, micros: k.value.micros };
    case 'json':
      return parseJson(k.value);
    case 'array': {
      if (depth >= MAX_DIMENSIONS) throw new DecodeError(`an array value has more than ${MAX_DIMENSIONS} dimensions`);
      const element = arrayElementOid[oid] ?? k.value.elementTypeOid;
      return k.value.values.map((e) => valueToJs(e, element, int8, depth + 1));
    }
    default:
      throw new DecodeError(`unknown value kind ${JSON.stringify((k as { case: unknown }).case)}`);
  }
}
