/**
 * Lexical classification of SQL text on the client (browser-safe, no parser): whether a text
 * only reads (so a lost answer may be asked for again), and whether its statements may carry an
 * idempotency key. One pass of a tokenizer that follows PostgreSQL's lexer where it matters:
 * `''` and E'' backslash escapes, standard_conforming_strings, "quoted identifiers", $tag$ dollar
 * quotes, `--` and nested `/* *\/` comments, and semicolons outside parentheses. Conservative:
 * what it cannot be sure of counts as a write. The server classifies again with PostgreSQL's
 * own parser (src/server/sql/analyze.ts); this one may be stricter, never looser.
 * @packageDocumentation
 */

/** Kinds of {@link SqlToken}. */
export type SqlTokenKind =
  /** A keyword or identifier (value: lower case). */
  | 'word'
  /** A "quoted identifier" (value: the name, `""` undone). */
  | 'quoted'
  /** A string literal of any form: '', E'', N'', B'', X'', U&'', $$ $$ (value: the raw text). */
  | 'string'
  | 'number'
  /** `$1` (value: the digits). */
  | 'param'
  | 'open'
  | 'close'
  | 'semicolon'
  /** Operators and other punctuation, one character each. */
  | 'other';

/** One token: its kind, where it is in the text, and its value. */
export interface SqlToken {
  kind: SqlTokenKind;
  start: number;
  end: number;
  value: string;
}

/** What {@link tokenizeSql} found. */
export interface SqlTokens {
  tokens: SqlToken[];
  /** A string, quoted identifier, dollar quote or comment runs to the end of the text. */
  unterminated: boolean;
  /** A plain '' literal holds a backslash, which standard_conforming_strings decides the meaning of. */
  backslashInString: boolean;
}

/** Options of {@link tokenizeSql}. */
export interface TokenizeOptions {
  /** Whether backslashes in plain '' literals are ordinary characters (PostgreSQL's default since 9.1). Default `true`. */
  standardConformingStrings?: boolean;
}

const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13);
const isDigit = (c: number) => c >= 48 && c <= 57;
/** PostgreSQL's ident_start: letters, `_`, and any non-ASCII character. */
const isIdentStart = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c >= 128;
/** ident_cont: also digits and `$`. */
const isIdentCont = (c: number) => isIdentStart(c) || isDigit(c) || c === 36;

/**
 * Splits `sql` into tokens, skipping blanks and comments. Never throws: an unterminated quote or
 * comment ends the text (and sets `unterminated`).
 */
