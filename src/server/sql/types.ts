/**
 * What the server knows about a SQL text from PostgreSQL's own parser (see analyze.ts).
 * @packageDocumentation
 */

/** Transaction control a statement performs (see {@link StatementInfo.transactionControl}). */
export type TransactionControl =
  | 'begin'
  | 'commit'
  | 'rollback'
  | 'savepoint'
  | 'release'
  | 'rollbackTo'
  | 'prepareTransaction'
  | 'commitPrepared'
  | 'rollbackPrepared'
  | 'setTransaction'
  | 'setSessionCharacteristics';

/** The analysis of one SQL text. */
export interface SqlAnalysis {
  /** false when libpg-query could not parse it (PostgreSQL will then report its own syntax error). */
  parsed: boolean;
  /** The parser's message when {@link parsed} is false (with the character position, when it gave one). */
  parseError?: string;
  /** The text's statements in order; empty for an empty or comment-only text (and when not parsed). */
  statements: StatementInfo[];
}

/** What one statement is and does. */
export interface StatementInfo {
  /** The parse node, e.g. `SelectStmt`, `VariableSetStmt`. */
  node: string;
  /** PostgreSQL's command name as its "SQL Commands" list spells it: `SELECT`, `CREATE INDEX`, `SET`, `COPY`. */
  command: string;
  /** This statement's own source text (without its `;`), trimmed. */
  text: string;
  /**
   * Only reads: SELECT / VALUES / TABLE without INTO and without FOR UPDATE / NO KEY UPDATE /
   * SHARE / KEY SHARE anywhere (CTEs, sub-selects), no INSERT / UPDATE / DELETE / MERGE in a CTE;
   * SHOW; EXPLAIN without ANALYZE (of anything), or EXPLAIN ANALYZE of a read. FETCH and MOVE are
   * not (they move a cursor). Anything unsure is false. A SELECT calling a function that writes is
   * still a read here: run reads in READ ONLY transactions to catch that.
   */
  readOnly: boolean;
  /**
   * Transaction control: BEGIN / START TRANSACTION, COMMIT / END (`chain` for AND CHAIN),
   * ROLLBACK / ABORT, SAVEPOINT, RELEASE, ROLLBACK TO, PREPARE TRANSACTION, COMMIT PREPARED,
   * ROLLBACK PREPARED, SET TRANSACTION (also SET [LOCAL] transaction_read_only /
   * transaction_isolation / transaction_deferrable), SET SESSION CHARACTERISTICS (also SET
   * default_transaction_read_only / _isolation / _deferrable, which it is a spelling of).
   */
  transactionControl?: TransactionControl;
  /** COMMIT AND CHAIN / ROLLBACK AND CHAIN. */
  chain?: boolean;
  /** COPY: its direction, whether through the client (FROM STDIN / TO STDOUT), whether through a PROGRAM. */
  copy?: { from: boolean; client: boolean; program: boolean };
  /** LISTEN or UNLISTEN. */
  listen?: 'listen' | 'unlisten';
  /** The channel a LISTEN or UNLISTEN names (undefined: `UNLISTEN *`). */
  listenChannel?: string;
  /** NOTIFY, or a call of pg_notify(). */
  notify?: boolean;
  /**
   * Must not run inside a transaction block (PostgreSQL 15 refuses it there), or may end the
   * transaction itself (CALL, DO): VACUUM (not ANALYZE alone), CREATE / DROP DATABASE, ALTER
   * DATABASE SET TABLESPACE, CREATE / DROP TABLESPACE, ALTER SYSTEM, CREATE INDEX CONCURRENTLY,
   * DROP INDEX CONCURRENTLY, REINDEX (every form: CONCURRENTLY, SCHEMA / SYSTEM / DATABASE, and a
   * partitioned table or index, which only the catalog tells), CLUSTER (without a table, or of a
   * partitioned one), ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY, CREATE SUBSCRIPTION
   * unless `create_slot = false` / `connect = false`, ALTER SUBSCRIPTION ... REFRESH and SET / ADD
   * / DROP PUBLICATION unless `refresh = false`, DROP SUBSCRIPTION, DISCARD ALL, COMMIT PREPARED,
   * ROLLBACK PREPARED, CALL, DO.
   */
  outsideTransactionBlock: boolean;
  /**
   * Leaves state on the session beyond the statement: SET / RESET (not SET LOCAL, not SET
   * TRANSACTION), PREPARE, DEALLOCATE, DECLARE ... WITH HOLD, LISTEN, UNLISTEN, CREATE TEMP
   * objects (and objects in `pg_temp`), LOAD, DISCARD, SET ROLE / SESSION AUTHORIZATION, a
   * `set_config(..., false)` and session advisory locks (`pg_advisory_lock`, ...). What a CALL or
   * DO does inside is not seen.
   */
  sessionState: boolean;
  /**
   * Changes the session's identity: SET [LOCAL] ROLE, RESET ROLE, SET / RESET SESSION
   * AUTHORIZATION (also spelled as SET role / session_authorization), DISCARD ALL (it resets the
   * session authorization), and a `set_config` whose first argument is 'role',
   * 'session_authorization' or not a literal. What a CALL, DO or function does inside is not seen.
   */
  identityChange: boolean;
  /**
   * SET [LOCAL] client_encoding (or SET NAMES) to anything but UTF8: the server and its clients
   * exchange text as UTF-8. RESET and SET ... TO DEFAULT go back to UTF8 and are not this.
   * `set_config('client_encoding', ...)` is not seen.
   */
  encodingChange?: boolean;
  /** Highest `$n` parameter number the statement uses (0 for none); `$n` of a PREPAREd query or a function body do not count. */
  maxParam: number;
  /**
   * Tables (schema-qualified when written so, names as PostgreSQL folds them) the statement reads
   * and writes, as far as the tree tells: DML targets, objects of DDL, SELECT INTO / CREATE TABLE
   * AS targets are written; everything else referenced is read (also what EXPLAIN without ANALYZE,
   * PREPARE, a view's query or a rule mention). CTE names are not tables.
   */
  tables: { read: string[]; written: string[] };
  /** Functions the statement calls (schema-qualified when written so), e.g. `nextval`, `pg_catalog.set_config`. */
  functions: string[];
}
