/**
 * CQL statements onto PostgreSQL: SELECT under CQL's WHERE rules, INSERT and UPDATE as upserts
 * (`INSERT ... ON CONFLICT DO UPDATE`), DELETE, conditions (IF) as predicates of one statement,
 * counters as additions, row-level TTL as a hidden expiry column. Every value is a bind
 * parameter; only quoted identifiers are part of the SQL text.
 * @packageDocumentation
 */
import { quoteIdent } from '../sql-quote.js';
import type { Assignment, Relation, Statement, Term } from './ast.js';
import { type Bound, type ColumnSpec, columnType, termValue } from './bind.js';
import { qualified, type TableMeta } from './catalog.js';
import { invalid, unsupported } from './errors.js';
import { type CqlType, isCollection, pgTypeOf, t } from './types.js';
import { type CqlValue, paramSql, selectSql, toParam } from './values.js';

/** The hidden column holding a row's expiry (INSERT ... USING TTL). */
export const expiresColumn = 'heliosdb_expires_at';

const live = `(${quoteIdent(expiresColumn)} IS NULL OR ${quoteIdent(expiresColumn)} > now())`;

/** Parameters of one SQL statement. */
export class Params {
  readonly values: (string | string[] | null)[] = [];

  /** A typed value; returns the SQL that reads it. */
  add(type: CqlType, v: CqlValue): string {
    this.values.push(toParam(type, v));
    return paramSql(type, this.values.length);
  }

  /** Plain text or number; returns `$n`. */
  raw(v: string): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
}

/** A SELECT to run: SQL without LIMIT/OFFSET, its parameters, the result columns. */
export interface SelectPlan {
  readonly sql: string;
  readonly params: Params;
  readonly columns: readonly ColumnSpec[];
  /** CQL LIMIT, if any. */
  readonly limit: number | undefined;
}

/** A write to run; `conditional`: answers `[applied]` from whether it returned a row. */
export interface WritePlan {
  readonly sql: string;
  readonly params: Params;
  readonly conditional: boolean;
  /** For a conditional write: the statement reading the row's current values when not applied. */
  readonly current?: SelectPlan;
}

function col(name: string): string {
  return quoteIdent(name);
}

/** A relation's value, refusing null and unset as CQL does. */
function relValue(term: Term, type: CqlType, bound: readonly Bound[], column: string): CqlValue {
  const v = termValue(term, type, bound);
  if (v === 'unset') throw invalid(`Invalid unset value for column ${column}`);
  if (v === null) throw invalid(`Invalid null value in condition for column ${column}`);
  return v;
}

/** SQL of one relation. */
function relationSql(meta: TableMeta, r: Relation, bound: readonly Bound[], p: Params, condition = false): string {
  const ty = columnType(tableColumns(meta), r.column);
  const c = col(r.column);
  if (r.op === 'IN') {
    if (Array.isArray(r.value)) {
      const items = (r.value as Term[]).map((x) => p.add(ty, relValue(x, ty, bound, r.column)));
      return items.length ? `${c} IN (${items.join(', ')})` : 'false';
    }
    const listType: CqlType = { kind: 'list', element: ty };
    return `${c} = ANY(${p.add(listType, relValue(r.value as Term, listType, bound, r.column))})`;
  }
  if (r.op === 'CONTAINS') {
    if (ty.kind !== 'list' && ty.kind !== 'set') throw unsupported('CONTAINS on a map');
    return `${p.add(ty.element, relValue(r.value as Term, ty.element, bound, r.column))} = ANY(${c})`;
  }
  if (condition) {
    const v = termValue(r.value as Term, ty, bound);
    if (v === 'unset') throw invalid(`Invalid unset value for column ${r.column}`);
    const pv = v === null ? 'NULL' : p.add(ty, v);
    if (r.op === '=') return `${c} IS NOT DISTINCT FROM ${pv}`;
    if (r.op === '!=') return `${c} IS DISTINCT FROM ${pv}`;
    return `${c} ${r.op} ${pv}`;
  }
  if (r.op === '!=') throw invalid(`Unsupported "!=" relation: ${r.column} != ...`);
  return `${c} ${r.op} ${p.add(ty, relValue(r.value as Term, ty, bound, r.column))}`;
}

