/**
 * What the server does with a caller's SQL before it reaches the database, decided from
 * PostgreSQL's own parse of it (../sql/analyze.ts): statements that need a dedicated API are
 * refused with an error that names it (COPY with the client, LISTEN), statements that would break
 * the call's frame are refused with one that says why (transaction control inside a transaction,
 * a write sent as a read, a statement that cannot carry an idempotency key), and the guard each
 * call runs under is chosen:
 *
 * - `none`: the statements run as sent.
 * - `read`: the caller sent the call as a read (it may send it again after a lost answer): every
 *   statement must parse as one, and they run after `SET TRANSACTION READ ONLY` in the same
 *   pipeline, so one that writes after all (a function) fails without effect.
 * - `readOnlyPrincipal`: a read-only API key. The statements run inside an explicit `BEGIN READ
 *   ONLY` block whose snapshot is taken first (`SELECT 1`), so no setting can make it read-write
 *   and no procedure or `DO` block can commit it; transaction control in their text is refused.
 * @packageDocumentation
 */
import { ErrorReason } from '@heliosdb/client/wire';
import { Code, type ConnectError } from '@connectrpc/connect';
import type { Principal } from '../auth/principal.js';

import { serverError } from '../errors.js';
import { analyzeSql, type SqlAnalysis, type StatementInfo } from '../sql/analyze.js';

/** Where a call runs. */
export type CallFrame = 'autocommit' | 'transaction' | 'session';

/** The guard a call's statements run under (see the file comment). */
export type Guard = 'none' | 'read' | 'readOnlyPrincipal';

/** What the policy needs to know about a call. */
export interface CallFacts {
  principal: Principal;
  frame: CallFrame;
  /** The call carries an idempotency key (auto-commit writes). */
  keyed: boolean;
  /** The caller sent it as a read (`read_only`). */
  claimedRead: boolean;
  /** `pglite` or `postgresql`. */
  engine: string;
  /** Authentication is required (roles then matter on the embedded engine). */
  authRequired: boolean;
  /** What kind of RPC: COPY and batches have rules of their own. */
  rpc: 'query' | 'execute' | 'stream' | 'batch' | 'prepare' | 'copyFrom' | 'copyTo';
}

/** A checked call: its statements and the guard to run them under. */
export interface CheckedSql {
  analysis: SqlAnalysis;
  guard: Guard;
  /** It may commit part of its work itself (transaction control, CALL, DO), or is unparsed. */
  selfCommitting: boolean;
}

function refuse(code: Code, reason: ErrorReason, message: string): ConnectError {
  return serverError(code, message, { reason });
}

function copyRefusal(s: StatementInfo): ConnectError {
  const api = s.copy!.from ? 'client.copyFrom(sql, source)' : 'client.copyTo(sql)';
  return refuse(
    Code.InvalidArgument,
    ErrorReason.USE_COPY_API,
    `${s.command} ${s.copy!.from ? 'FROM STDIN' : 'TO STDOUT'} streams data between the client and the database: run it with ${api}`,
  );
}

/**
 * Checks a call's SQL; throws the refusal, or returns the statements and the guard. `sqls` holds
 * the texts of the call (one, or a batch's).
 */
export function checkSql(sqls: readonly string[], facts: CallFacts): CheckedSql[] {
  const out: CheckedSql[] = [];
  const many = sqls.length > 1;
  for (const sql of sqls) out.push(checkOne(sql, facts, many));
  return out;
}

