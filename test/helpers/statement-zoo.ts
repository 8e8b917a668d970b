/**
 * The statement zoo's vocabulary: one row per command of PostgreSQL 15's "SQL Commands"
 * reference (ABORT ... VALUES, plus a few variants the server treats differently), what it needs
 * around it, and what every way of sending it must give: served (with its command tag, and rows
 * where it returns some) or refused with a typed error that says why. Rows are in
 * ./zoo-commands-*.ts; ./zoo-runner.ts runs them; test/statement-zoo.test.ts declares the tests.
 * @packageDocumentation
 */
import { type HeliosDBError, QueryError, TransactionError } from '@heliosdb/client';

/**
 * The ways a statement is sent: the five statement calls of the client in auto-commit
 * (`prepare` only describes; `prepared` runs the described statement), inside `client.begin()`
 * (`tx`), and in a reserved session (`session`, only for rows that say what to do there).
 */
export type Column = 'query' | 'execute' | 'batch' | 'stream' | 'prepare' | 'prepared' | 'tx' | 'session';

/** Every column but `session`, in the order they run. */
export const columns: readonly Column[] = ['query', 'execute', 'batch', 'stream', 'prepare', 'prepared', 'tx'];

/** A HeliosDB error class. */
export type ErrorClass = abstract new (...args: never[]) => HeliosDBError;

/** The statement ran (or, for `prepare`, was described). */
export interface Served {
  ok: true;
  /** The command tag's verb; default: the row's `tag`. Not checked for `prepare`. */
  tag?: string;
  /** Rows returned; default: the row's `rows` (unchecked when absent). */
  rows?: number;
  /** Rows the command tag counts (`INSERT 0 2`, `SELECT 3`); default: the row's `affected`. */
  affected?: number;
}

/** The call failed with a typed error. */
export interface Refused {
  ok: false;
  cls: ErrorClass;
  /** The error's `code` (a refusal's reason, or `QUERY_ERROR` for a database error). */
  code: string;
  /** The SQLSTATE of a database error (or the ones it may be). */
  sqlstate?: string | readonly string[];
  /** What the message must say. */
  message?: RegExp;
}

/** An expected outcome. */
export type Expect = Served | Refused;

/** Served, with the row's tag unless given. */
export const ok = (tag?: string, rows?: number, affected?: number): Served => ({ ok: true, tag, rows, affected });

/** A refusal of the server's statement policy (the reason is also the error's code). */
export function refused(cls: ErrorClass, reason: string, message?: RegExp): Refused {
  return { ok: false, cls, code: reason, message };
}

/** PostgreSQL's own error, as a QueryError with its SQLSTATE. */
export function pgError(sqlstate: string | readonly string[], message?: RegExp): Refused {
  return { ok: false, cls: QueryError, code: 'QUERY_ERROR', sqlstate, message };
}