/** The column types of a table for bind analysis. */
export function tableColumns(meta: TableMeta) {
  const byName = new Map(meta.columns.map((c) => [c.name, c.type]));
  return { keyspace: meta.keyspace, name: meta.name, typeOf: (n: string) => byName.get(n) };
}

const filteringMessage =
  'Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. If you want to execute this query despite the performance unpredictability, use ALLOW FILTERING';

/** Checks CQL's rules on what a SELECT's WHERE may restrict; returns whether the partition key is fully restricted by = or IN. */
function checkRestrictions(meta: TableMeta, where: readonly Relation[], allowFiltering: boolean): boolean {
  const by = new Map<string, Relation[]>();
  for (const r of where) {
    columnType(tableColumns(meta), r.column);
    by.set(r.column, [...(by.get(r.column) ?? []), r]);
  }
  let needsFiltering = false;
  const pkRestricted = meta.partitionKey.map((k) => (by.get(k) ?? []).some((r) => r.op === '=' || r.op === 'IN'));
  const partition = pkRestricted.every(Boolean);
  if (pkRestricted.some(Boolean) && !partition) needsFiltering = true;
  for (const k of meta.partitionKey) if ((by.get(k) ?? []).some((r) => r.op !== '=' && r.op !== 'IN')) needsFiltering = true;
  let prefixOpen = true;
  for (const k of meta.clustering) {
    const rs = by.get(k) ?? [];
    if (rs.length === 0) {
      prefixOpen = false;
      continue;
    }
    if (!prefixOpen || !partition) needsFiltering = true;
    if (rs.some((r) => r.op !== '=' && r.op !== 'IN')) prefixOpen = false;
  }
  for (const c of meta.columns) if (c.kind === 'regular' && by.has(c.name)) needsFiltering = true;
  if (needsFiltering && !allowFiltering) throw invalid(filteringMessage);
  return partition;
}

/** The result columns and their SQL for a selection. */
function selection(meta: TableMeta, stmt: Extract<Statement, { kind: 'select' }>): { sql: string[]; columns: ColumnSpec[] } {
  const spec = (name: string, type: CqlType): ColumnSpec => ({ keyspace: meta.keyspace, table: meta.name, name, type });
  if (stmt.selectors === '*') {
    return { sql: meta.columns.map((c) => selectSql(c.type, col(c.name))), columns: meta.columns.map((c) => spec(c.name, c.type)) };
  }
  const sql: string[] = [];
  const columns: ColumnSpec[] = [];
  for (const s of stmt.selectors) {
    if (s.kind === 'count') {
      sql.push('count(*)::text');
      columns.push(spec(s.alias ?? 'count', t('bigint')));
      continue;
    }
    const ty = columnType(tableColumns(meta), s.name);
    sql.push(selectSql(ty, col(s.name)));
    columns.push(spec(s.alias ?? s.name, ty));
  }
  return { sql, columns };
}

/** The result columns of a SELECT (what PREPARE answers). */
export function selectColumns(meta: TableMeta, stmt: Extract<Statement, { kind: 'select' }>): ColumnSpec[] {
  return selection(meta, stmt).columns;
}

