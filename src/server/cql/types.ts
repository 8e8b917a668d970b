/**
 * CQL data types (native_protocol_v4.spec section 6): their [option] ids, the PostgreSQL type
 * each is stored as, and their names in CQL text and in `system_schema`.
 * @packageDocumentation
 */
import type { BodyWriter } from './frame.js';

/** A scalar CQL type name. */
export type ScalarName =
  | 'ascii'
  | 'bigint'
  | 'blob'
  | 'boolean'
  | 'counter'
  | 'decimal'
  | 'double'
  | 'float'
  | 'int'
  | 'timestamp'
  | 'uuid'
  | 'text'
  | 'varint'
  | 'timeuuid'
  | 'inet'
  | 'date'
  | 'time'
  | 'smallint'
  | 'tinyint';

/** A CQL type. */
export type CqlType =
  | { readonly kind: ScalarName }
  | { readonly kind: 'list' | 'set'; readonly element: CqlType }
  | { readonly kind: 'map'; readonly key: CqlType; readonly value: CqlType };

/** [option] ids of the scalar types. */
const optionIds: Record<ScalarName, number> = {
  ascii: 0x0001,
  bigint: 0x0002,
  blob: 0x0003,
  boolean: 0x0004,
  counter: 0x0005,
  decimal: 0x0006,
  double: 0x0007,
  float: 0x0008,
  int: 0x0009,
  timestamp: 0x000b,
  uuid: 0x000c,
  text: 0x000d,
  varint: 0x000e,
  timeuuid: 0x000f,
  inet: 0x0010,
  date: 0x0011,
  time: 0x0012,
  smallint: 0x0013,
  tinyint: 0x0014,
};

/** The PostgreSQL type of each scalar. */
const pgTypes: Record<ScalarName, string> = {
  ascii: 'text',
  bigint: 'int8',
  blob: 'bytea',
  boolean: 'bool',
  counter: 'int8',
  decimal: 'numeric',
  double: 'float8',
  float: 'float4',
  int: 'int4',
  timestamp: 'timestamptz',
  uuid: 'uuid',
  text: 'text',
  varint: 'numeric',
  timeuuid: 'uuid',
  inet: 'inet',
  date: 'date',
  time: 'int8',
  smallint: 'int2',
  tinyint: 'int2',
};

const aliases: Record<string, ScalarName> = { varchar: 'text' };

/** A scalar type by name (`varchar` is `text`); undefined for an unknown name. */
export function scalarType(name: string): CqlType | undefined {
  const n = name.toLowerCase();
  const k = (aliases[n] ?? n) as ScalarName;
  return k in optionIds ? { kind: k } : undefined;
}

/** Shorthand for a scalar type. */
export function t(kind: ScalarName): CqlType {
  return { kind };
}

/** Whether the type is a collection. */
export function isCollection(type: CqlType): type is Exclude<CqlType, { kind: ScalarName }> {
  return type.kind === 'list' || type.kind === 'set' || type.kind === 'map';
}

/** The type as CQL writes it (and `system_schema.columns.type` shows it). */
export function typeText(type: CqlType): string {
  if (type.kind === 'list' || type.kind === 'set') return `${type.kind}<${typeText(type.element)}>`;
  if (type.kind === 'map') return `map<${typeText(type.key)}, ${typeText(type.value)}>`;
  return type.kind;
}

/** The PostgreSQL column type: scalars natively, lists and sets as arrays, maps as jsonb. */
export function pgTypeOf(type: CqlType): string {
  if (type.kind === 'list' || type.kind === 'set') {
    if (isCollection(type.element)) return 'jsonb';
    return `${pgTypes[type.element.kind as ScalarName]}[]`;
  }
  if (type.kind === 'map') return 'jsonb';
  return pgTypes[type.kind];
}

/** Writes the [option] of a type (section 4.2.5.2). */
export function writeOption(w: BodyWriter, type: CqlType): void {
  if (type.kind === 'list' || type.kind === 'set') {
    w.short(type.kind === 'list' ? 0x0020 : 0x0022);
    writeOption(w, type.element);
  } else if (type.kind === 'map') {
    w.short(0x0021);
    writeOption(w, type.key);
    writeOption(w, type.value);
  } else w.short(optionIds[type.kind]);
}

/** Parses a type's CQL text (`int`, `list<text>`, `map<text, int>`, `frozen<...>`); undefined when unknown. */
export function parseTypeText(text: string): CqlType | undefined {
  const s = text.replace(/\s+/g, '').toLowerCase();
  const m = /^(list|set|frozen)<(.*)>$/.exec(s);
  if (m) {
    const inner = parseTypeText(m[2]);
    if (!inner) return undefined;
    return m[1] === 'frozen' ? inner : { kind: m[1] as 'list' | 'set', element: inner };
  }
  const mm = /^map<(.*)>$/.exec(s);
  if (mm) {
    let depth = 0;
    for (let i = 0; i < mm[1].length; i++) {
      const c = mm[1][i];
      if (c === '<') depth++;
      else if (c === '>') depth--;
      else if (c === ',' && depth === 0) {
        const key = parseTypeText(mm[1].slice(0, i));
        const value = parseTypeText(mm[1].slice(i + 1));
        return key && value ? { kind: 'map', key, value } : undefined;
      }
    }
    return undefined;
  }
  return scalarType(s);
}
