/**
 * Which tables a statement may read or write, for the query cache, decided on the client from the
 * SQL text alone (the server's parser, libpg-query, is WebAssembly a browser bundle should not
 * carry). A conservative rule, never a narrow one:
 * - a read may read every name in its text (PostgreSQL's reserved key words aside, which no
 *   unquoted table can be called);
 * - a data change (INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY ... FROM, also inside WITH)
 *   writes the tables it names as its targets (`INSERT INTO t`, `UPDATE t`, `DELETE FROM t`,
 *   `MERGE INTO t`, `TRUNCATE t, u`, `COPY t`); when no target can be read off the text, or the
 *   statement is anything else that is no read (DDL, CALL, DO, SET, GRANT, ...), it may change
 *   every table.
 * Names are compared without their schema, unquoted ones in lower case. What no text shows (a
 * view's or function's tables, triggers, foreign-key cascades, rules) is out of its sight: see
 * docs/query-cache.md. Browser-safe.
 * @packageDocumentation
 */
import { isReadOnlySql, type SqlToken, tokenizeSql } from '../sql-classify.js';

/** What a statement touches: a set of relation names, or every table. */
export type TableSet = ReadonlySet<string> | 'all';

/** PostgreSQL's reserved key words (and those reserved but for function or type names). */
const reserved = new Set(
  (
    'all analyse analyze and any array as asc asymmetric authorization binary both case cast check collate collation column ' +
    'concurrently constraint create cross current_catalog current_date current_role current_schema current_time ' +
    'current_timestamp current_user default deferrable desc distinct do else end except false fetch for foreign freeze ' +
    'from full grant group having ilike in initially inner intersect into is isnull join lateral leading left like limit ' +
    'localtime localtimestamp natural not notnull null offset on only or order outer overlaps placing primary references ' +
    'returning right select session_user similar some symmetric system_user table tablesample then to trailing true union ' +
    'unique user using variadic verbose when where window with'
  ).split(' '),
);

const nameOf = (t: SqlToken): string => (t.kind === 'quoted' ? t.value : t.value.toLowerCase());
const isName = (t: SqlToken | undefined): t is SqlToken => t !== undefined && (t.kind === 'word' || t.kind === 'quoted');

/** Every name in `sql` that may be a table: unquoted ones in lower case, quoted ones as written; reserved words left out. */
export function namesIn(sql: string): Set<string> {
  const names = new Set<string>();
  for (const t of tokenizeSql(sql).tokens) {
    if (t.kind === 'quoted') names.add(t.value);
    else if (t.kind === 'word' && !reserved.has(t.value.toLowerCase())) names.add(t.value.toLowerCase());
  }
  return names;
}

/**
 * The relation named from `tokens[i]` on (`a`, `s.a`, `"A"`): its last part and the index after
 * it; undefined when there is no name there.
 */
function relationAt(tokens: readonly SqlToken[], i: number): { name: string; next: number } | undefined {
  let j = i;
  if (isName(tokens[j]) && tokens[j].kind === 'word' && tokens[j].value.toLowerCase() === 'only') j++;
  if (!isName(tokens[j])) return undefined;
  let name = nameOf(tokens[j]);
  j++;
  while (tokens[j]?.kind === 'other' && tokens[j].value === '.' && isName(tokens[j + 1])) {
    name = nameOf(tokens[j + 1]);
    j += 2;
  }
  return { name, next: j };
}

/** Table names as an application writes them (`orders`, `s.Orders`, `"Orders"`) in the form the cache compares. */
export function relationNames(tables: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const t of tables) {
    const last = t.split('.').pop() ?? t;
    out.add(/^".*"$/.test(last) ? last.slice(1, -1) : last.toLowerCase());
  }
  return out;
}

const dataChange = new Set(['insert', 'update', 'delete', 'merge', 'truncate', 'copy', 'with']);

/**
 * The target tables of a data change, or undefined when a target cannot be read off (the caller
 * then takes every table).
 */
function targetsOf(tokens: readonly SqlToken[]): Set<string> | undefined {
  const out = new Set<string>();
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.kind !== 'word') continue;
    const w = t.value.toLowerCase();
    const prev = tokens[i - 1]?.kind === 'word' ? tokens[i - 1].value.toLowerCase() : '';
    let at = -1;
    if (w === 'into' && (prev === 'insert' || prev === 'merge')) at = i + 1;
    else if (w === 'from' && prev === 'delete') at = i + 1;
    else if (w === 'update' && !['do', 'for', 'key', 'no', 'then'].includes(prev)) at = i + 1;
    else if (w === 'truncate') at = tokens[i + 1]?.kind === 'word' && tokens[i + 1].value.toLowerCase() === 'table' ? i + 2 : i + 1;
    else if (w === 'copy' && prev === '') at = i + 1;
    if (at < 0) continue;
    const r = relationAt(tokens, at);
    if (!r) {
      // `COPY (SELECT ...) TO`: a read; `UPDATE` as a column name: nothing to take.
      if (w === 'copy' || w === 'update') continue;
      return undefined;
    }
    out.add(r.name);
    if (w === 'truncate') {
      let j = r.next;
      while (tokens[j]?.kind === 'other' && tokens[j].value === ',') {
        const more = relationAt(tokens, j + 1);
        if (!more) return undefined;
        out.add(more.name);
        j = more.next;
      }
    }
  }
  return out.size > 0 ? out : undefined;
}

const remembered = new Map<string, TableSet | undefined>();
const rememberedLong = new Map<string, TableSet | undefined>();

/**
 * The tables `sql` may change: undefined for a read, a data change's targets, `all` otherwise.
 * Answers for the last 1000 texts up to 4 KiB are remembered.
 */
export function tablesWritten(sql: string): TableSet | undefined {
  if (sql.length > 1024 * 1024) return decide(sql);
  // The last thousand texts of up to 4 KiB, and the last eight longer ones (a multi-row INSERT
  // sent again and again).
  const memory = sql.length <= 4096 ? remembered : rememberedLong;
  if (memory.has(sql)) return memory.get(sql);
  const answer = decide(sql);
  if (memory.size >= (memory === remembered ? 1000 : 8)) memory.delete(memory.keys().next().value as string);
  memory.set(sql, answer);
  return answer;
}

function decide(sql: string): TableSet | undefined {
  if (isReadOnlySql(sql)) return undefined;
  const { tokens, unterminated } = tokenizeSql(sql);
  if (unterminated || tokens.length === 0) return 'all';
  // Every statement of a script must be a data change for the rule to hold.
  let atStart = true;
  for (const t of tokens) {
    if (t.kind === 'semicolon') {
      atStart = true;
      continue;
    }
    if (atStart) {
      if (t.kind !== 'word' || !dataChange.has(t.value.toLowerCase())) return 'all';
      atStart = false;
    }
  }
  return targetsOf(tokens) ?? 'all';
}
