/**
 * JavaScript values -> heliosdb.v1.Value parameters. Browser-safe.
 *
 * | JavaScript | sent as |
 * |---|---|
 * | `null`, `undefined` | NULL |
 * | boolean | bool |
 * | integer number in int32 range / safe integer beyond it | int32 / int64 |
 * | other number (incl. NaN, +-Infinity) | float64 |
 * | bigint | int64 (numeric text beyond 64 bits) |
 * | string | text (PostgreSQL infers the parameter's type from the statement) |
 * | Date | timestamptz (microseconds) |
 * | Uint8Array / Buffer / ArrayBuffer | bytea |
 * | Array | one-dimensional array of the above |
 * | plain object | json |
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { NullValue } from '@bufbuild/protobuf/wkt';
import { type Value, ValueSchema } from '../../gen/heliosdb/v1/value_pb.js';
import { ParameterError } from '../errors.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const nullParam = create(ValueSchema, { kind: { case: 'nullValue', value: NullValue.NULL_VALUE } });

function jsonReplacer(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

/** Converts one JavaScript value into a parameter Value. Throws ParameterError for unsupported values. */
export function toParam(v: unknown, index = 0): Value {
  switch (typeof v) {
    case 'undefined':
      return nullParam;
    case 'boolean':
      return create(ValueSchema, { kind: { case: 'bool', value: v } });
    case 'number':
      if (Number.isInteger(v)) {
        if (v >= -2147483648 && v <= 2147483647) return create(ValueSchema, { kind: { case: 'int32', value: v } });
        if (Number.isSafeInteger(v)) return create(ValueSchema, { kind: { case: 'int64', value: BigInt(v) } });
      }
      return create(ValueSchema, { kind: { case: 'float64', value: v } });
    case 'bigint':
      if (v >= INT64_MIN && v <= INT64_MAX) return create(ValueSchema, { kind: { case: 'int64', value: v } });
      return create(ValueSchema, { kind: { case: 'numeric', value: v.toString() } });
    case 'string':
      return create(ValueSchema, { kind: { case: 'text', value: v } });
    case 'object': {
      if (v === null) return nullParam;
      if (v instanceof Date) {
        const ms = v.getTime();
        if (Number.isNaN(ms)) throw new ParameterError(`parameter $${index + 1} is an invalid Date`, 'INVALID_PARAMETER');
        return create(ValueSchema, { kind: { case: 'timestamptz', value: BigInt(ms) * 1000n } });
      }
      if (v instanceof Uint8Array) return create(ValueSchema, { kind: { case: 'bytes', value: v } });
      if (v instanceof ArrayBuffer) return create(ValueSchema, { kind: { case: 'bytes', value: new Uint8Array(v) } });
      if (Array.isArray(v)) {
        return create(ValueSchema, {
          kind: { case: 'array', value: { elementTypeOid: 0, values: v.map((e) => toParam(e, index)) } },
        });
      }
      return create(ValueSchema, { kind: { case: 'json', value: JSON.stringify(v, jsonReplacer) } });
    }
    default:
      throw new ParameterError(`parameter $${index + 1} has unsupported type ${typeof v}`, 'INVALID_PARAMETER');
  }
}

/** Converts a parameter list. */
export function toParams(values: readonly unknown[] | undefined): Value[] {
  if (!values || values.length === 0) return [];
  const out = new Array<Value>(values.length);
  for (let i = 0; i < values.length; i++) out[i] = toParam(values[i], i);
  return out;
}
