/**
 * Bind markers and constants: the type and name of every marker of a statement (what PREPARE
 * answers, and how EXECUTE's values are decoded), and a term's value for a column's type.
 * @packageDocumentation
 */
import { randomUUID } from 'node:crypto';
import type { Relation, Statement, Term } from './ast.js';
import { invalid } from './errors.js';
import { type CqlType, isCollection, t, typeText } from './types.js';
import type { CqlValue } from './values.js';

/** A column of a result or a bind marker. */
export interface ColumnSpec {
  readonly keyspace: string;
  readonly table: string;
  readonly name: string;
  readonly type: CqlType;
}

/** What bind analysis needs of a table: its keyspace, name and column types. */
export interface Columns {
  readonly keyspace: string;
  readonly name: string;
  typeOf(column: string): CqlType | undefined;
}

/** A bound value: a value, or `unset` (the column is left as it is). */
export type Bound = CqlValue | 'unset';

/** The column type, or an Invalid error naming the column. */
export function columnType(cols: Columns, column: string): CqlType {
  const ty = cols.typeOf(column);
  if (!ty) throw invalid(`Undefined column name ${column} in table ${cols.keyspace}.${cols.name}`);
  return ty;
}

/** The marker specs of a statement, by marker index (`count` markers). */
export function bindSpecs(stmt: Statement, cols: Columns | undefined, count: number): ColumnSpec[] {
  const specs: (ColumnSpec | undefined)[] = new Array(count).fill(undefined);
  const ks = cols?.keyspace ?? '';
  const tb = cols?.name ?? '';
  const put = (term: Term | undefined, name: string, type: CqlType) => {
    if (!term) return;
    if (term.kind === 'marker') specs[term.index] = { keyspace: ks, table: tb, name: term.name ?? name, type };
    else if (term.kind === 'list' || term.kind === 'set')
      for (const x of term.items) put(x, name, isCollection(type) && type.kind !== 'map' ? type.element : type);
    else if (term.kind === 'map' && type.kind === 'map')
      for (const [k, v] of term.entries) {
        put(k, name, type.key);
        put(v, name, type.value);
      }
  };
  const typeOr = (c: string) => (cols ? columnType(cols, c) : t('text'));
  const rel = (r: Relation) => {
    const ty = typeOr(r.column);
    if (r.op === 'IN') {
      if (Array.isArray(r.value)) for (const x of r.value as Term[]) put(x, r.column, ty);
      else put(r.value as Term, `in(${r.column})`, { kind: 'list', element: ty });
    } else if (r.op === 'CONTAINS') put(r.value as Term, r.column, isCollection(ty) && ty.kind !== 'map' ? ty.element : ty);
    else put(r.value as Term, r.column, ty);
  };
  const walk = (s: Statement) => {
    if ('using' in s) {
      put(s.using.ttl, '[ttl]', t('int'));
      put(s.using.timestamp, '[timestamp]', t('bigint'));
    }
    if (s.kind === 'insert') {
      for (const [i, c] of s.columns.entries()) put(s.values[i], c, typeOr(c));
    }
    if (s.kind === 'update') {
      for (const a of s.set) {
        const ty = typeOr(a.column);
        put(a.value, a.column, a.op === 'subtract' && ty.kind === 'map' ? { kind: 'set', element: ty.key } : ty);
      }
    }
    if (s.kind === 'update' || s.kind === 'delete' || s.kind === 'select') s.where.forEach(rel);
    if (s.kind === 'update' || s.kind === 'delete') s.conditions.forEach(rel);
    if (s.kind === 'select') put(s.limit, '[limit]', t('int'));
    if (s.kind === 'batch' && count > 0)
      throw invalid('bind markers in a BATCH given as one query string are not supported: send the statements as a batch of queries');
  };
  walk(stmt);
  return specs.map((s, i) => s ?? { keyspace: ks, table: tb, name: `m${i}`, type: t('blob') });
}

function parseTimestamp(text: string): bigint {
  if (/^-?\d+$/.test(text)) return BigInt(text);
  let s = text.trim().replace(' ', 'T');
  if (/[+-]\d{4}$/.test(s)) s = `${s.slice(0, -2)}:${s.slice(-2)}`;
  if (!/[zZ]|[+-]\d\d:\d\d$/.test(s) && s.includes('T')) s += 'Z';
  const ms = Date.parse(/^\d{4}-\d\d-\d\d$/.test(s) ? `${s}T00:00:00Z` : s);
  if (Number.isNaN(ms)) throw invalid(`Unable to parse a date/time from '${text}'`);
  return BigInt(ms);
}

