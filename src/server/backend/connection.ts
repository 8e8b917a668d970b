/**
 * The seam between the service and a database connection: a node-postgres `Client`, with the
 * little HeliosDB keeps per connection held beside it (a WeakMap), never as fields on pg's
 * objects. pg's private fields that the server needs (the transaction status from the last
 * ReadyForQuery, the backend key for cancel requests) are read here and nowhere else.
 * @packageDocumentation
 */
import type pg from 'pg';
import type { BackendLogin } from './login.js';

/** A database connection. */
export type BackendConnection = pg.Client;

/** What the server keeps per connection. */
export interface ConnectionState {
  /** Who it is logged in as (its pool key). */
  readonly login: BackendLogin;
  /** application_name set on it now ('' for the login's default). */
  appName: string;
  /**
   * Set when a CancelRequest was sent for it; settles once the database processed it. A cancel
   * that arrives after its statement finished hits the next statement, so such a connection is
   * discarded instead of being reused.
   */
  cancel?: Promise<void>;
  /** The role set on it by the embedded engine's per-call switch ('' for none). */
  role: string;
  /** Calls may have left session state on it: it is reset before it is reused. */
  dirty: boolean;
  /** It failed or ended (its 'error' or 'end'): never reused. */
  broken: boolean;
  /** When it was opened (ms since the epoch). */
  readonly openedAt: number;
}

const states = new WeakMap<BackendConnection, ConnectionState>();

/** Records a new connection's state. */
export function trackConnection(conn: BackendConnection, login: BackendLogin): ConnectionState {
  const s: ConnectionState = { login, appName: '', role: '', dirty: false, broken: false, openedAt: Date.now() };
  states.set(conn, s);
  return s;
}

/** The state of a connection the backend opened. */
export function stateOf(conn: BackendConnection): ConnectionState {
  const s = states.get(conn);
  if (!s) throw new Error('not a backend connection');
  return s;
}

/** Whether `conn` can take another statement (pg marks a client it saw fail as not queryable). */
export function isUsable(conn: BackendConnection): boolean {
  const s = states.get(conn);
  return !s?.broken && (conn as unknown as { _queryable?: boolean })._queryable !== false;
}

/** Marks a connection broken (it must not be reused). */
export function markBroken(conn: BackendConnection): void {
  const s = states.get(conn);
  if (s) s.broken = true;
}

/** pg's private view of a client. */
interface PgPrivate {
  _txStatus?: string | null;
  processID?: number;
  secretKey?: number;
  connection?: { parsedStatements?: Record<string, string>; on?(event: 'commandComplete', fn: (msg: { text: string }) => void): void };
}

/**
 * Transaction status from the last ReadyForQuery: `I` idle, `T` in a transaction block, `E` in a
 * failed block (pg keeps it in a private field).
 */
export function txStatusOf(conn: BackendConnection): 'I' | 'T' | 'E' {
  const s = (conn as unknown as PgPrivate)._txStatus;
  return s === 'T' || s === 'E' ? s : 'I';
}

/** The backend's key for a CancelRequest, when the database sent one. */
export function backendKeyOf(conn: BackendConnection): { processID: number; secretKey: number } | undefined {
  const { processID, secretKey } = conn as unknown as PgPrivate;
  return processID === undefined || secretKey === undefined || processID === null ? undefined : { processID, secretKey };
}

/** Forgets pg's record of the named statements parsed on `conn` (after DISCARD ALL / DEALLOCATE ALL). */
export function forgetParsedStatements(conn: BackendConnection): void {
  const c = (conn as unknown as PgPrivate).connection;
  if (c?.parsedStatements) c.parsedStatements = {};
}
