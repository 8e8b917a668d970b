/**
 * CQL values: their wire bytes (native_protocol_v4.spec section 6) to and from JavaScript values,
 * and those to and from the text each value travels to PostgreSQL as (a bind parameter, never
 * SQL text) and comes back as (each selected column is cast to that text by {@link selectSql}).
 * @packageDocumentation
 */
import { invalid } from './errors.js';
import { type CqlType, isCollection, pgTypeOf, type ScalarName, typeText } from './types.js';

/**
 * A value: text, ascii, uuid, inet, decimal, date (YYYY-MM-DD) as strings; int, smallint,
 * tinyint, float, double as numbers; bigint, counter, varint, time (ns) and timestamp (ms) as
 * bigints; blobs as Buffers; lists and sets as arrays; maps as arrays of pairs.
 */
export type CqlValue = string | number | bigint | boolean | Buffer | CqlValue[] | [CqlValue, CqlValue][] | null;

const dateEpoch = 2 ** 31;
const dayMs = 86_400_000;

function bad(type: CqlType, why: string): Error {
  return invalid(`invalid ${typeText(type)} value: ${why}`);
}

function varintDecode(b: Buffer): bigint {
  if (b.length === 0) return 0n;
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  if (b[0] & 0x80) v -= 1n << BigInt(b.length * 8);
  return v;
}

function varintEncode(v: bigint): Buffer {
  const bytes: number[] = [];
  let x = v;
  for (;;) {
    bytes.unshift(Number(x & 0xffn));
    x >>= 8n;
    const sign = bytes[0] & 0x80;
    if ((x === 0n && !sign) || (x === -1n && sign)) break;
  }
  return Buffer.from(bytes);
}

function uuidText(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function inetText(b: Buffer): string {
  if (b.length === 4) return [...b].join('.');
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16));
  return parts.join(':');
}

function inetBytes(s: string): Buffer {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(s)) return Buffer.from(s.split('.').map(Number));
  let [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const tl = tail !== undefined ? (tail ? tail.split(':') : []) : [];
  if (tail === undefined) tail = '';
  const groups = [...h, ...Array(8 - h.length - tl.length).fill('0'), ...tl];
  const b = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) b.writeUInt16BE(Number.parseInt(g, 16) || 0, i * 2);
  return b;
}

