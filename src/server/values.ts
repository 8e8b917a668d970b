/**
 * Conversions between heliosdb.v1.Value and PostgreSQL text: parameters going in, and cells
 * coming out in ROW_FORMAT_VALUES.
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { NullValue } from '@bufbuild/protobuf/wkt';
import { type Value, ValueSchema } from '@heliosdb/client/wire';
import { arrayElementOid, Oid } from '@heliosdb/client/wire';
import { INFINITY_MICROS, NEG_INFINITY_MICROS, parseInterval, parseTimestampMicros } from '@heliosdb/client/wire';
import { type ArrayItems, parseArrayLiteral } from '@heliosdb/client/wire';

export { paramToText } from '@heliosdb/client/wire';

const nullValue = create(ValueSchema, { kind: { case: 'nullValue', value: NullValue.NULL_VALUE } });

/** A result cell (PostgreSQL text, `null` for NULL) as a typed Value. */
export function cellToValue(text: string | null, oid: number): Value {
  if (text === null) return nullValue;
  switch (oid) {
    case Oid.bool:
      return create(ValueSchema, { kind: { case: 'bool', value: text === 't' } });
    case Oid.int2:
    case Oid.int4:
      return create(ValueSchema, { kind: { case: 'int32', value: Number(text) } });
    case Oid.int8:
    case Oid.oid:
      return create(ValueSchema, { kind: { case: 'int64', value: BigInt(text) } });
    case Oid.float4:
      return create(ValueSchema, { kind: { case: 'float32', value: Number(text) } });
    case Oid.float8:
      return create(ValueSchema, { kind: { case: 'float64', value: Number(text) } });
    case Oid.numeric:
      return create(ValueSchema, { kind: { case: 'numeric', value: text } });
    case Oid.bytea:
      return create(ValueSchema, { kind: { case: 'bytes', value: byteaFromText(text) } });
    case Oid.uuid:
      return create(ValueSchema, { kind: { case: 'uuid', value: text } });
    case Oid.date:
      return create(ValueSchema, { kind: { case: 'date', value: text } });
    case Oid.time:
    case Oid.timetz:
      return create(ValueSchema, { kind: { case: 'time', value: text } });
    case Oid.timestamp:
    case Oid.timestamptz: {
      const micros = parseTimestampMicros(text);
      if (micros === undefined || !timestampFits(micros, text)) break;
      return create(ValueSchema, { kind: { case: oid === Oid.timestamp ? 'timestamp' : 'timestamptz', value: micros } });
    }
    case Oid.interval: {
      const iv = parseInterval(text);
      if (!iv) break;
      return create(ValueSchema, { kind: { case: 'interval', value: iv } });
    }
    case Oid.json:
    case Oid.jsonb:
      return create(ValueSchema, { kind: { case: 'json', value: text } });
    default: {
      const elementOid = arrayElementOid[oid];
      if (elementOid !== undefined) return arrayValue(parseArrayLiteral(text), elementOid);
    }
  }
  return create(ValueSchema, { kind: { case: 'text', value: text } });
}

/**
 * Whether a timestamp's microseconds since 1970 fit the sint64 kind. PostgreSQL counts from 2000,
 * so its last ~29 finite years (after 294247-01-10) overflow int64 here, and INT64_MAX / INT64_MIN
 * mean infinity: those values travel as their text instead (losslessly).
 */
function timestampFits(micros: bigint, text: string): boolean {
  if (text === 'infinity' || text === '-infinity') return true;
  return micros > NEG_INFINITY_MICROS && micros < INFINITY_MICROS;
}

function arrayValue(items: ArrayItems, elementOid: number): Value {
  return create(ValueSchema, {
    kind: {
      case: 'array',
      value: {
        elementTypeOid: elementOid,
        values: items.map((item) => (Array.isArray(item) ? arrayValue(item, elementOid) : cellToValue(item, elementOid))),
      },
    },
  });
}

/** Decodes bytea's hex text output (`\x0a1b...`) into bytes. */
export function byteaFromText(text: string): Uint8Array {
  if (text.startsWith('\\x')) return Buffer.from(text.slice(2), 'hex');
  // The legacy escape format, in case bytea_output = escape.
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') {
      if (text[i + 1] === '\\') {
        out.push(92);
        i++;
      } else {
        out.push(parseInt(text.slice(i + 1, i + 4), 8));
        i += 3;
      }
    } else out.push(text.charCodeAt(i));
  }
  return Uint8Array.from(out);
}
