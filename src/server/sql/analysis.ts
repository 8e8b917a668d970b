/**
 * Loading the parser, and the analysis of a SQL text with its cache (the public entry is
 * analyze.ts).
 * @packageDocumentation
 */
import { Buffer } from 'node:buffer';
import { loadModule, parseSync } from 'libpg-query';
import type { PgFields } from './command-name.js';
import { describeStatement } from './statement-facets.js';
import type { SqlAnalysis, StatementInfo } from './types.js';

let loading: Promise<void> | undefined;
let loaded = false;

/** Loads the parser's WASM module. Idempotent: every call returns the same promise (a failed load is tried again). */
export function loadSqlParser(): Promise<void> {
  loading ??= loadModule().then(
    () => {
      loaded = true;
    },
    (e: unknown) => {
      loading = undefined;
      throw e;
    },
  );
  return loading;
}

/** Whether {@link loadSqlParser} has finished. */
export function sqlParserLoaded(): boolean {
  return loaded;
}

/** Texts remembered by {@link analyzeSql}, and the longest one remembered (characters). */
export const analysisCacheLimits = { entries: 2000, maxTextLength: 16 * 1024 } as const;

/**
 * The longest text analysed, characters. Parsing runs on the event loop (tens of microseconds
 * for a statement, ~0.7 s for 1 MiB), so longer texts are not parsed: they count as unparsed (a
 * write of unknown kind; a read-only principal's is refused).
 */
export const maxAnalyzedLength = 64 * 1024;

const cache = new Map<string, SqlAnalysis>();

/** Statistics of the analysis cache (for tests and metrics). */
export function analysisCacheStats(): { size: number } {
  return { size: cache.size };
}

/**
 * The analysis of `sql` (see {@link SqlAnalysis}). Synchronous; needs {@link loadSqlParser}
 * first. The answer is frozen and shared: the last {@link analysisCacheLimits} texts up to 16 KiB
 * are remembered (least recently used first out).
 */
export function analyzeSql(sql: string): SqlAnalysis {
  if (sql.length > maxAnalyzedLength) {
    return tooLong;
  }
  const hit = cache.get(sql);
  if (hit) {
    // Least recently used order: a hit moves to the end.
    cache.delete(sql);
    cache.set(sql, hit);
    return hit;
  }
  const a = deepFreeze(analyzeUncached(sql));
  if (sql.length <= analysisCacheLimits.maxTextLength) {
    if (cache.size >= analysisCacheLimits.entries) cache.delete(cache.keys().next().value!);
    cache.set(sql, a);
  }
  return a;
}

const tooLong: SqlAnalysis = Object.freeze({
  parsed: false,
  parseError: `the text is longer than ${maxAnalyzedLength} characters, the most the server checks`,
  statements: Object.freeze([]) as unknown as StatementInfo[],
});

/** Whether the text is exactly one statement. */
export function isSingleStatement(a: SqlAnalysis): boolean {
  return a.parsed && a.statements.length === 1;
}

/** Whether every statement of a parsed text only reads (false for an empty or unparsed text). */
export function isReadOnlyAnalysis(a: SqlAnalysis): boolean {
  return a.parsed && a.statements.length > 0 && a.statements.every((s) => s.readOnly);
}

interface RawStmt {
  stmt?: Record<string, unknown>;
  stmt_location?: number;
  stmt_len?: number;
}

function analyzeUncached(sql: string): SqlAnalysis {
  if (!loaded) throw new Error('the SQL parser is not loaded: await loadSqlParser() before analyzeSql()');
  if (sql.trim() === '') return { parsed: true, statements: [] };
  // The parser reads a C string: it would stop at a NUL and judge a prefix of the text.
  if (sql.includes('\0')) return { parsed: false, parseError: 'the SQL text contains a NUL character', statements: [] };
  let stmts: RawStmt[];
  try {
    stmts = (parseSync(sql).stmts ?? []) as RawStmt[];
  } catch (e) {
    const err = e as { message?: string; sqlDetails?: { cursorPosition?: number } };
    const at = typeof err.sqlDetails?.cursorPosition === 'number' ? ` (at offset ${err.sqlDetails.cursorPosition})` : '';
    return { parsed: false, parseError: `${err.message ?? String(e)}${at}`, statements: [] };
  }
  const text = statementTexts(sql, stmts);
  const statements: StatementInfo[] = stmts.map((s, i) => {
    const [node, fields] = Object.entries(s.stmt ?? {})[0] ?? ['Unknown', {}];
    return describeStatement(node, (fields ?? {}) as PgFields, text[i]!);
  });
  return { parsed: true, statements };
}

/**
 * The source text of each statement. libpg-query reports `stmt_location` / `stmt_len` in UTF-8
 * bytes (an absent location is 0, an absent length runs to the end).
 */
function statementTexts(sql: string, stmts: RawStmt[]): string[] {
  // eslint-disable-next-line no-control-regex
  const ascii = /^[\x00-\x7f]*$/.test(sql);
  const bytes = ascii ? undefined : Buffer.from(sql, 'utf8');
  const total = bytes ? bytes.length : sql.length;
  return stmts.map((s) => {
    const start = s.stmt_location ?? 0;
    const end = s.stmt_len ? start + s.stmt_len : total;
    return (bytes ? bytes.subarray(start, end).toString('utf8') : sql.slice(start, end)).trim();
  });
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