/** A v1 (time-based) UUID for now(). */
function timeUuid(): string {
  const ts = BigInt(Date.now()) * 10000n + 0x01b21dd213814000n;
  const low = (ts & 0xffffffffn).toString(16).padStart(8, '0');
  const mid = ((ts >> 32n) & 0xffffn).toString(16).padStart(4, '0');
  const high = (((ts >> 48n) & 0x0fffn) | 0x1000n).toString(16).padStart(4, '0');
  const rest = randomUUID().slice(19);
  return `${low}-${mid}-${high}-${rest}`;
}

function constant(term: Term, type: CqlType): CqlValue {
  const k = type.kind;
  const wrong = () => invalid(`Invalid ${term.kind} constant for a column of type ${typeText(type)}`);
  switch (term.kind) {
    case 'null':
      return null;
    case 'bool':
      if (k !== 'boolean') throw wrong();
      return term.value;
    case 'number': {
      if (k === 'int' || k === 'smallint' || k === 'tinyint') {
        if (!/^-?\d+$/.test(term.text)) throw wrong();
        const n = Number(term.text);
        const lim = k === 'int' ? 2 ** 31 : k === 'smallint' ? 2 ** 15 : 2 ** 7;
        if (n < -lim || n >= lim) throw invalid(`Value ${term.text} is out of range for ${k}`);
        return n;
      }
      if (k === 'bigint' || k === 'counter' || k === 'varint' || k === 'timestamp' || k === 'time') {
        if (!/^-?\d+$/.test(term.text)) throw wrong();
        return BigInt(term.text);
      }
      if (k === 'float' || k === 'double') return Number(term.text);
      if (k === 'decimal') return term.text;
      throw wrong();
    }
    case 'string':
      if (k === 'text' || k === 'ascii') return term.text;
      if (k === 'timestamp') return parseTimestamp(term.text);
      if (k === 'date') {
        if (!/^-?\d{4}-\d\d-\d\d$/.test(term.text)) throw invalid(`Unable to coerce '${term.text}' to a formatted date`);
        return term.text;
      }
      if (k === 'inet') return term.text;
      if (k === 'time') {
        const m = /^(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?$/.exec(term.text);
        if (!m) throw invalid(`Unable to coerce '${term.text}' to a time`);
        return (BigInt(m[1]) * 3600n + BigInt(m[2]) * 60n + BigInt(m[3])) * 1_000_000_000n + BigInt((m[4] ?? '').padEnd(9, '0'));
      }
      throw wrong();
    case 'uuid':
      if (k !== 'uuid' && k !== 'timeuuid') throw wrong();
      return term.text;
    case 'blob':
      if (k !== 'blob') throw wrong();
      return Buffer.from(term.text, 'hex');
    default:
      throw wrong();
  }
}

/** A term's value for a column of `type`; markers take theirs from `bound`. */
export function termValue(term: Term, type: CqlType, bound: readonly Bound[]): Bound {
  if (term.kind === 'marker') {
    if (term.index >= bound.length)
      throw invalid(`There were ${bound.length} markers(?) in CQL but ${term.index + 1} bound variables are needed`);
    return bound[term.index];
  }
  if (term.kind === 'call') {
    const n = term.name;
    if (n === 'now' && (type.kind === 'timeuuid' || type.kind === 'uuid')) return timeUuid();
    if (n === 'uuid' && type.kind === 'uuid') return randomUUID();
    if ((n === 'totimestamp' || n === 'currenttimestamp') && type.kind === 'timestamp') return BigInt(Date.now());
    throw invalid(`function ${n}() is not supported here (docs/cql.md)`);
  }
  if (term.kind === 'list' || term.kind === 'set') {
    if (type.kind !== 'list' && type.kind !== 'set') throw invalid(`Invalid collection literal for a column of type ${typeText(type)}`);
    return term.items.map((x) => termValue(x, type.element, bound) as CqlValue);
  }
  if (term.kind === 'map') {
    if (type.kind === 'set' && term.entries.length === 0) return [];
    if (type.kind !== 'map') throw invalid(`Invalid map literal for a column of type ${typeText(type)}`);
    return term.entries.map(([k, v]) => [termValue(k, type.key, bound) as CqlValue, termValue(v, type.value, bound) as CqlValue]);
  }
  return constant(term, type);
}