/** Plans a SELECT on a CQL table. */
export function planSelect(meta: TableMeta, stmt: Extract<Statement, { kind: 'select' }>, bound: readonly Bound[]): SelectPlan {
  if (stmt.json) throw unsupported('SELECT JSON');
  if (stmt.perPartitionLimit) throw unsupported('PER PARTITION LIMIT');
  const partition = checkRestrictions(meta, stmt.where, stmt.allowFiltering);
  if (stmt.distinct) {
    const sel = stmt.selectors === '*' ? [] : stmt.selectors;
    if (!sel.length || sel.some((s) => s.kind !== 'column' || !meta.partitionKey.includes(s.name)))
      throw invalid('SELECT DISTINCT queries must only request partition key columns');
  }
  const p = new Params();
  const { sql: cols, columns } = selection(meta, stmt);
  const conds = [live, ...stmt.where.map((r) => relationSql(meta, r, bound, p))];
  let order = [
    ...meta.partitionKey.map((k) => col(k)),
    ...meta.clustering.map((k) => `${col(k)} ${meta.order[k] === 'DESC' ? 'DESC' : 'ASC'}`),
  ];
  if (stmt.orderBy.length) {
    if (!partition) throw invalid('ORDER BY is only supported when the partition key is restricted by an EQ or an IN.');
    const reversed = stmt.orderBy.map((o, i) => {
      if (meta.clustering[i] !== o.column)
        throw invalid(`Order by currently only supports the ordering of columns following their declared order in the PRIMARY KEY`);
      const declaredDesc = meta.order[o.column] === 'DESC';
      return o.desc !== declaredDesc;
    });
    if (reversed.some((r) => r !== reversed[0])) throw invalid('Unsupported order by relation');
    const flip = reversed[0];
    order = [
      ...meta.partitionKey.map((k) => col(k)),
      ...meta.clustering.map((k) => `${col(k)} ${(meta.order[k] === 'DESC') !== flip ? 'DESC' : 'ASC'}`),
    ];
  }
  const aggregate = stmt.selectors !== '*' && stmt.selectors.some((s) => s.kind === 'count');
  if (aggregate && (stmt.selectors as readonly { kind: string }[]).some((s) => s.kind !== 'count'))
    throw unsupported('mixing count(*) with columns');
  let limit: number | undefined;
  if (stmt.limit) {
    const v = termValue(stmt.limit, t('int'), bound);
    if (typeof v !== 'number' || v <= 0) throw invalid('LIMIT must be strictly positive');
    limit = v;
  }
  const sql = `SELECT ${stmt.distinct ? 'DISTINCT ' : ''}${cols.join(', ')} FROM ${qualified(meta.keyspace, meta.name)} WHERE ${conds.join(' AND ')}${
    aggregate ? '' : ` ORDER BY ${(stmt.distinct ? meta.partitionKey.map((k) => col(k)) : order).join(', ')}`
  }`;
  return { sql, params: p, columns, limit };
}

/** The values of the full primary key from `col = term` relations (UPDATE, conditional DELETE). */
function keyValues(meta: TableMeta, where: readonly Relation[], bound: readonly Bound[], what: string): Map<string, CqlValue> {
  const out = new Map<string, CqlValue>();
  for (const r of where) {
    const c = meta.columns.find((x) => x.name === r.column);
    if (!c) throw invalid(`Undefined column name ${r.column} in table ${meta.keyspace}.${meta.name}`);
    if (c.kind === 'regular') throw invalid(`Non PRIMARY KEY columns found in where clause: ${r.column}`);
    if (r.op === 'IN') throw unsupported(`IN in the WHERE of ${what}`);
    if (r.op !== '=') throw invalid(`Invalid operator ${r.op} for PRIMARY KEY part ${r.column} in ${what}`);
    out.set(r.column, relValue(r.value as Term, c.type, bound, r.column));
  }
  const missingPk = meta.partitionKey.filter((k) => !out.has(k));
  if (missingPk.length) throw invalid(`Some partition key parts are missing: ${missingPk.join(', ')}`);
  const missingCk = meta.clustering.filter((k) => !out.has(k));
  if (missingCk.length) throw invalid(`Some clustering keys are missing: ${missingCk.join(', ')}`);
  return out;
}

function refuseTimestamp(s: { using: { timestamp?: Term } }): void {
  if (s.using.timestamp) throw unsupported('USING TIMESTAMP (writes are ordered by the database, not by client timestamps)');
}

/** The current row of a key, for a conditional write that was not applied. */
function currentRow(meta: TableMeta, key: Map<string, CqlValue>): SelectPlan {
  const p = new Params();
  const conds = [...key].map(([k, v]) => `${col(k)} = ${p.add(columnType(tableColumns(meta), k), v)}`);
  return {
    sql: `SELECT ${meta.columns.map((c) => selectSql(c.type, col(c.name))).join(', ')} FROM ${qualified(meta.keyspace, meta.name)} WHERE ${[live, ...conds].join(' AND ')}`,
    params: p,
    columns: meta.columns.map((c) => ({ keyspace: meta.keyspace, table: meta.name, name: c.name, type: c.type })),
    limit: 1,
  };
}

const conflict = (meta: TableMeta) => [...meta.partitionKey, ...meta.clustering].map(col).join(', ');
const expired = (table: string) => `(${table}.${col(expiresColumn)} IS NOT NULL AND ${table}.${col(expiresColumn)} <= now())`;

