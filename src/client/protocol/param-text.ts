/**
 * A parameter `Value` as the text PostgreSQL parses: what the server sends to the database, and
 * what the client's `postgres://` transport sends to node-postgres. Browser-safe.
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { ErrorDetailSchema, ErrorReason } from '../../../gen/heliosdb/v1/error_pb.js';
import type { Value } from '../../../gen/heliosdb/v1/value_pb.js';
import { formatInterval, formatTimestampMicros } from './datetime.js';

function floatText(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  return String(n);
}

function quoteArrayElement(text: string | null): string {
  return text === null ? 'NULL' : `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

const hexDigits = '0123456789abcdef';

function byteaText(bytes: Uint8Array): string {
  let out = '\\x';
  for (const b of bytes) out += hexDigits[b >> 4]! + hexDigits[b & 15]!;
  return out;
}

/** INVALID_ARGUMENT with reason INVALID_PARAMETER, as the server answers it. */
function invalidParameter(message: string): ConnectError {
  const value = create(ErrorDetailSchema, { message, reason: ErrorReason.INVALID_PARAMETER });
  return new ConnectError(message, Code.InvalidArgument, undefined, [{ desc: ErrorDetailSchema, value }]);
}

/**
 * A parameter Value as the text PostgreSQL parses (`null` for NULL). Text holding a NUL, which
 * PostgreSQL cannot store, throws INVALID_ARGUMENT (reason INVALID_PARAMETER) naming `$index+1`.
 */
export function paramToText(v: Value, index: number): string | null {
  const k = v.kind;
  switch (k.case) {
    case undefined:
    case 'nullValue':
      return null;
    case 'bool':
      return k.value ? 't' : 'f';
    case 'int32':
    case 'int64':
      return String(k.value);
    case 'float32':
    case 'float64':
      return floatText(k.value);
    case 'numeric':
    case 'text':
    case 'uuid':
    case 'date':
    case 'time':
    case 'json':
      if (k.value.includes('\0'))
        throw invalidParameter(`parameter $${index + 1} contains a NUL character, which PostgreSQL text cannot hold`);
      return k.value;
    case 'bytes':
      return byteaText(k.value);
    case 'timestamp':
      return formatTimestampMicros(k.value, false);
    case 'timestamptz':
      return formatTimestampMicros(k.value, true);
    case 'interval':
      return formatInterval(k.value);
    case 'array':
      return `{${k.value.values.map((e) => quoteArrayElement(paramToText(e, index))).join(',')}}`;
  }
}

/**
 * What `paramToText(toParam(v), index)` gives for a scalar JavaScript value (null, undefined,
 * boolean, number, bigint, string, Date), without building the Value; `undefined` for anything
 * else (arrays, bytes, objects, invalid Dates: those take the Value path and its errors).
 * test/client-param-text.test.ts checks the two agree.
 */
export function scalarParamText(v: unknown, index: number): string | null | undefined {
  switch (typeof v) {
    case 'undefined':
      return null;
    case 'boolean':
      return v ? 't' : 'f';
    case 'number':
      return Number.isSafeInteger(v) ? String(v) : floatText(v);
    case 'bigint':
      return v.toString();
    case 'string':
      if (v.includes('\0')) throw invalidParameter(`parameter $${index + 1} contains a NUL character, which PostgreSQL text cannot hold`);
      return v;
    case 'object': {
      if (v === null) return null;
      if (!(v instanceof Date)) return undefined;
      const ms = v.getTime();
      return Number.isNaN(ms) ? undefined : formatTimestampMicros(BigInt(ms) * 1000n, true);
    }
    default:
      return undefined;
  }
}
