/**
 * Whether a single-row `INSERT ... VALUES ($1, ..., $k)` can run many parameter sets as one
 * statement, `INSERT ... SELECT * FROM unnest($1::t1[], ..., $k::tk[])` (written as `ROWS FROM` of
 * `pg_catalog.unnest`, which the search path cannot change), decided on PostgreSQL's
 * own parse tree: one INSERT, one VALUES row whose every item is a bare parameter (each of
 * `$1..$k` once), no WITH, ON CONFLICT or RETURNING (whose meaning changes when the rows of a
 * chunk meet in one statement). The statement's text is kept around the VALUES row, so table,
 * columns and OVERRIDING stay exactly as written.
 * @packageDocumentation
 */
import { Buffer } from 'node:buffer';
import { parseSync } from 'libpg-query';
import type { PgFields } from './command-name.js';
import { maxAnalyzedLength } from './analysis.js';

/** A statement that can take its parameter sets as arrays (see the file comment). */
export interface UnnestInsertPlan {
  /** The text before `VALUES`. */
  readonly head: string;
  /** The text after the VALUES row's closing parenthesis. */
  readonly tail: string;
  /** The parameter numbers in the VALUES row's order (column order). */
  readonly order: readonly number[];
}

const isObj = (v: unknown): v is PgFields => !!v && typeof v === 'object' && !Array.isArray(v);
const plans = new Map<string, UnnestInsertPlan | null>();
const planCacheEntries = 500;

/** The longest text whose plan is remembered (500 of them hold at most 8 MiB of keys). */
const planCacheTextLength = 16 * 1024;

/**
 * The plan for `sql`, or undefined when it is not such an INSERT (or does not parse). Needs the
 * parser loaded (`loadSqlParser`); remembers the last 500 texts of up to 16 KiB (an attack pass
 * filled the server's heap with 500 distinct 15 MB texts when every text was remembered).
 */
export function planUnnestInsert(sql: string): UnnestInsertPlan | undefined {
  if (sql.length > maxAnalyzedLength) return undefined;
  const hit = plans.get(sql);
  if (hit !== undefined) return hit ?? undefined;
  let plan: UnnestInsertPlan | null = null;
  try {
    plan = planUncached(sql) ?? null;
  } catch {
    plan = null;
  }
  if (sql.length <= planCacheTextLength) {
    if (plans.size >= planCacheEntries) plans.delete(plans.keys().next().value!);
    plans.set(sql, plan);
  }
  return plan ?? undefined;
}

/** How many plans are remembered (for tests). */
export function planCacheSize(): number {
  return plans.size;
}

function planUncached(sql: string): UnnestInsertPlan | undefined {
  const tree = parseSync(sql) as { stmts?: { stmt?: PgFields }[] };
  if (tree.stmts?.length !== 1) return undefined;
  const insert = tree.stmts[0].stmt?.InsertStmt;
  if (!isObj(insert) || insert.withClause || insert.onConflictClause || insert.returningList) return undefined;
  const select = isObj(insert.selectStmt) ? insert.selectStmt.SelectStmt : undefined;
  if (!isObj(select)) return undefined;
  for (const key of Object.keys(select)) {
    if (key !== 'valuesLists' && key !== 'limitOption' && key !== 'op') return undefined;
  }
  if (select.op !== 'SETOP_NONE' || !Array.isArray(select.valuesLists) || select.valuesLists.length !== 1) return undefined;
  const row = select.valuesLists[0];
  const items = isObj(row) && isObj(row.List) && Array.isArray(row.List.items) ? row.List.items : undefined;
  if (!items || items.length === 0) return undefined;
  const order: number[] = [];
  const locations: number[] = [];
  for (const item of items) {
    const ref = isObj(item) ? item.ParamRef : undefined;
    if (!isObj(ref) || typeof ref.number !== 'number' || typeof ref.location !== 'number') return undefined;
    order.push(ref.number);
    locations.push(ref.location);
  }
  const sorted = [...order].sort((a, b) => a - b);
  if (sorted.some((n, i) => n !== i + 1)) return undefined;
  // Locations are byte offsets into the UTF-8 text.
  const bytes = Buffer.from(sql, 'utf8');
  const text = (from: number, to: number) => bytes.subarray(from, to).toString('utf8');
  // Back from the first parameter: "(", then the keyword VALUES, with only white space between.
  let at = locations[0] - 1;
  while (at >= 0 && isSpace(bytes[at])) at--;
  if (bytes[at] !== 0x28) return undefined;
  at--;
  while (at >= 0 && isSpace(bytes[at])) at--;
  const keywordStart = at - 5;
  if (keywordStart < 0 || text(keywordStart, at + 1).toUpperCase() !== 'VALUES') return undefined;
  if (keywordStart > 0 && !isSpace(bytes[keywordStart - 1]) && bytes[keywordStart - 1] !== 0x29) return undefined;
  // Forward from the last parameter: its digits, then ")"; only white space or ";" after it.
  const last = locations[locations.length - 1];
  let end = last + 1;
  while (end < bytes.length && bytes[end] >= 0x30 && bytes[end] <= 0x39) end++;
  while (end < bytes.length && isSpace(bytes[end])) end++;
  if (bytes[end] !== 0x29) return undefined;
  const tail = text(end + 1, bytes.length);
  if (!/^[\s;]*$/.test(tail)) return undefined;
  return { head: text(0, keywordStart), tail: '', order };
}

function isSpace(b: number | undefined): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x0c;
}

/**
 * The statement of `plan` with one array parameter per column; `arrayTypes[n - 1]` is the SQL
 * array type of parameter `$n` (for example `pg_catalog."int4"[]`).
 */
export function unnestInsertText(plan: UnnestInsertPlan, arrayTypes: readonly string[]): string {
  const args = plan.order.map((n) => `pg_catalog.unnest($${n}::${arrayTypes[n - 1]})`).join(', ');
  return `${plan.head}SELECT * FROM ROWS FROM (${args})${plan.tail}`;
}

/** PostgreSQL's array literal of text-form values (`null` for NULL): every element quoted. */
export function arrayLiteral(values: readonly (string | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ',';
    const v = values[i];
    if (v === null) out += 'NULL';
    else if (v.indexOf('"') === -1 && v.indexOf('\\') === -1) out += `"${v}"`;
    else out += `"${v.replace(/[\\"]/g, '\\$&')}"`;
  }
  return `${out}}`;
}
