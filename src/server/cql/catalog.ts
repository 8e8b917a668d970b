/**
 * CQL's schema kept in PostgreSQL's own catalog: a keyspace is a schema and a CQL table a table,
 * each carrying its CQL description (column types, partition and clustering keys, clustering
 * order) as JSON in its COMMENT, so the description lives and dies with the object and needs no
 * table of its own, and every role sees it as it sees the catalog.
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import type { BackendConnection } from '../backend.js';
import { quoteIdent } from '../sql-quote.js';
import { type CqlType, parseTypeText, typeText } from './types.js';

/** The mark at the start of every comment this listener writes. */
export const commentMark = '{"heliosdb_cql":1';

/** How a column takes part in the primary key. */
export type ColumnKind = 'partition_key' | 'clustering' | 'regular';

/** A column of a CQL table. */
export interface ColumnMeta {
  readonly name: string;
  readonly type: CqlType;
  readonly kind: ColumnKind;
  /** Position within the partition key or clustering columns; -1 for regular columns. */
  readonly position: number;
}

/** A CQL table. */
export interface TableMeta {
  readonly keyspace: string;
  readonly name: string;
  /** In declaration order. */
  readonly columns: readonly ColumnMeta[];
  readonly partitionKey: readonly string[];
  readonly clustering: readonly string[];
  readonly order: Readonly<Record<string, 'ASC' | 'DESC'>>;
  /** All regular columns are counters. */
  readonly counter: boolean;
  /** A stable id (system_schema.tables.id). */
  readonly id: string;
}

/** A keyspace. */
export interface KeyspaceMeta {
  readonly name: string;
  readonly replication: Readonly<Record<string, string>>;
  readonly durableWrites: boolean;
}

/** The SQL name of a table. */
export function qualified(keyspace: string, table: string): string {
  return `${quoteIdent(keyspace)}.${quoteIdent(table)}`;
}