/** Plans an INSERT: an upsert, or with IF NOT EXISTS an insert that reports whether it happened. */
export function planInsert(meta: TableMeta, stmt: Extract<Statement, { kind: 'insert' }>, bound: readonly Bound[]): WritePlan {
  if (stmt.json) throw unsupported('INSERT JSON');
  if (meta.counter) throw invalid('INSERT statements are not allowed on counter tables, use UPDATE instead');
  refuseTimestamp(stmt);
  const p = new Params();
  const names: string[] = [];
  const exprs: string[] = [];
  const key = new Map<string, CqlValue>();
  stmt.columns.forEach((name, i) => {
    const c = meta.columns.find((x) => x.name === name);
    if (!c) throw invalid(`Undefined column name ${name} in table ${meta.keyspace}.${meta.name}`);
    if (names.includes(name)) throw invalid(`Multiple definitions found for column ${name}`);
    const v = termValue(stmt.values[i], c.type, bound);
    if (c.kind !== 'regular') {
      if (v === null || v === 'unset')
        throw invalid(
          `Invalid ${v === null ? 'null' : 'unset'} value for ${c.kind === 'partition_key' ? 'partition key' : 'clustering key'} part ${name}`,
        );
      key.set(name, v);
    }
    if (v === 'unset') return;
    names.push(name);
    exprs.push(v === null ? `NULL::${pgTypeOf(c.type)}` : p.add(c.type, v));
  });
  const missingPk = meta.partitionKey.filter((k) => !key.has(k));
  if (missingPk.length) throw invalid(`Some partition key parts are missing: ${missingPk.join(', ')}`);
  const missingCk = meta.clustering.filter((k) => !key.has(k));
  if (missingCk.length) throw invalid(`Some clustering keys are missing: ${missingCk.join(', ')}`);
  const ttl = ttlSql(stmt.using.ttl, bound, p);
  names.push(expiresColumn);
  exprs.push(ttl);
  const tbl = qualified(meta.keyspace, meta.name);
  const regular = meta.columns.filter((c) => c.kind === 'regular');
  const written = new Set(names);
  const updates = [
    ...regular.map((c) =>
      written.has(c.name)
        ? `${col(c.name)} = EXCLUDED.${col(c.name)}`
        : `${col(c.name)} = CASE WHEN ${expired('t')} THEN NULL ELSE t.${col(c.name)} END`,
    ),
    `${col(expiresColumn)} = EXCLUDED.${col(expiresColumn)}`,
  ];
  const head = `INSERT INTO ${tbl} AS t (${names.map(col).join(', ')}) VALUES (${exprs.join(', ')}) ON CONFLICT (${conflict(meta)})`;
  if (stmt.ifNotExists) {
    const all = [
      ...regular.map((c) => `${col(c.name)} = ${written.has(c.name) ? `EXCLUDED.${col(c.name)}` : 'NULL'}`),
      `${col(expiresColumn)} = EXCLUDED.${col(expiresColumn)}`,
    ];
    return {
      sql: `${head} DO UPDATE SET ${all.join(', ')} WHERE ${expired('t')} RETURNING 1`,
      params: p,
      conditional: true,
      current: currentRow(meta, key),
    };
  }
  return { sql: `${head} DO UPDATE SET ${updates.join(', ')}`, params: p, conditional: false };
}

/** The expiry of USING TTL: NULL without one (or TTL 0). */
function ttlSql(term: Term | undefined, bound: readonly Bound[], p: Params): string {
  if (!term) return 'NULL::timestamptz';
  const v = termValue(term, t('int'), bound);
  if (v === null || v === 'unset') return 'NULL::timestamptz';
  if (typeof v !== 'number' || v < 0) throw invalid(`A TTL must be greater or equal to 0, but was ${String(v)}`);
  if (v > 630_720_000) throw invalid(`ttl is too large. requested (${v}) maximum (630720000)`);
  if (v === 0) return 'NULL::timestamptz';
  return `(now() + ${p.raw(String(v))}::int8 * interval '1 second')`;
}