export function tokenizeSql(sql: string, options: TokenizeOptions = {}): SqlTokens {
  const scs = options.standardConformingStrings ?? true;
  const tokens: SqlToken[] = [];
  const n = sql.length;
  let unterminated = false;
  let backslashInString = false;
  let i = 0;
  const push = (kind: SqlTokenKind, start: number, end: number, value = sql.slice(start, end)) => tokens.push({ kind, start, end, value });

  /** A '' literal from the opening quote at `q`; returns the index after it. */
  const quoted = (q: number, backslashes: boolean, doubling: boolean): number => {
    let j = q + 1;
    for (;;) {
      if (j >= n) {
        unterminated = true;
        return n;
      }
      const c = sql.charCodeAt(j);
      if (c === 92 /* \ */ && backslashes) j += 2;
      else if (c === 39 /* ' */) {
        if (doubling && sql.charCodeAt(j + 1) === 39) j += 2;
        else return j + 1;
      } else j++;
    }
  };

  while (i < n) {
    const c = sql.charCodeAt(i);
    const next = i + 1 < n ? sql.charCodeAt(i + 1) : -1;
    if (isSpace(c)) {
      i++;
    } else if (c === 45 && next === 45) {
      // -- comment, to the end of the line
      while (i < n && sql.charCodeAt(i) !== 10 && sql.charCodeAt(i) !== 13) i++;
    } else if (c === 47 && next === 42) {
      // /* comment */, nested as PostgreSQL nests them
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql.charCodeAt(i) === 47 && sql.charCodeAt(i + 1) === 42) {
          depth++;
          i += 2;
        } else if (sql.charCodeAt(i) === 42 && sql.charCodeAt(i + 1) === 47) {
          depth--;
          i += 2;
        } else i++;
      }
      if (depth > 0) unterminated = true;
    } else if (c === 39) {
      const end = quoted(i, !scs, true);
      if (sql.slice(i, end).includes('\\')) backslashInString = true;
      push('string', i, end);
      i = end;
    } else if ((c === 101 || c === 69) && next === 39) {
      // E'...': backslash escapes whatever standard_conforming_strings says
      const end = quoted(i + 1, true, true);
      push('string', i, end);
      i = end;
    } else if ((c === 110 || c === 78) && next === 39) {
      // N'...': a plain literal
      const end = quoted(i + 1, !scs, true);
      if (sql.slice(i, end).includes('\\')) backslashInString = true;
      push('string', i, end);
      i = end;
    } else if ((c === 98 || c === 66 || c === 120 || c === 88) && next === 39) {
      // B'...', X'...': no escapes at all
      const end = quoted(i + 1, false, false);
      push('string', i, end);
      i = end;
    } else if ((c === 117 || c === 85) && next === 38 && (sql.charCodeAt(i + 2) === 39 || sql.charCodeAt(i + 2) === 34)) {
      // U&'...' (a backslash there starts a Unicode escape, never escapes the quote) and U&"..."
      if (sql.charCodeAt(i + 2) === 39) {
        const end = quoted(i + 2, false, true);
        push('string', i, end);
        i = end;
      } else {
        i = quotedIdent(i, i + 2);
      }
    } else if (c === 34) {
      i = quotedIdent(i, i);
    } else if (c === 36 /* $ */) {
      if (isDigit(next)) {
        let j = i + 1;
        while (j < n && isDigit(sql.charCodeAt(j))) j++;
        push('param', i, j, sql.slice(i + 1, j));
        i = j;
      } else {
        // $tag$ ... $tag$: the tag is dolq_start dolq_cont* or empty
        let j = i + 1;
        if (j < n && isIdentStart(sql.charCodeAt(j))) {
          j++;
          while (j < n && (isIdentStart(sql.charCodeAt(j)) || isDigit(sql.charCodeAt(j)))) j++;
        }
        if (sql.charCodeAt(j) === 36) {
          const tag = sql.slice(i, j + 1);
          const close = sql.indexOf(tag, j + 1);
          const end = close < 0 ? n : close + tag.length;
          if (close < 0) unterminated = true;
          push('string', i, end);
          i = end;
        } else {
          push('other', i, i + 1);
          i++;
        }
      }
    } else if (isIdentStart(c)) {
      let j = i + 1;
      while (j < n && isIdentCont(sql.charCodeAt(j))) j++;
      push('word', i, j, sql.slice(i, j).toLowerCase());
      i = j;
    } else if (isDigit(c) || (c === 46 && isDigit(next))) {
      // Digits, `_`, one `.`, an exponent; letters right after start a new word (conservative).
      const m = /^(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?/.exec(sql.slice(i, i + 256))!;
      push('number', i, i + m[0].length);
      i += m[0].length;
    } else {
      push(c === 40 ? 'open' : c === 41 ? 'close' : c === 59 ? 'semicolon' : 'other', i, i + 1);
      i++;
    }
  }
  return { tokens, unterminated, backslashInString };

  /** A "quoted identifier" whose opening quote is at `q` (token from `start`); returns the index after it. */
  function quotedIdent(start: number, q: number): number {
    let j = q + 1;
    let name = '';
    for (;;) {
      const close = sql.indexOf('"', j);
      if (close < 0) {
        unterminated = true;
        name += sql.slice(j);
        j = n;
        break;
      }
      name += sql.slice(j, close);
      if (sql.charCodeAt(close + 1) === 34) {
        name += '"';
        j = close + 2;
      } else {
        j = close + 1;
        break;
      }
    }
    push('quoted', start, j, name);
    return j;
  }
}

/** The statements of a token list: split at semicolons outside parentheses (a rule's `(a; b)` stays whole); empty ones dropped. */
export function splitStatements(tokens: readonly SqlToken[]): SqlToken[][] {
  const out: SqlToken[][] = [];
  let current: SqlToken[] = [];
  let depth = 0;
  for (const t of tokens) {
    if (t.kind === 'semicolon' && depth === 0) {
      if (current.length > 0) out.push(current);
      current = [];
      continue;
    }
    if (t.kind === 'open') depth++;
    else if (t.kind === 'close' && depth > 0) depth--;
    current.push(t);
  }
  if (current.length > 0) out.push(current);
  return out;
}