/** A uuid-shaped stable id for a name. */
export function stableId(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\u0000')).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The comment describing a table. */
export function tableComment(t: Omit<TableMeta, 'id' | 'columns'> & { columns: readonly { name: string; type: CqlType }[] }): string {
  return `${commentMark},"columns":${JSON.stringify(t.columns.map((c) => [c.name, typeText(c.type)]))},"pk":${JSON.stringify(
    t.partitionKey,
  )},"ck":${JSON.stringify(t.clustering)},"order":${JSON.stringify(t.order)}}`;
}

/** The comment describing a keyspace. */
export function keyspaceComment(replication: Record<string, string>, durableWrites: boolean): string {
  return `${commentMark},"replication":${JSON.stringify(replication)},"durable_writes":${durableWrites}}`;
}

/** A table from its comment; undefined when it is not one this listener wrote. */
export function tableFromComment(keyspace: string, name: string, comment: string | null): TableMeta | undefined {
  if (!comment?.startsWith(commentMark)) return undefined;
  try {
    const j = JSON.parse(comment) as { columns: [string, string][]; pk: string[]; ck: string[]; order: Record<string, unknown> };
    // The comment is the table owner's to rewrite with plain SQL: untrusted. Only names of its
    // own columns and exactly ASC/DESC are taken from it; anything else makes it no CQL table.
    if (!Array.isArray(j.columns) || !Array.isArray(j.pk) || !Array.isArray(j.ck) || j.pk.length === 0) return undefined;
    const names = new Set<string>();
    for (const c of j.columns) {
      if (!Array.isArray(c) || typeof c[0] !== 'string' || typeof c[1] !== 'string' || c[0].includes('\u0000')) return undefined;
      names.add(c[0]);
    }
    if (![...j.pk, ...j.ck].every((k) => typeof k === 'string' && names.has(k))) return undefined;
    const order: Record<string, 'ASC' | 'DESC'> = {};
    for (const [k, v] of Object.entries(j.order ?? {})) {
      if (!j.ck.includes(k) || (v !== 'ASC' && v !== 'DESC')) return undefined;
      order[k] = v;
    }
    const columns: ColumnMeta[] = j.columns.map(([n, ty]) => {
      const pk = j.pk.indexOf(n);
      const ck = j.ck.indexOf(n);
      const type = parseTypeText(ty) ?? { kind: 'blob' };
      return pk >= 0
        ? { name: n, type, kind: 'partition_key', position: pk }
        : ck >= 0
          ? { name: n, type, kind: 'clustering', position: ck }
          : { name: n, type, kind: 'regular', position: -1 };
    });
    const regular = columns.filter((c) => c.kind === 'regular');
    return {
      keyspace,
      name,
      columns,
      partitionKey: j.pk,
      clustering: j.ck,
      order,
      counter: regular.length > 0 && regular.every((c) => c.type.kind === 'counter'),
      id: stableId(keyspace, name),
    };
  } catch {
    return undefined;
  }
}

/** A keyspace from its schema's comment; undefined when it is not one. */
export function keyspaceFromComment(name: string, comment: string | null): KeyspaceMeta | undefined {
  if (!comment?.startsWith(commentMark)) return undefined;
  try {
    const j = JSON.parse(comment) as { replication?: Record<string, string>; durable_writes?: boolean };
    return { name, replication: j.replication ?? {}, durableWrites: j.durable_writes !== false };
  } catch {
    return undefined;
  }
}

/** Runs a catalog query. */
async function rows(conn: BackendConnection, text: string, values: unknown[]): Promise<Record<string, string | null>[]> {
  return (await conn.query({ text, values })).rows as Record<string, string | null>[];
}

/** One table, or undefined when there is no CQL table of that name. */
export async function readTable(conn: BackendConnection, keyspace: string, name: string): Promise<TableMeta | undefined> {
  const r = await rows(conn, `SELECT obj_description(to_regclass($1), 'pg_class') AS d`, [qualified(keyspace, name)]);
  return tableFromComment(keyspace, name, r[0]?.d ?? null);
}

/** One keyspace, or undefined. */
export async function readKeyspace(conn: BackendConnection, name: string): Promise<KeyspaceMeta | undefined> {
  const r = await rows(conn, `SELECT obj_description(oid, 'pg_namespace') AS d FROM pg_namespace WHERE nspname = $1`, [name]);
  return keyspaceFromComment(name, r[0]?.d ?? null);
}

/** Every CQL keyspace. */
export async function listKeyspaces(conn: BackendConnection): Promise<KeyspaceMeta[]> {
  const r = await rows(
    conn,
    `SELECT nspname AS n, obj_description(oid, 'pg_namespace') AS d FROM pg_namespace WHERE starts_with(coalesce(obj_description(oid, 'pg_namespace'), ''), $1) ORDER BY nspname`,
    [commentMark],
  );
  return r.flatMap((x) => keyspaceFromComment(x.n ?? '', x.d) ?? []);
}

/** Every CQL table (of the given keyspace, or all). */
export async function listTables(conn: BackendConnection): Promise<TableMeta[]> {
  const r = await rows(
    conn,
    `SELECT n.nspname AS k, c.relname AS t, obj_description(c.oid, 'pg_class') AS d FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND starts_with(coalesce(obj_description(c.oid, 'pg_class'), ''), $1) ORDER BY 1, 2`,
    [commentMark],
  );
  return r.flatMap((x) => tableFromComment(x.k ?? '', x.t ?? '', x.d) ?? []);
}

/**
 * The error text for a keyspace that is not there: only schemas made with CREATE KEYSPACE (and
 * their tables made with CREATE TABLE) are CQL's; other PostgreSQL schemas and tables are not seen.
 */
export function keyspaceMissing(name: string): string {
  return `Keyspace '${name}' does not exist (only keyspaces made with CREATE KEYSPACE through CQL, and their tables made with CREATE TABLE, are visible to CQL; other PostgreSQL schemas and tables are not)`;
}