/** The new value of a column by an assignment (`current`: its SQL, or NULL for a new row). */
function assignSql(a: Assignment, type: CqlType, v: CqlValue, p: Params, current: string, isCounter: boolean): string {
  if (isCounter) {
    if (a.op !== 'add' && a.op !== 'subtract')
      throw invalid(`Cannot set the value of counter column ${a.column} (only increment/decrement, e.g. ${a.column} = ${a.column} + 1)`);
    if (v === null) throw invalid(`Invalid null value for counter increment`);
    const d = p.add(t('bigint'), v);
    return `coalesce(${current}, 0) ${a.op === 'add' ? '+' : '-'} ${d}`;
  }
  if (a.op === 'set') return v === null ? 'NULL' : p.add(type, v);
  if (type.kind === 'list' || type.kind === 'set') {
    if (v === null) return current;
    const val = p.add(type, v);
    const cur = `coalesce(${current}, '{}')`;
    if (a.op === 'prepend') return `${val} || ${cur}`;
    if (a.op === 'add')
      return type.kind === 'set' ? `ARRAY(SELECT DISTINCT x FROM unnest(${cur} || ${val}) AS x ORDER BY 1)` : `${cur} || ${val}`;
    return `ARRAY(SELECT x FROM unnest(${cur}) WITH ORDINALITY AS u(x, o) WHERE x <> ALL(${val}) ORDER BY o)`;
  }
  if (type.kind === 'map') {
    if (v === null) return current;
    if (a.op === 'add') return `coalesce(${current}, '{}'::jsonb) || ${p.add(type, v)}`;
    if (a.op === 'subtract') return `coalesce(${current}, '{}'::jsonb) - ${p.add({ kind: 'list', element: t('text') }, v)}`;
  }
  throw invalid(`Invalid operation for column ${a.column} of type ${type.kind}`);
}

/** Plans an UPDATE: an upsert of the row, or with IF an update that reports whether it happened. */
export function planUpdate(meta: TableMeta, stmt: Extract<Statement, { kind: 'update' }>, bound: readonly Bound[]): WritePlan {
  refuseTimestamp(stmt);
  if (stmt.using.ttl)
    throw unsupported('UPDATE ... USING TTL (a TTL on some cells of a row; HeliosDB keeps TTL per row: use INSERT ... USING TTL)');
  const key = keyValues(meta, stmt.where, bound, 'UPDATE');
  const p = new Params();
  const sets: { name: string; a: Assignment; type: CqlType; v: CqlValue }[] = [];
  for (const a of stmt.set) {
    const c = meta.columns.find((x) => x.name === a.column);
    if (!c) throw invalid(`Undefined column name ${a.column} in table ${meta.keyspace}.${meta.name}`);
    if (c.kind !== 'regular') throw invalid(`PRIMARY KEY part ${a.column} found in SET part`);
    if ((a.op === 'add' || a.op === 'subtract') && !isCollection(c.type) && c.type.kind !== 'counter')
      throw invalid(`Invalid operation (${a.column} = ${a.column} ${a.op === 'add' ? '+' : '-'} ?) for non counter column ${a.column}`);
    const vt = a.op === 'subtract' && c.type.kind === 'map' ? ({ kind: 'set', element: c.type.key } as CqlType) : c.type;
    const v = termValue(a.value, vt, bound);
    if (v === 'unset') continue;
    sets.push({ name: a.column, a, type: c.type, v });
  }
  if (meta.counter && sets.some((s) => s.type.kind !== 'counter')) throw invalid('Cannot mix counter and non counter columns');
  const tbl = qualified(meta.keyspace, meta.name);
  if (stmt.ifExists || stmt.conditions.length) {
    if (meta.counter) throw invalid('Conditional updates are not supported on counter tables');
    const assigns = sets.map((s) => `${col(s.name)} = ${assignSql(s.a, s.type, s.v, p, col(s.name), false)}`);
    if (!assigns.length) throw invalid('no columns to update');
    const conds = [live, ...[...key].map(([k, v]) => `${col(k)} = ${p.add(columnType(tableColumns(meta), k), v)}`)];
    for (const r of stmt.conditions) conds.push(relationSql(meta, r, bound, p, true));
    return {
      sql: `UPDATE ${tbl} SET ${assigns.join(', ')} WHERE ${conds.join(' AND ')} RETURNING 1`,
      params: p,
      conditional: true,
      current: currentRow(meta, key),
    };
  }
  const names = [...key.keys()];
  const exprs = [...key].map(([k, v]) => p.add(columnType(tableColumns(meta), k), v));
  const updates: string[] = [];
  for (const s of sets) {
    const isCounter = s.type.kind === 'counter';
    names.push(s.name);
    exprs.push(assignSql(s.a, s.type, s.v, p, `NULL::${isCounter ? 'int8' : pgTypeOf(s.type)}`, isCounter));
    updates.push(
      `${col(s.name)} = ${assignSql(s.a, s.type, s.v, p, `(CASE WHEN ${expired('t')} THEN NULL ELSE t.${col(s.name)} END)`, isCounter)}`,
    );
  }
  const touched = new Set(sets.map((s) => s.name));
  for (const c of meta.columns)
    if (c.kind === 'regular' && !touched.has(c.name))
      updates.push(`${col(c.name)} = CASE WHEN ${expired('t')} THEN NULL ELSE t.${col(c.name)} END`);
  updates.push(`${col(expiresColumn)} = CASE WHEN ${expired('t')} THEN NULL ELSE t.${col(expiresColumn)} END`);
  return {
    sql: `INSERT INTO ${tbl} AS t (${names.map(col).join(', ')}) VALUES (${exprs.join(', ')}) ON CONFLICT (${conflict(meta)}) DO UPDATE SET ${updates.join(', ')}`,
    params: p,
    conditional: false,
  };
}