/** Words that, anywhere in a SELECT / VALUES / TABLE / WITH statement, may mean it writes. */
const writeWords = new Set(['insert', 'update', 'delete', 'merge', 'into', 'copy', 'call', 'do', 'lock']);
/**
 * Built-in functions with effects that a READ ONLY transaction does not stop: large-object writes
 * (PostgreSQL 15 and older let them through) and notifications. A statement calling one is no
 * read, for the client and for the server's analysis alike.
 */
export const effectFunctions: ReadonlySet<string> = new Set([
  'lo_create',
  'lo_creat',
  'lo_from_bytea',
  'lo_import',
  'lo_export',
  'lo_put',
  'lo_unlink',
  'lo_truncate',
  'lo_truncate64',
  'lo_open',
  'lowrite',
  'pg_notify',
]);
/** Function names that write, also when written as a "quoted identifier": sequences and {@link effectFunctions}. */
const writeFunctions = new Set(['nextval', 'setval', ...effectFunctions]);
/** What may follow FOR in a locking clause (FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE). */
const lockingAfterFor = new Set(['update', 'share', 'no', 'key']);

/** The statement's tokens after its opening parentheses. */
function body(s: readonly SqlToken[]): readonly SqlToken[] {
  let i = 0;
  while (i < s.length && s[i]!.kind === 'open') i++;
  return s.slice(i);
}

const wordAt = (s: readonly SqlToken[], i: number): string | undefined => (s[i]?.kind === 'word' ? s[i]!.value : undefined);

function isReadStatement(stmt: readonly SqlToken[]): boolean {
  const s = body(stmt);
  switch (wordAt(s, 0)) {
    case 'show':
      return true;
    case 'explain':
      // EXPLAIN without ANALYZE only plans, whatever it explains. ANALYZE is a reserved word:
      // anywhere in the statement it can only be the option (also "analyze" in the option list).
      return !s.some(
        (t) => (t.kind === 'word' || t.kind === 'quoted') && (t.value.toLowerCase() === 'analyze' || t.value.toLowerCase() === 'analyse'),
      );
    case 'select':
    case 'values':
    case 'table':
    case 'with':
      for (let i = 0; i < s.length; i++) {
        const t = s[i]!;
        if (t.kind === 'word') {
          if (writeWords.has(t.value) || writeFunctions.has(t.value)) return false;
          if (t.value === 'for' && lockingAfterFor.has(wordAt(s, i + 1) ?? '')) return false;
        } else if (t.kind === 'quoted' && writeFunctions.has(t.value)) {
          return false;
        }
      }
      return true;
    default:
      return false;
  }
}

/** Settings whose SET is transaction control (SET TRANSACTION / SESSION CHARACTERISTICS spelled as a setting). */
const transactionSettings = new Set([
  'transaction',
  'transaction_read_only',
  'transaction_isolation',
  'transaction_deferrable',
  'default_transaction_read_only',
  'default_transaction_isolation',
  'default_transaction_deferrable',
]);

/** First words of statements that never carry a key: transaction control, what runs outside a transaction block, CALL and DO (they may COMMIT), COPY, LISTEN. */
const unkeyableFirst = new Set([
  'begin',
  'start',
  'commit',
  'end',
  'rollback',
  'abort',
  'savepoint',
  'release',
  'lock', // refused outside a transaction block: a key would only record the refusal
  'vacuum',
  'checkpoint',
  'discard',
  'cluster',
  'reindex',
  'call',
  'do',
  'copy',
  'listen',
  'unlisten',
]);

