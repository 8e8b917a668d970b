/**
 * Giving a connection back after a call: whatever the call left on it (an open or failed
 * transaction block, settings, temporary objects, prepared statements, cursors, advisory locks)
 * is cleared first, so the next caller finds it as it was opened. A connection that cannot be
 * cleared, or that a cancel request may still hit, is closed instead.
 * @packageDocumentation
 */
import type { Backend } from '../backend.js';
import { type BackendConnection, forgetParsedStatements, isUsable, stateOf, txStatusOf } from './connection.js';

/** Clears `conn` and returns it to the backend's pool; never throws. */
export async function recycle(backend: Backend, conn: BackendConnection, opts: { destroy?: boolean } = {}): Promise<void> {
  const state = stateOf(conn);
  let destroy = opts.destroy === true || !isUsable(conn);
  if (!destroy) {
    try {
      if (txStatusOf(conn) !== 'I') await conn.query('ROLLBACK');
      if (backend.resetConnection) backend.resetConnection(conn);
      else await conn.query(backend.resetSql);
      forgetParsedStatements(conn);
      state.role = '';
      state.appName = '';
      state.dirty = false;
    } catch {
      destroy = true;
    }
  }
  // A cancel sent for a statement on it may still hit whatever runs next; and a connection that
  // broke while it was being cleared (the reset's answer and the end can arrive together) is gone.
  if (state.cancel || !isUsable(conn)) destroy = true;
  backend.release(conn, destroy);
}
