/**
 * Runs each call's statements as its principal's PostgreSQL role, so permissions are ordinary
 * GRANTs, and keeps read-only principals read-only whatever SQL they send.
 *
 * - Role: `SET ROLE "<role>"` on the connection before the call's first statement (and `RESET
 *   ROLE` for an anonymous call on a connection that had one). The server's database login should
 *   be an unprivileged NOINHERIT "authenticator" granted each user role: then crafted `RESET ROLE`
 *   or `SET ROLE NONE` falls back to a role with no privileges, and `SET SESSION AUTHORIZATION`
 *   is refused (it needs a superuser login). See docs/security.md for what this does not cover.
 * - Read-only principals: every statement they send runs inside a `READ ONLY` transaction block
 *   the server opened, and runs alone: it is sent with the extended protocol (one statement per
 *   Parse, so no `COMMIT; SET ...; INSERT` scripts), and before each statement the server checks
 *   the connection is still inside a transaction block, opening a new `BEGIN READ ONLY` when a
 *   statement ended it (`COMMIT`). A single statement can neither leave a read-only transaction
 *   and write, nor turn it read-write (`SET transaction_read_only = off` is refused inside one).
 *   Auto-commit calls end with ROLLBACK.
 * @packageDocumentation
 */
import type { BackendConnection } from '../backend.js';
import type { Principal } from './principal.js';
import { quoteIdent } from './store.js';

/** What a read-only principal's call needs from the statements run on its connection. */
export interface ReadOnlyGuard {
  /** The call is auto-commit (a block left failed may be rolled back and reopened); false inside a transaction session. */
  autocommit: boolean;
}

type GuardedConnection = BackendConnection & {
  /** The server set a role on this connection that a later anonymous call must reset. */
  heliosRoleSet?: boolean;
  /** Set while a read-only principal's call uses the connection. */
  heliosReadOnly?: ReadOnlyGuard;
};

/**
 * Switches `conn` to the principal's role before its call (one round trip when there is one, none
 * for anonymous calls on a connection that never had a role). For a read-only principal also opens
 * the READ ONLY block (auto-commit calls) and arms the per-statement guard.
 */
export async function applyPrincipal(conn: BackendConnection, p: Principal, autocommit: boolean): Promise<void> {
  const c = conn as GuardedConnection;
  let sql = '';
  if (p.role) sql = `SET ROLE ${quoteIdent(p.role)}`;
  else if (c.heliosRoleSet) sql = 'RESET ROLE';
  if (p.readOnly && autocommit && (c._txStatus ?? 'I') === 'I') sql += (sql ? '; ' : '') + 'BEGIN READ ONLY';
  if (sql) await conn.query(sql);
  c.heliosRoleSet = p.role !== '';
  c.heliosReadOnly = p.readOnly ? { autocommit } : undefined;
}

/** The read-only guard of the call using `conn`, if its principal is read-only. */
export function readOnlyGuardOf(conn: BackendConnection): ReadOnlyGuard | undefined {
  return (conn as GuardedConnection).heliosReadOnly;
}

/** Disarms the guard (the call is over; an auto-commit connection goes back to the pool). */
export function clearGuard(conn: BackendConnection): void {
  (conn as GuardedConnection).heliosReadOnly = undefined;
}

/**
 * Before each statement of a read-only principal: makes sure the connection is inside a READ
 * ONLY transaction block the server opened. Returns true when the statement must go alone through
 * the extended protocol (always, for such principals).
 */
export async function beforeStatement(conn: BackendConnection): Promise<boolean> {
  const guard = readOnlyGuardOf(conn);
  if (!guard) return false;
  if (conn._txStatus === 'E' && guard.autocommit) await conn.query('ROLLBACK');
  if ((conn._txStatus ?? 'I') === 'I') await conn.query('BEGIN READ ONLY');
  return true;
}
