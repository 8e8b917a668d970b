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
import { type Value, ValueSchema } from '../../../gen/heliosdb/v1/value_pb.js';
import { ParameterError } from '../errors.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const nullParam = create(ValueSchema, { kind: { case: 'nullValue', value: NullValue.NULL_VALUE } });

const supported =
  'null, undefined, boolean, number, bigint, string, Date, Uint8Array/Buffer/ArrayBuffer, an array of these, or a plain object (sent as json)';

/** What a value is, in words: `a Map`, `a function`, `an instance of class Point`, `a number (5)`. */
export function describeValue(v: unknown): string {
  switch (typeof v) {
    case 'function':
      return v.name ? `a function (${v.name})` : 'a function';
    case 'symbol':
      return `a symbol (${v.toString()})`;
    case 'string':
      return `a string (${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)})`;
    case 'number':
    case 'boolean':
      return `a ${typeof v} (${String(v)})`;
    case 'bigint':
      return `a bigint (${v}n)`;
    case 'undefined':
      return 'undefined';
    case 'object': {
      if (v === null) return 'null';
      const name = (v as { constructor?: { name?: unknown } }).constructor?.name;
      if (
        v instanceof Map ||
        v instanceof Set ||
        v instanceof WeakMap ||
        v instanceof WeakSet ||
        v instanceof Promise ||
        v instanceof RegExp
      ) {
        return `a ${typeof name === 'string' && name ? name : Object.prototype.toString.call(v).slice(8, -1)}`;
      }
      if (Array.isArray(v)) return `an array of ${v.length}`;
      if (isPlainObject(v)) return 'a plain object';
      return typeof name === 'string' && name ? `an instance of class ${name}` : 'an object with a custom prototype';
    }
  }
  return typeof v;
}

/** An object literal or `Object.create(null)`: what is sent as json. */
function isPlainObject(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

const supportedInJson = 'null, boolean, number, bigint, string, arrays, plain objects, and objects with a toJSON method (such as Date)';

function unsupported(where: string, v: unknown, inJson = false): ParameterError {
  const what = describeValue(v);
  return new ParameterError(
    inJson
      ? `parameter ${where} is ${what}, which cannot be sent inside a json parameter (convert it first); json holds ${supportedInJson}`
      : `parameter ${where} is ${what}, which cannot be sent; a parameter is ${supported}`,
    'INVALID_PARAMETER',
  );
}

/**
 * JSON text of a plain object, refusing what JSON.stringify would silently turn into `{}` or
 * drop (Maps, Sets, functions, class instances without toJSON) and cycles, naming the path.
 */
function jsonParam(root: object, where: string): string {
  // JSON.stringify calls the replacer with each value after its toJSON, `this` being the holder;
  // each nested object's holder and key are kept so that a refusal can name the path.
  const parents = new Map<object, [object, string]>();
  const pathOf = (holder: unknown, key: string): string => {
    const keys: string[] = [key];
    for (let h = holder as object, p = parents.get(h); p; p = parents.get(h)) {
      keys.push(p[1]);
      h = p[0];
    }
    return keys
      .reverse()
      .reduce(
        (at, k) => (/^\d+$/.test(k) ? `${at}[${k}]` : /^[A-Za-z_$][\w$]*$/.test(k) ? `${at}.${k}` : `${at}[${JSON.stringify(k)}]`),
        where,
      );
  };
  const replacer = function (this: unknown, key: string, v: unknown): unknown {
    switch (typeof v) {
      case 'bigint':
        return v.toString();
      case 'function':
      case 'symbol':
        throw unsupported(pathOf(this, key), v, true);
      case 'object':
        if (v === null || key === '') return v;
        if (!Array.isArray(v) && !isPlainObject(v)) throw unsupported(pathOf(this, key), v, true);
        parents.set(v, [this as object, key]);
        return v;
      default:
        return v;
    }
  };
  try {
    return JSON.stringify(root, replacer);
  } catch (e) {
    if (e instanceof ParameterError) throw e;
    // A cycle (TypeError: Converting circular structure to JSON), or a toJSON that threw.
    const cycle = e instanceof TypeError && /circular/i.test(e.message);
    throw new ParameterError(
      cycle
        ? `parameter ${where} is a plain object that contains itself (a cycle), which cannot be sent as json`
        : `parameter ${where} cannot be sent as json: ${(e as Error).message}`,
      'INVALID_PARAMETER',
      { cause: e },
    );
  }
}

/**
 * Converts one JavaScript value into a parameter Value (see the file comment). Throws
 * ParameterError naming the parameter (`$2`, `$2[0]`) and what it is for anything else: Maps,
 * Sets, functions, symbols, class instances other than Date / Uint8Array / Buffer / ArrayBuffer,
 * arrays or objects that contain themselves.
 */
export function toParam(v: unknown, index = 0, where = `$${index + 1}`, ancestors?: Set<unknown>): Value {
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
        if (Number.isNaN(ms)) throw new ParameterError(`parameter ${where} is an invalid Date`, 'INVALID_PARAMETER');
        return create(ValueSchema, { kind: { case: 'timestamptz', value: BigInt(ms) * 1000n } });
      }
      if (v instanceof Uint8Array) return create(ValueSchema, { kind: { case: 'bytes', value: v } });
      if (v instanceof ArrayBuffer) return create(ValueSchema, { kind: { case: 'bytes', value: new Uint8Array(v) } });
      if (Array.isArray(v)) {
        const seen = ancestors ?? new Set<unknown>();
        if (seen.has(v))
          throw new ParameterError(
            `parameter ${where} is an array that contains itself (a cycle), which cannot be sent`,
            'INVALID_PARAMETER',
          );
        seen.add(v);
        const values = new Array<Value>(v.length);
        for (let i = 0; i < v.length; i++) values[i] = toParam(v[i], index, `${where}[${i}]`, seen);
        seen.delete(v);
        return create(ValueSchema, { kind: { case: 'array', value: { elementTypeOid: 0, values } } });
      }
      if (!isPlainObject(v)) throw unsupported(where, v);
      return create(ValueSchema, { kind: { case: 'json', value: jsonParam(v, where) } });
    }
    default:
      throw unsupported(where, v);
  }
}

/** Most parameters one statement takes: the protocol's Bind message counts them in 16 bits. */
export const maxParameters = 65535;

/**
 * Converts a parameter list: an array (one value per `$n`), or undefined for none. Anything else
 * (a lone value, an object of named values, a Map) throws ParameterError before anything is
 * sent, as does any value {@link toParam} refuses.
 */
export function toParams(values: readonly unknown[] | undefined): Value[] {
  if (values === undefined) return [];
  if (!Array.isArray(values)) {
    const hint =
      values === null
        ? ' (leave it out, or pass [], for none)'
        : typeof values === 'object'
          ? ' (named parameters are not supported: write $1, $2, ... in the SQL and pass [value1, value2, ...])'
          : ` (to send one value, wrap it: [${typeof values === 'string' ? JSON.stringify(values) : typeof values === 'number' || typeof values === 'boolean' ? String(values) : 'value'}])`;
    throw new ParameterError(`parameters must be an array (or left out), got ${describeValue(values)}${hint}`, 'INVALID_PARAMETER');
  }
  if (values.length === 0) return [];
  if (values.length > maxParameters)
    throw new ParameterError(
      `${values.length} parameters are more than PostgreSQL takes in one statement (${maxParameters}); split the statement, or pass the values as one array parameter`,
      'INVALID_PARAMETER',
    );
  const out = new Array<Value>(values.length);
  for (let i = 0; i < values.length; i++) out[i] = toParam(values[i], i);
  return out;
}