function decimalText(scale: number, unscaled: bigint): string {
  const neg = unscaled < 0n;
  let digits = (neg ? -unscaled : unscaled).toString();
  if (scale <= 0) return (neg ? '-' : '') + digits + '0'.repeat(-scale);
  digits = digits.padStart(scale + 1, '0');
  return `${neg ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

function decimalBytes(text: string): Buffer {
  const m = /^(-?)(\d*)(?:\.(\d*))?(?:e([+-]?\d+))?$/i.exec(text.trim());
  if (!m) throw invalid(`invalid decimal ${text}`);
  const frac = m[3] ?? '';
  let scale = frac.length - Number(m[4] ?? 0);
  let unscaled = BigInt(`${m[1]}${m[2] || '0'}${frac}`);
  if (scale < 0) {
    unscaled *= 10n ** BigInt(-scale);
    scale = 0;
  }
  const b = Buffer.alloc(4);
  b.writeInt32BE(scale);
  return Buffer.concat([b, varintEncode(unscaled)]);
}

function fixed(type: CqlType, b: Buffer, n: number): void {
  if (b.length !== n) throw bad(type, `expected ${n} bytes, got ${b.length}`);
}

/** Decodes a value's bytes. */
export function decodeValue(type: CqlType, b: Buffer): CqlValue {
  switch (type.kind) {
    case 'ascii':
    case 'text':
      return b.toString('utf8');
    case 'int':
      fixed(type, b, 4);
      return b.readInt32BE(0);
    case 'smallint':
      fixed(type, b, 2);
      return b.readInt16BE(0);
    case 'tinyint':
      fixed(type, b, 1);
      return b.readInt8(0);
    case 'bigint':
    case 'counter':
    case 'timestamp':
    case 'time':
      fixed(type, b, 8);
      return b.readBigInt64BE(0);
    case 'boolean':
      fixed(type, b, 1);
      return b[0] !== 0;
    case 'double':
      fixed(type, b, 8);
      return b.readDoubleBE(0);
    case 'float':
      fixed(type, b, 4);
      return b.readFloatBE(0);
    case 'blob':
      return Buffer.from(b);
    case 'uuid':
    case 'timeuuid':
      fixed(type, b, 16);
      return uuidText(b);
    case 'varint':
      return varintDecode(b);
    case 'decimal':
      if (b.length < 4) throw bad(type, 'too short');
      return decimalText(b.readInt32BE(0), varintDecode(b.subarray(4)));
    case 'inet':
      if (b.length !== 4 && b.length !== 16) throw bad(type, 'expected 4 or 16 bytes');
      return inetText(b);
    case 'date': {
      fixed(type, b, 4);
      const days = b.readUInt32BE(0) - dateEpoch;
      return new Date(days * dayMs).toISOString().slice(0, 10);
    }
    case 'list':
    case 'set':
    case 'map': {
      if (b.length < 4) throw bad(type, 'too short');
      const n = b.readInt32BE(0);
      if (n < 0 || n > b.length) throw bad(type, 'bad element count');
      let pos = 4;
      const next = (): Buffer => {
        if (pos + 4 > b.length) throw bad(type, 'ends early');
        const len = b.readInt32BE(pos);
        pos += 4;
        if (len < 0 || pos + len > b.length) throw bad(type, 'bad element length');
        const v = b.subarray(pos, pos + len);
        pos += len;
        return v;
      };
      if (type.kind === 'map') {
        const out: [CqlValue, CqlValue][] = [];
        for (let i = 0; i < n; i++) out.push([decodeValue(type.key, next()), decodeValue(type.value, next())]);
        return out;
      }
      const out: CqlValue[] = [];
      for (let i = 0; i < n; i++) out.push(decodeValue(type.element, next()));
      return out;
    }
  }
}

function int(n: number, size: 1 | 2 | 4): Buffer {
  const b = Buffer.alloc(size);
  if (size === 1) b.writeInt8(n);
  else if (size === 2) b.writeInt16BE(n);
  else b.writeInt32BE(n);
  return b;
}

/** Encodes a value (null stays null: written as length -1). */
export function encodeValue(type: CqlType, v: CqlValue): Buffer | null {
  if (v === null || v === undefined) return null;
  switch (type.kind) {
    case 'ascii':
    case 'text':
      return Buffer.from(String(v), 'utf8');
    case 'int':
      return int(Number(v), 4);
    case 'smallint':
      return int(Number(v), 2);
    case 'tinyint':
      return int(Number(v), 1);
    case 'bigint':
    case 'counter':
    case 'timestamp':
    case 'time': {
      const b = Buffer.alloc(8);
      b.writeBigInt64BE(BigInt(v as bigint));
      return b;
    }
    case 'boolean':
      return Buffer.from([v ? 1 : 0]);
    case 'double': {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(Number(v));
      return b;
    }
    case 'float': {
      const b = Buffer.alloc(4);
      b.writeFloatBE(Number(v));
      return b;
    }
    case 'blob':
      return Buffer.from(v as Buffer);
    case 'uuid':
    case 'timeuuid':
      return Buffer.from(String(v).replace(/-/g, ''), 'hex');
    case 'varint':
      return varintEncode(BigInt(v as bigint));
    case 'decimal':
      return decimalBytes(String(v));
    case 'inet':
      return inetBytes(String(v));
    case 'date': {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(Math.round(Date.parse(`${v}T00:00:00Z`) / dayMs) + dateEpoch);
      return b;
    }
    case 'list':
    case 'set':
    case 'map': {
      const items = v as CqlValue[];
      const parts: Buffer[] = [int(items.length, 4)];
      const put = (t: CqlType, x: CqlValue) => {
        const e = encodeValue(t, x) ?? Buffer.alloc(0);
        parts.push(int(e.length, 4), e);
      };
      for (const item of items) {
        if (type.kind === 'map') {
          const [k, val] = item as [CqlValue, CqlValue];
          put(type.key, k);
          put(type.value, val);
        } else put(type.element, item);
      }
      return Buffer.concat(parts);
    }
  }
}

/** A scalar value as the text it travels to PostgreSQL as. */
function scalarText(type: CqlType, v: CqlValue): string {
  if (type.kind === 'blob') return (v as Buffer).toString('hex');
  if (type.kind === 'boolean') return v ? 'true' : 'false';
  if (type.kind === 'tinyint' && (Number(v) < -128 || Number(v) > 127)) throw bad(type, 'out of range');
  return String(v);
}

/** A value as the bind parameter {@link paramSql} expects (text, an array of texts, or JSON). */
export function toParam(type: CqlType, v: CqlValue): string | string[] | null {
  if (v === null) return null;
  if (type.kind === 'list' || type.kind === 'set') {
    const items = (v as CqlValue[]).map((x) => scalarText(type.element, x));
    return type.kind === 'set' ? [...new Set(items)] : items;
  }
  if (type.kind === 'map') {
    const obj: Record<string, string> = {};
    for (const [k, val] of v as [CqlValue, CqlValue][]) obj[scalarText(type.key, k)] = scalarText(type.value, val);
    return JSON.stringify(obj);
  }
  return scalarText(type, v);
}

/** SQL turning a scalar's text (`expr`, of type text) into its PostgreSQL type. */
function scalarParamSql(kind: ScalarName, expr: string): string {
  if (kind === 'blob') return `decode(${expr}, 'hex')`;
  if (kind === 'timestamp') return `('epoch'::timestamptz + (${expr})::int8 * interval '1 millisecond')`;
  return `(${expr})::${pgTypeOf({ kind })}`;
}

/** SQL for bind parameter `$n` holding {@link toParam}'s value. */
export function paramSql(type: CqlType, n: number): string {
  if (type.kind === 'list' || type.kind === 'set') {
    const el = type.element.kind as ScalarName;
    const order = type.kind === 'set' ? 'ORDER BY 1' : 'ORDER BY u.o';
    return `ARRAY(SELECT ${scalarParamSql(el, 'u.v')} FROM unnest($${n}::text[]) WITH ORDINALITY AS u(v, o) ${order})`;
  }
  if (type.kind === 'map') return `$${n}::jsonb`;
  return scalarParamSql(type.kind, `$${n}::text`);
}

/** SQL casting a scalar column expression to its text. */
function scalarSelectSql(kind: ScalarName, expr: string): string {
  if (kind === 'blob') return `encode(${expr}, 'hex')`;
  if (kind === 'timestamp') return `floor(extract(epoch from ${expr}) * 1000)::int8::text`;
  if (kind === 'inet') return `host(${expr})`;
  if (kind === 'date') return `to_char(${expr}, 'YYYY-MM-DD')`;
  return `(${expr})::text`;
}

/** SQL selecting column expression `expr` as the text {@link fromText} reads. */
export function selectSql(type: CqlType, expr: string): string {
  if (type.kind === 'list' || type.kind === 'set') {
    const el = type.element.kind as ScalarName;
    return `(SELECT json_agg(${scalarSelectSql(el, 'u.v')} ORDER BY u.o) FROM unnest(${expr}) WITH ORDINALITY AS u(v, o))::text`;
  }
  if (type.kind === 'map') return `(${expr})::text`;
  return scalarSelectSql(type.kind, expr);
}

/** A scalar from its text. */
function scalarFromText(type: CqlType, s: string): CqlValue {
  switch (type.kind) {
    case 'int':
    case 'smallint':
    case 'tinyint':
    case 'float':
    case 'double':
      return Number(s);
    case 'bigint':
    case 'counter':
    case 'timestamp':
    case 'time':
    case 'varint':
      return BigInt(s);
    case 'boolean':
      return s === 'true' || s === 't';
    case 'blob':
      return Buffer.from(s, 'hex');
    default:
      return s;
  }
}

/** A value from the text {@link selectSql} produced (null stays null; an empty collection is null). */
export function fromText(type: CqlType, s: string | null): CqlValue {
  if (s === null) return null;
  if (type.kind === 'list' || type.kind === 'set') {
    const items = JSON.parse(s) as string[] | null;
    return items?.length ? items.map((x) => scalarFromText(type.element, x)) : null;
  }
  if (type.kind === 'map') {
    const entries = Object.entries(JSON.parse(s) as Record<string, string>).map(
      ([k, v]) => [scalarFromText(type.key, k), scalarFromText(type.value, v)] as [CqlValue, CqlValue],
    );
    entries.sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0));
    return entries.length ? entries : null;
  }
  return scalarFromText(type, s);
}

/** Whether a column of this type may be part of a primary key here. */
export function keyable(type: CqlType): boolean {
  return !isCollection(type) && type.kind !== 'counter';
}