function checkOne(sql: string, f: CallFacts, inBatch: boolean): CheckedSql {
  if (sql.includes('\0')) {
    // PostgreSQL's protocol ends a statement at its first NUL: refused before it is sent.
    throw serverError(Code.InvalidArgument, 'the SQL text contains a NUL character, which PostgreSQL cannot receive', {
      reason: ErrorReason.INVALID_REQUEST,
    });
  }
  const analysis = analyzeSql(sql);
  const readOnlyPrincipal = f.principal.readOnly;
  const statements = analysis.statements;
  if (!analysis.parsed && readOnlyPrincipal) {
    // Nothing unknown runs for a read-only key; PostgreSQL would have refused it too.
    throw serverError(Code.InvalidArgument, `syntax error: ${analysis.parseError ?? 'the statement cannot be parsed'}`, {
      sqlstate: '42601',
    });
  }
  for (const s of statements) {
    if (s.copy?.client) {
      const wanted = s.copy.from ? 'copyFrom' : 'copyTo';
      if (f.rpc !== wanted) throw copyRefusal(s);
    }
    if (s.listen) {
      throw refuse(
        Code.InvalidArgument,
        ErrorReason.USE_LISTEN_API,
        `${s.listen.toUpperCase()} in SQL text has no channel to deliver notifications on: use client.listen(channel, onNotification), which listens on a connection of its own (NOTIFY and pg_notify work in any call)`,
      );
    }
    if (s.encodingChange) {
      throw refuse(
        Code.InvalidArgument,
        ErrorReason.INVALID_REQUEST,
        `${s.command} client_encoding to another encoding is refused: the server and its clients exchange text as UTF-8, and rows in another encoding would not be what the wire format says (convert in SQL with convert_to / convert_from instead)`,
      );
    }
    if (s.identityChange && f.engine === 'pglite' && f.authRequired) {
      throw refuse(
        Code.PermissionDenied,
        ErrorReason.IDENTITY_CHANGE_REFUSED,
        `${s.command} is refused on the embedded engine: it is one superuser session, so changing the role there could leave the principal's own (use PostgreSQL for separate identities; see docs/security.md)`,
      );
    }
    if (s.node === 'LockStmt' && readOnlyPrincipal) {
      // PostgreSQL takes any lock mode in a READ ONLY transaction: a read-only key must not block writers.
      throw refuse(
        Code.PermissionDenied,
        ErrorReason.READ_ONLY_PRINCIPAL,
        "LOCK is refused for a read-only API key: its locks would block other principals' writes",
      );
    }
    if (s.node === 'DoStmt' && readOnlyPrincipal && f.engine === 'pglite' && f.authRequired) {
      // On the one superuser session a DO block can reset the role and read the server's tables.
      throw refuse(
        Code.PermissionDenied,
        ErrorReason.READ_ONLY_PRINCIPAL,
        'DO is refused for a read-only API key on the embedded engine: its one superuser session would let the block leave the principal (use PostgreSQL for separate identities; see docs/security.md)',
      );
    }
    if (s.transactionControl) checkTransactionControl(s, f, inBatch);
    if (s.outsideTransactionBlock && f.frame === 'autocommit') {
      if (statements.length > 1 || inBatch || f.rpc === 'stream' || f.rpc === 'batch') {
        throw refuse(
          Code.InvalidArgument,
          ErrorReason.MUST_RUN_ALONE,
          `${s.command} cannot run inside a transaction block, so it must be the only statement of its call (send it alone with execute or query)`,
        );
      }
      if (f.keyed) throw notKeyable(s, 'it runs outside a transaction block, where its outcome cannot be recorded with it');
    }
  }
  if (
    (f.rpc === 'copyFrom' || f.rpc === 'copyTo') &&
    (statements.length !== 1 || !statements[0].copy?.client || statements[0].copy.from !== (f.rpc === 'copyFrom'))
  ) {
    throw serverError(
      Code.InvalidArgument,
      f.rpc === 'copyFrom'
        ? 'copyFrom needs exactly one COPY ... FROM STDIN statement'
        : 'copyTo needs exactly one COPY ... TO STDOUT statement',
      { reason: ErrorReason.INVALID_REQUEST },
    );
  }
  let guard: Guard = 'none';
  if (readOnlyPrincipal) guard = 'readOnlyPrincipal';
  else if (f.claimedRead && f.frame === 'autocommit' && !f.keyed) {
    const writer = statements.find((s) => !s.readOnly);
    if (analysis.parsed && writer) {
      throw refuse(
        Code.FailedPrecondition,
        ErrorReason.NOT_A_READ,
        `the call was sent as a read, but ${writer.command} is not one; it was not run (the client sends it again as a write)`,
      );
    }
    guard = 'read';
  }
  const selfCommitting = !analysis.parsed || statements.some((s) => s.transactionControl !== undefined || s.outsideTransactionBlock);
  return { analysis, guard, selfCommitting };
}

function notKeyable(s: StatementInfo, why: string): ConnectError {
  return refuse(Code.InvalidArgument, ErrorReason.NOT_KEYABLE, `${s.command} cannot carry an idempotency key: ${why}; send it without one`);
}

function checkTransactionControl(s: StatementInfo, f: CallFacts, inBatch: boolean): void {
  const kind = s.transactionControl!;
  const savepoints = kind === 'savepoint' || kind === 'release' || kind === 'rollbackTo';
  if (f.principal.readOnly) {
    throw refuse(
      Code.PermissionDenied,
      ErrorReason.READ_ONLY_PRINCIPAL,
      `${s.command} is refused for a read-only API key: its statements run in a READ ONLY transaction the server controls (use client.begin({ readOnly: true }) for a transaction of your own)`,
    );
  }
  if (f.frame === 'session') return; // a reserved session is the caller's own connection
  if (inBatch || f.rpc === 'batch') {
    throw refuse(
      Code.FailedPrecondition,
      ErrorReason.TRANSACTION_CONTROL_IN_SQL,
      `${s.command} cannot be part of a batch: a batch runs in a transaction of its own (atomic) or statement by statement; use client.transaction() to group statements`,
    );
  }
  if (f.frame === 'transaction') {
    if (savepoints) return;
    throw refuse(
      Code.FailedPrecondition,
      ErrorReason.TRANSACTION_CONTROL_IN_SQL,
      `${s.command} in SQL text would end or change the transaction behind the client's back: use tx.commit(), tx.rollback(), tx.savepoint(), and client.begin({ isolationLevel, readOnly }) for its settings`,
    );
  }
  // Auto-commit: scripts such as BEGIN; ...; COMMIT run as PostgreSQL runs them, without a key.
  if (kind === 'prepareTransaction') {
    throw refuse(
      Code.FailedPrecondition,
      ErrorReason.TRANSACTION_CONTROL_IN_SQL,
      'PREPARE TRANSACTION needs a transaction of its own that the server does not end: run BEGIN; ...; PREPARE TRANSACTION in a reserved session (client.reserve()), then COMMIT PREPARED from any call',
    );
  }
  if (f.keyed) throw notKeyable(s, 'it ends or begins transactions itself, so its outcome cannot be recorded atomically with it');
}