/** The policy's refusals, spelled once. */
export const refusal = {
  mustRunAlone: refused(
    QueryError,
    'MUST_RUN_ALONE',
    /cannot run inside a transaction block, so it must be the only statement of its call/,
  ),
  txControlInBatch: refused(TransactionError, 'TRANSACTION_CONTROL_IN_SQL', /cannot be part of a batch/),
  txControlInTx: refused(TransactionError, 'TRANSACTION_CONTROL_IN_SQL', /would end or change the transaction behind the client's back/),
  txLeftOpen: refused(TransactionError, 'TRANSACTION_CONTROL_OUTSIDE_SESSION', /left a transaction block open/),
  prepareTransaction: refused(TransactionError, 'TRANSACTION_CONTROL_IN_SQL', /client\.reserve\(\)/),
  useCopyApi: refused(QueryError, 'USE_COPY_API', /client\.copy(From|To)/),
  useListenApi: refused(QueryError, 'USE_LISTEN_API', /client\.listen/),
  /** PostgreSQL: "... cannot run inside a transaction block". */
  notInBlock: pgError('25001', /cannot run inside a transaction block|cannot be executed within a transaction block/),
  /** PostgreSQL: "... can only be used in transaction blocks". */
  onlyInBlock: pgError('25P01'),
  /** PostgreSQL's extended protocol takes one statement. */
  multipleCommands: pgError('42601', /cannot insert multiple commands into a prepared statement/),
} as const;

/**
 * The default outcomes of a kind of statement (a row's `expect` overrides them):
 * - `plain`: served everywhere.
 * - `alone`: cannot run inside a transaction block: served alone in query/execute, refused in a
 *   batch or a stream (MUST_RUN_ALONE), PostgreSQL's 25001 in a transaction.
 * - `aloneButBlockOk`: the server runs it alone because it may (a procedure, a DO block that
 *   COMMITs) or because only the catalog tells; PostgreSQL runs this instance in a block.
 * - `copy` / `listen`: refused in every call, naming the API to use.
 * - `begin`: opens a transaction block: refused after the fact in auto-commit (rolled back),
 *   refused in a batch and in a transaction, served in a reserved session.
 * - `end`: COMMIT / ROLLBACK alone: PostgreSQL warns and does nothing in auto-commit; refused in
 *   a batch and in a transaction.
 * - `savepoint`: 25P01 in auto-commit, refused in a batch, served in a transaction and a session.
 * - `missing`: needs something of its session (a cursor, a prepared statement): PostgreSQL's
 *   error `sqlstate` in auto-commit, where there is none; served in a transaction after `txSetup`.
 */
export type Kind = 'plain' | 'alone' | 'aloneButBlockOk' | 'copy' | 'listen' | 'begin' | 'end' | 'savepoint' | 'missing';

/** Per-backend changes of a row. */
export interface RowOverride {
  sql?: string;
  setup?: Setup[];
  cleanup?: Setup[];
  effect?: string;
  expect?: Partial<Record<Column, Expect>>;
  /** Columns marked node:test `todo`: the server's behaviour there is wrong; the text says how. */
  todo?: Partial<Record<Column, string>>;
  session?: SessionRun;
  /** Why this backend differs. */
  why?: string;
}

/**
 * A setup or cleanup step: statements for `client.execute` (consecutive ones go in one call; one
 * that starts with `!` runs alone in its call), or statements in one reserved session.
 */
export type Setup = string | { reserved: string[] };

/** What to run in a reserved session: `setup` statements first, then the row's SQL. */
export interface SessionRun {
  setup?: string[];
  expect: Expect;
  /** Boolean SQL: the session's work is visible after the session was released. */
  effect?: string;
}

/** One instance of a command and what every column must give. */
export interface ZooRow {
  /** The reference page's title (`ALTER AGGREGATE`). */
  command: string;
  /** What distinguishes an extra instance of the same command. */
  variant?: string;
  sql: string;
  /** Steps before each column (after `cleanup`). */
  setup?: Setup[];
  /** Steps before each column's setup and after the row: they must leave nothing behind. */
  cleanup?: Setup[];
  /**
   * Boolean SQL that is true once the statement did its work: checked after every column, true
   * exactly when the column ran it successfully (never after `prepare`, a refusal or an error).
   */
  effect?: string;
  /** Default `plain`. */
  kind?: Kind;
  /** The command tag's verb when served; default: `command`. */
  tag?: string;
  /** Rows returned when served (query, stream, prepared, tx). */
  rows?: number;
  /** The command tag's count when served. */
  affected?: number;
  /** For `missing`: PostgreSQL's SQLSTATE without the session's object. */
  sqlstate?: string;
  /** Statements run in the transaction before the row's SQL (tx column). */
  txSetup?: string[];
  session?: SessionRun;
  expect?: Partial<Record<Column, Expect>>;
  todo?: Partial<Record<Column, string>>;
  pglite?: RowOverride;
  postgresql?: RowOverride;
  /** Also run through the server's http:// URL (Connect over HTTP/1.1). */
  http?: boolean;
}

/** A row with its backend's overrides applied. */
export interface ResolvedRow {
  title: string;
  sql: string;
  setup: Setup[];
  cleanup: Setup[];
  effect: string | undefined;
  txSetup: string[];
  session: SessionRun | undefined;
  expect: Record<Column, Expect | undefined>;
  todo: Partial<Record<Column, string>>;
  http: boolean;
}

function defaults(row: ZooRow): Record<Column, Expect | undefined> {
  const served = ok(row.tag ?? row.command, row.rows, row.affected);
  const describe: Served = { ok: true };
  const base = {
    query: served,
    execute: served,
    batch: served,
    stream: served,
    prepare: describe,
    prepared: served,
    tx: served,
    session: undefined,
  };
  switch (row.kind ?? 'plain') {
    case 'plain':
      return base;
    case 'alone':
      return { ...base, batch: refusal.mustRunAlone, stream: refusal.mustRunAlone, tx: refusal.notInBlock };
    case 'aloneButBlockOk':
      return { ...base, batch: refusal.mustRunAlone, stream: refusal.mustRunAlone };
    case 'copy':
      return {
        query: refusal.useCopyApi,
        execute: refusal.useCopyApi,
        batch: refusal.useCopyApi,
        stream: refusal.useCopyApi,
        prepare: refusal.useCopyApi,
        prepared: undefined,
        tx: refusal.useCopyApi,
        session: refusal.useCopyApi,
      };
    case 'listen':
      return {
        query: refusal.useListenApi,
        execute: refusal.useListenApi,
        batch: refusal.useListenApi,
        stream: refusal.useListenApi,
        prepare: refusal.useListenApi,
        prepared: undefined,
        tx: refusal.useListenApi,
        session: refusal.useListenApi,
      };
    case 'begin':
      return {
        ...base,
        query: refusal.txLeftOpen,
        execute: refusal.txLeftOpen,
        stream: refusal.txLeftOpen,
        prepared: refusal.txLeftOpen,
        batch: refusal.txControlInBatch,
        tx: refusal.txControlInTx,
      };
    case 'end':
      return { ...base, batch: refusal.txControlInBatch, tx: refusal.txControlInTx };
    case 'savepoint':
      return {
        ...base,
        query: refusal.onlyInBlock,
        execute: refusal.onlyInBlock,
        stream: refusal.onlyInBlock,
        prepared: refusal.onlyInBlock,
        batch: refusal.txControlInBatch,
      };
    case 'missing': {
      const e = pgError(row.sqlstate ?? 'XXXXX');
      return { ...base, query: e, execute: e, batch: e, stream: e, prepared: e };
    }
  }
}

/** Applies `backend`'s overrides to `row`. */
export function resolveRow(row: ZooRow, backend: 'pglite' | 'postgresql'): ResolvedRow {
  const o: RowOverride = row[backend] ?? {};
  const expect = { ...defaults(row), ...row.expect, ...o.expect };
  const session = o.session ?? row.session;
  expect.session = session?.expect;
  return {
    title: row.variant ? `${row.command} (${row.variant})` : row.command,
    sql: o.sql ?? row.sql,
    setup: o.setup ?? row.setup ?? [],
    cleanup: o.cleanup ?? row.cleanup ?? [],
    effect: 'effect' in o ? o.effect : row.effect,
    txSetup: row.txSetup ?? [],
    session,
    expect,
    todo: { ...row.todo, ...o.todo },
    http: row.http === true,
  };
}
