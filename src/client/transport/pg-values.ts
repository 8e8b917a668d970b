/**
 * Values between the wire contract and node-postgres: a parameter `Value` as the text PostgreSQL
 * parses, and a result's raw text cells as a compact `ResultSet` that the client decodes with the
 * same decoders as a server's answer (so every value is identical on every transport). Node only.
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import type { FieldDef } from 'pg';
import {
  type Column,
  ColumnSchema,
  type ResultSet,
  ResultSetSchema,
  type Rows,
  RowsSchema,
  type Value,
} from '../../../gen/heliosdb/v1/value_pb.js';
import { CompactWriter } from '../protocol/compact.js';
import { paramToText } from '../protocol/param-text.js';
import { builtinTypeName, Oid } from '../protocol/oids.js';

/** node-postgres type parsing turned off: every cell stays PostgreSQL's text. */
export const rawTypes = { getTypeParser: () => (text: string) => text };

/** Every parameter as text. */
export function paramTexts(params: readonly Value[]): (string | null)[] {
  return params.map(paramToText);
}

/** bytea's text output (`\x0a1b...`, or the legacy escape format) as bytes. */
export function byteaBytes(text: string): Uint8Array {
  if (text.startsWith('\\x')) return Buffer.from(text.slice(2), 'hex');
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '\\') out.push(text.charCodeAt(i));
    else if (text[i + 1] === '\\') {
      out.push(92);
      i++;
    } else {
      out.push(Number.parseInt(text.slice(i + 1, i + 4), 8));
      i += 3;
    }
  }
  return Uint8Array.from(out);
}

/** Type OID to name: built-in names at once, others looked up in pg_type once and cached. */
export class PgTypeNames {
  private readonly cache = new Map<number, string>();

  /** The name of `oid`, `''` while unknown. */
  get = (oid: number): string => builtinTypeName(oid) ?? this.cache.get(oid) ?? '';

  /** Looks up the names not known yet with `query` (failures leave them empty). */
  async resolve(oids: Iterable<number>, query: (text: string, values: unknown[]) => Promise<{ rows: unknown[] }>): Promise<void> {
    const missing = [...new Set(oids)].filter((o) => o !== 0 && builtinTypeName(o) === undefined && !this.cache.has(o));
    if (missing.length === 0) return;
    try {
      const r = await query('SELECT oid::int8::text, typname FROM pg_catalog.pg_type WHERE oid = ANY($1::oid[])', [
        `{${missing.join(',')}}`,
      ]);
      for (const [oid, name] of r.rows as [string, string][]) this.cache.set(Number(oid), name);
    } catch {
      // In a failed transaction the lookup cannot run; names stay empty.
    }
  }
}

/** Column metadata of a result. */
export function columnsOf(fields: readonly FieldDef[], typeName: (oid: number) => string): Column[] {
  return fields.map((f) =>
    create(ColumnSchema, { name: f.name, typeOid: f.dataTypeID, typeName: typeName(f.dataTypeID), typeModifier: f.dataTypeModifier }),
  );
}

/** Encodes rows of raw text cells as one compact batch. */
export function compactRows(fields: readonly FieldDef[], rows: readonly (readonly (string | null)[])[]): Rows {
  const bytea = fields.map((f) => f.dataTypeID === Oid.bytea);
  const w = new CompactWriter(rows.length * fields.length * 8 + 64);
  for (const row of rows) {
    for (let i = 0; i < row.length; i++) {
      const c = row[i];
      if (c === null) w.null();
      else if (bytea[i]) w.bytes(byteaBytes(c));
      else w.text(c);
    }
  }
  return create(RowsSchema, { rowCount: rows.length, compact: w.finish() });
}

/** `INSERT 0 3` as `{ command: 'INSERT', rowsAffected: 3n }`. */
export function parseCommandTag(tag: string): { command: string; rowsAffected: bigint } {
  const parts = tag.split(' ');
  const last = parts[parts.length - 1];
  if (parts.length > 1 && /^\d+$/.test(last))
    return { command: parts[0] === 'INSERT' ? 'INSERT' : parts.slice(0, -1).join(' '), rowsAffected: BigInt(last) };
  return { command: tag, rowsAffected: 0n };
}

/** One node-postgres result (rowMode array, raw types). */
export interface RawResult {
  command: string | null;
  rowCount: number | null;
  fields: FieldDef[];
  rows: (string | null)[][];
  /** The whole command tag (`CREATE TABLE`, `INSERT 0 3`), when known. */
  tag?: string;
}

/** A ResultSet of the last result of a statement or script, row counts summed over the script. */
export function resultSetOf(results: RawResult | RawResult[], typeName: (oid: number) => string, executionTimeMs: number): ResultSet {
  const list = Array.isArray(results) ? results : [results];
  const last = list[list.length - 1];
  let affected = 0n;
  for (const r of list) affected += BigInt(r.rowCount ?? 0);
  const fields = last?.fields ?? [];
  return create(ResultSetSchema, {
    columns: columnsOf(fields, typeName),
    rows: fields.length > 0 ? compactRows(fields, last.rows) : create(RowsSchema, { rowCount: 0 }),
    command: last?.tag !== undefined ? parseCommandTag(last.tag).command : (last?.command ?? ''),
    rowsAffected: affected,
    executionTimeMs,
  });
}
