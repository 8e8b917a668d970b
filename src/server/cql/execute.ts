/**
 * Runs one parsed CQL statement on a held database connection: the system tables from the
 * catalog, schema statements, reads with paging, writes, conditional writes answering
 * `[applied]`, and batches as one transaction.
 * @packageDocumentation
 */
import type { BackendConnection } from '../backend.js';
import { txStatusOf } from '../backend/connection.js';
import type { Relation, Statement, Term } from './ast.js';
import { type Bound, type ColumnSpec, termValue } from './bind.js';
import { keyspaceMissing, readKeyspace, readTable, type TableMeta } from './catalog.js';
import { runDdl, type SchemaChange } from './ddl.js';
import { CqlError, ErrorCode, invalid, unsupported } from './errors.js';
import { planDelete, planInsert, planSelect, planUpdate, type SelectPlan, type WritePlan } from './planner.js';
import { type SystemTable, systemTables, isSystemKeyspace } from './system-tables.js';
import { t } from './types.js';
import { type CqlValue, fromText } from './values.js';

/** A statement's result. */
export type CqlResult =
  | { readonly kind: 'void' }
  | { readonly kind: 'rows'; readonly columns: readonly ColumnSpec[]; readonly rows: CqlValue[][]; readonly pagingState?: Buffer }
  | { readonly kind: 'setKeyspace'; readonly keyspace: string }
  | { readonly kind: 'schemaChange'; readonly change: SchemaChange };

/** How a statement runs. */
export interface ExecOptions {
  /** The connection's keyspace (USE). */
  readonly keyspace: string | undefined;
  /** Rows per page; 0 or less: all rows. */
  readonly pageSize: number;
  readonly pagingState: Buffer | null;
  /** The principal may only read: statements run in a READ ONLY transaction. */
  readonly readOnly: boolean;
  /** What system.local says. */
  readonly system: { readonly localAddress: string; readonly dataCenter: string; readonly releaseVersion: string };
}

/** What a statement reads or writes: a CQL table, a system table, or nothing (USE, keyspaces). */
export type Target = { kind: 'table'; meta: TableMeta } | { kind: 'system'; name: string; table: SystemTable } | { kind: 'none' };

/** Finds the table a statement names. */
export async function resolveTarget(conn: BackendConnection, s: Statement, keyspace: string | undefined): Promise<Target> {
  if (s.kind !== 'select' && s.kind !== 'insert' && s.kind !== 'update' && s.kind !== 'delete') return { kind: 'none' };
  const ks = s.table.keyspace ?? keyspace;
  if (!ks) throw invalid('No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename');
  if (isSystemKeyspace(ks)) {
    const table = systemTables[`${ks}.${s.table.name}`];
    if (!table) throw invalid(`unconfigured table ${s.table.name}`);
    if (s.kind !== 'select') throw new CqlError(ErrorCode.unauthorized, `${ks} keyspace is not user-modifiable.`);
    return { kind: 'system', name: `${ks}.${s.table.name}`, table };
  }
  const meta = await readTable(conn, ks, s.table.name);
  if (meta) return { kind: 'table', meta };
  if (!(await readKeyspace(conn, ks))) throw invalid(keyspaceMissing(ks));
  throw invalid(`unconfigured table ${s.table.name}`);
}