function isKeyableStatement(stmt: readonly SqlToken[]): boolean {
  const s = body(stmt);
  const w0 = wordAt(s, 0);
  const w1 = wordAt(s, 1);
  if (w0 === undefined) return true;
  if (unkeyableFirst.has(w0)) return false;
  const concurrently = s.some((t) => t.kind === 'word' && t.value === 'concurrently');
  switch (w0) {
    case 'prepare':
      return w1 !== 'transaction';
    case 'set': {
      if (w1 === 'session' && wordAt(s, 2) === 'characteristics') return false;
      const at = w1 === 'local' || w1 === 'session' ? 2 : 1;
      const name = s[at]?.kind === 'word' || s[at]?.kind === 'quoted' ? s[at]!.value.toLowerCase() : '';
      return !transactionSettings.has(name);
    }
    case 'create':
      return !concurrently && w1 !== 'database' && w1 !== 'tablespace' && w1 !== 'subscription';
    case 'drop':
      return !concurrently && w1 !== 'database' && w1 !== 'tablespace' && w1 !== 'subscription';
    case 'alter':
      if (w1 === 'system' || w1 === 'subscription') return false;
      if (w1 === 'database' && s.some((t) => t.kind === 'word' && t.value === 'tablespace')) return false;
      return !concurrently; // ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY
    default:
      return true;
  }
}

interface Classification {
  readOnly: boolean;
  keyable: boolean;
}

function classifyWith(sql: string, standardConformingStrings: boolean): Classification & { backslash: boolean } {
  const { tokens, unterminated, backslashInString } = tokenizeSql(sql, { standardConformingStrings });
  const statements = splitStatements(tokens);
  return {
    readOnly: !unterminated && statements.length > 0 && statements.every(isReadStatement),
    keyable: !unterminated && statements.every(isKeyableStatement),
    backslash: backslashInString,
  };
}

function classify(sql: string): Classification {
  let r = sql.length <= 4096 ? cache.get(sql) : longCache.get(sql);
  if (r === undefined) {
    const on = classifyWith(sql, true);
    // A backslash in a '' literal: the text means something else when the server runs with
    // standard_conforming_strings off. Both readings must agree.
    if (on.backslash) {
      const off = classifyWith(sql, false);
      r = { readOnly: on.readOnly && off.readOnly, keyable: on.keyable && off.keyable };
    } else {
      r = { readOnly: on.readOnly, keyable: on.keyable };
    }
    remember(sql, r);
  }
  return r;
}

/** The answers for the last thousand texts of up to 4 KiB. */
const cache = new Map<string, Classification>();
/**
 * The answers for the last eight longer texts (up to 1 MiB): a multi-row INSERT of thousands of
 * rows is sent again and again, and lexing its text each time cost more than sending it.
 */
const longCache = new Map<string, Classification>();

function remember(sql: string, r: Classification): void {
  if (sql.length <= 4096) {
    if (cache.size >= 1000) cache.delete(cache.keys().next().value!);
    cache.set(sql, r);
  } else if (sql.length <= 1024 * 1024) {
    if (longCache.size >= 8) longCache.delete(longCache.keys().next().value!);
    longCache.set(sql, r);
  }
}

/**
 * Whether `sql` only reads: every statement is SELECT, VALUES, TABLE or WITH with no word that may
 * change data anywhere in it (INSERT, UPDATE, DELETE, MERGE, INTO, COPY, CALL, LOCK, nextval,
 * setval, large-object writers, pg_notify, FOR UPDATE / SHARE / NO KEY UPDATE / KEY SHARE), SHOW, or EXPLAIN without ANALYZE.
 * False for an empty text, an unterminated quote or comment, and anything else. A SELECT calling
 * a function that writes is the one case it cannot see (the server runs reads in READ ONLY
 * transactions). Answers for the last 1000 texts up to 4 KiB are remembered.
 */
export function isReadOnlySql(sql: string): boolean {
  return classify(sql).readOnly;
}

/**
 * Whether a write can be protected by an idempotency key: false when a statement is transaction
 * control (BEGIN, COMMIT, SAVEPOINT, SET TRANSACTION, SET SESSION CHARACTERISTICS, ...), cannot
 * run inside a transaction block (VACUUM, CREATE DATABASE, ... CONCURRENTLY, REINDEX, CLUSTER,
 * ALTER SYSTEM, subscriptions, DISCARD, ...), may COMMIT itself (CALL, DO), or is COPY, LISTEN,
 * UNLISTEN or LOCK.
 */
export function isKeyableSql(sql: string): boolean {
  return classify(sql).keyable;
}