/** Plans a DELETE of rows (a partition, a clustering range, a row) or of some columns of a row. */
export function planDelete(meta: TableMeta, stmt: Extract<Statement, { kind: 'delete' }>, bound: readonly Bound[]): WritePlan {
  refuseTimestamp(stmt);
  const tbl = qualified(meta.keyspace, meta.name);
  const p = new Params();
  const conditional = stmt.ifExists || stmt.conditions.length > 0;
  if (stmt.columns.length || conditional) {
    const key = keyValues(meta, stmt.where, bound, 'DELETE');
    const conds = [live, ...[...key].map(([k, v]) => `${col(k)} = ${p.add(columnType(tableColumns(meta), k), v)}`)];
    for (const r of stmt.conditions) conds.push(relationSql(meta, r, bound, p, true));
    for (const c of stmt.columns) {
      const m = meta.columns.find((x) => x.name === c);
      if (!m) throw invalid(`Undefined column name ${c} in table ${meta.keyspace}.${meta.name}`);
      if (m.kind !== 'regular') throw invalid(`Invalid identifier ${c} for deletion (should not be a PRIMARY KEY part)`);
    }
    const sql = stmt.columns.length
      ? `UPDATE ${tbl} SET ${stmt.columns.map((c) => `${col(c)} = NULL`).join(', ')} WHERE ${conds.join(' AND ')}${conditional ? ' RETURNING 1' : ''}`
      : `DELETE FROM ${tbl} WHERE ${conds.join(' AND ')} RETURNING 1`;
    return { sql, params: p, conditional, current: conditional ? currentRow(meta, key) : undefined };
  }
  const by = new Map(stmt.where.map((r) => [r.column, r]));
  for (const r of stmt.where) {
    const c = meta.columns.find((x) => x.name === r.column);
    if (!c) throw invalid(`Undefined column name ${r.column} in table ${meta.keyspace}.${meta.name}`);
    if (c.kind === 'regular') throw invalid(`Non PRIMARY KEY columns found in where clause: ${r.column}`);
  }
  const missingPk = meta.partitionKey.filter((k) => by.get(k)?.op !== '=' && by.get(k)?.op !== 'IN');
  if (missingPk.length) throw invalid(`Some partition key parts are missing: ${missingPk.join(', ')}`);
  let open = true;
  for (const k of meta.clustering) {
    const r = by.get(k);
    if (!r) {
      open = false;
      continue;
    }
    if (!open) throw invalid(`PRIMARY KEY column "${k}" cannot be restricted as preceding column is not restricted`);
    if (r.op !== '=') open = false;
  }
  const conds = stmt.where.map((r) => relationSql(meta, r, bound, p));
  return { sql: `DELETE FROM ${tbl} WHERE ${conds.join(' AND ')}`, params: p, conditional: false };
}