/** Runs `fn` in a transaction block of its own, unless one is open (a batch). */
async function inTransaction<T>(conn: BackendConnection, readOnly: boolean, fn: () => Promise<T>): Promise<T> {
  if (txStatusOf(conn) !== 'I') return fn();
  await conn.query(readOnly ? 'BEGIN READ ONLY' : 'BEGIN');
  try {
    const out = await fn();
    await conn.query('COMMIT');
    return out;
  } catch (e) {
    await conn.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

async function textRows(conn: BackendConnection, sql: string, values: unknown[]): Promise<(string | null)[][]> {
  return (await conn.query({ text: sql, values, rowMode: 'array' })).rows as (string | null)[][];
}

function offsetOf(state: Buffer | null): number {
  if (!state) return 0;
  if (state.length !== 8) throw new CqlError(ErrorCode.protocol, 'Invalid value for the paging state');
  const n = Number(state.readBigInt64BE(0));
  if (n < 0) throw new CqlError(ErrorCode.protocol, 'Invalid value for the paging state');
  return n;
}

function stateAt(offset: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(offset));
  return b;
}

/** Runs a SELECT plan, one page at a time when asked. */
async function runSelect(conn: BackendConnection, plan: SelectPlan, opts: ExecOptions): Promise<CqlResult> {
  const offset = offsetOf(opts.pagingState);
  const remaining = plan.limit === undefined ? undefined : Math.max(0, plan.limit - offset);
  const page = opts.pageSize > 0 ? opts.pageSize : undefined;
  const want = page === undefined ? remaining : remaining === undefined ? page + 1 : Math.min(page + 1, remaining);
  let sql = plan.sql;
  const values: unknown[] = [...plan.params.values];
  if (want !== undefined) {
    values.push(String(want));
    sql += ` LIMIT $${values.length}`;
  }
  if (offset > 0) {
    values.push(String(offset));
    sql += ` OFFSET $${values.length}`;
  }
  const raw = await textRows(conn, sql, values);
  let more = false;
  if (page !== undefined && raw.length > page) {
    raw.length = page;
    more = true;
  }
  const rows = raw.map((r) => r.map((v, i) => fromText(plan.columns[i].type, v)));
  return { kind: 'rows', columns: plan.columns, rows, pagingState: more ? stateAt(offset + page!) : undefined };
}

/** A system table's rows under `=` and IN restrictions (the drivers' metadata queries). */
async function runSystemSelect(
  conn: BackendConnection,
  name: string,
  table: SystemTable,
  s: Extract<Statement, { kind: 'select' }>,
  bound: readonly Bound[],
  opts: ExecOptions,
): Promise<CqlResult> {
  const [keyspace, tableName] = name.split('.');
  const typeOf = (c: string) => {
    const col = table.columns.find((x) => x.name === c);
    if (!col) throw invalid(`Undefined column name ${c} in table ${name}`);
    return col.type;
  };
  const keep = (row: Record<string, CqlValue>, r: Relation) => {
    const ty = typeOf(r.column);
    const actual = row[r.column];
    if (r.op === 'IN') {
      const list = Array.isArray(r.value)
        ? (r.value as Term[]).map((x) => termValue(x, ty, bound))
        : (termValue(r.value as Term, { kind: 'list', element: ty }, bound) as CqlValue[]);
      return (list ?? []).some((v) => v === actual);
    }
    if (r.op === '=') return termValue(r.value as Term, ty, bound) === actual;
    return true;
  };
  const all = (await table.rows({ conn, ...opts.system })).filter((row) => s.where.every((r) => keep(row, r)));
  const spec = (n: string, ty = typeOf(n)): ColumnSpec => ({ keyspace, table: tableName, name: n, type: ty });
  if (s.selectors !== '*' && s.selectors.some((x) => x.kind === 'count')) {
    return { kind: 'rows', columns: [spec('count', t('bigint'))], rows: [[BigInt(all.length)]] };
  }
  const cols =
    s.selectors === '*'
      ? table.columns.map((c) => spec(c.name, c.type))
      : s.selectors.map((x) => spec(x.kind === 'column' ? x.name : 'count'));
  const names = s.selectors === '*' ? table.columns.map((c) => c.name) : s.selectors.map((x) => (x.kind === 'column' ? x.name : 'count'));
  const rows = all.map((row) => names.map((n) => row[n] ?? null));
  const offset = offsetOf(opts.pagingState);
  if (opts.pageSize > 0 && rows.length - offset > opts.pageSize) {
    return { kind: 'rows', columns: cols, rows: rows.slice(offset, offset + opts.pageSize), pagingState: stateAt(offset + opts.pageSize) };
  }
  return { kind: 'rows', columns: cols, rows: rows.slice(offset) };
}

/** Runs a write plan; a conditional one answers `[applied]` (and the current row when not applied). */
async function runWrite(conn: BackendConnection, plan: WritePlan, meta: TableMeta, opts: ExecOptions): Promise<CqlResult> {
  if (!plan.conditional) {
    if (opts.readOnly) return inTransaction(conn, true, () => runWrite(conn, plan, meta, { ...opts, readOnly: false }));
    await conn.query({ text: plan.sql, values: plan.params.values });
    return { kind: 'void' };
  }
  return inTransaction(conn, opts.readOnly, async () => {
    const r = await conn.query({ text: plan.sql, values: plan.params.values });
    const appliedSpec: ColumnSpec = { keyspace: meta.keyspace, table: meta.name, name: '[applied]', type: t('boolean') };
    if ((r.rowCount ?? 0) > 0) return { kind: 'rows', columns: [appliedSpec], rows: [[true]] };
    const cur = plan.current!;
    const found = await textRows(conn, cur.sql, cur.params.values);
    if (!found.length) return { kind: 'rows', columns: [appliedSpec], rows: [[false]] };
    return {
      kind: 'rows',
      columns: [appliedSpec, ...cur.columns],
      rows: [[false, ...found[0].map((v, i) => fromText(cur.columns[i].type, v))]],
    };
  });
}

/** The plan of one write statement. */
function planWrite(meta: TableMeta, s: Statement, bound: readonly Bound[]): WritePlan {
  if (s.kind === 'insert') return planInsert(meta, s, bound);
  if (s.kind === 'update') return planUpdate(meta, s, bound);
  if (s.kind === 'delete') return planDelete(meta, s, bound);
  throw invalid(`${s.kind} is not a write`);
}

/** One statement of a batch, with its values. */
export interface BatchItem {
  readonly statement: Statement;
  readonly bound: readonly Bound[];
  readonly meta?: TableMeta;
}

/** Runs a batch: all its statements in one transaction (any type: LOGGED, UNLOGGED and COUNTER alike). */
export async function runBatch(
  conn: BackendConnection,
  type: 'logged' | 'unlogged' | 'counter',
  items: readonly BatchItem[],
  opts: ExecOptions,
): Promise<CqlResult> {
  const plans: { plan: WritePlan; meta: TableMeta }[] = [];
  for (const it of items) {
    const s = it.statement;
    if (s.kind !== 'insert' && s.kind !== 'update' && s.kind !== 'delete')
      throw invalid('Only INSERT, UPDATE and DELETE statements are allowed in a BATCH');
    if ((s.kind === 'update' || s.kind === 'delete') && (s.ifExists || s.conditions.length))
      throw unsupported('conditional statements in a BATCH');
    if (s.kind === 'insert' && s.ifNotExists) throw unsupported('conditional statements in a BATCH');
    const target = it.meta ? ({ kind: 'table', meta: it.meta } as Target) : await resolveTarget(conn, s, opts.keyspace);
    if (target.kind !== 'table') throw invalid('BATCH statements must write CQL tables');
    const isCounter = target.meta.counter;
    if (type === 'counter' && !isCounter) throw invalid('Cannot include non-counter statement in a counter batch');
    if (type !== 'counter' && isCounter) throw invalid('Cannot include a counter statement in a logged batch');
    plans.push({ plan: planWrite(target.meta, s, it.bound), meta: target.meta });
  }
  await inTransaction(conn, opts.readOnly, async () => {
    for (const { plan } of plans) await conn.query({ text: plan.sql, values: plan.params.values });
  });
  return { kind: 'void' };
}

/** Runs one statement (`target` from {@link resolveTarget}, known when it was prepared). */
export async function runStatement(
  conn: BackendConnection,
  s: Statement,
  bound: readonly Bound[],
  opts: ExecOptions,
  known?: Target,
): Promise<CqlResult> {
  switch (s.kind) {
    case 'unsupported':
      throw unsupported(s.what);
    case 'use':
      if (!isSystemKeyspace(s.keyspace) && !(await readKeyspace(conn, s.keyspace))) throw invalid(keyspaceMissing(s.keyspace));
      return { kind: 'setKeyspace', keyspace: s.keyspace };
    case 'createKeyspace':
    case 'dropKeyspace':
    case 'createTable':
    case 'dropTable':
    case 'truncate': {
      const change = await inTransaction(conn, opts.readOnly, () => runDdl(conn, s, opts.keyspace));
      return change ? { kind: 'schemaChange', change } : { kind: 'void' };
    }
    case 'batch': {
      if (s.using.timestamp) throw unsupported('USING TIMESTAMP');
      return runBatch(
        conn,
        s.type,
        s.statements.map((statement) => ({ statement, bound })),
        opts,
      );
    }
    default: {
      const target = known ?? (await resolveTarget(conn, s, opts.keyspace));
      if (target.kind === 'system') {
        if (s.kind !== 'select') throw new CqlError(ErrorCode.unauthorized, 'system keyspaces are not user-modifiable.');
        return runSystemSelect(conn, target.name, target.table, s, bound, opts);
      }
      if (target.kind !== 'table') throw invalid('no table');
      if (s.kind === 'select') {
        const plan = planSelect(target.meta, s, bound);
        return opts.readOnly ? inTransaction(conn, true, () => runSelect(conn, plan, opts)) : runSelect(conn, plan, opts);
      }
      return runWrite(conn, planWrite(target.meta, s, bound), target.meta, opts);
    }
  }
}
