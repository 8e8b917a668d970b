/**
 * The seam between the service and the database behind it: PostgreSQL (./backend/postgres.ts:
 * one login role per HeliosDB user, pooled under one cap) or the embedded PGlite engine
 * (./backend/pglite.ts: one session that every caller queues for, so no statement ever runs
 * inside another caller's transaction). Interface only, and the choice between the two.
 * @packageDocumentation
 */
import type { Logger } from 'pino';
import type { BackendConnection } from './backend/connection.js';
import type { BackendLogin } from './backend/login.js';
import type { ResolvedServerOptions } from './options.js';

export type { BackendConnection } from './backend/connection.js';
export type { BackendLogin } from './backend/login.js';

/** Which engine a backend runs. */
export type Engine = 'pglite' | 'postgresql';

/** See the file comment. */
export interface Backend {
  readonly engine: Engine;
  /** Waits for a connection of `login`; fails after `acquireTimeoutMs`, or when `signal` aborts. */
  acquire(login: BackendLogin, signal?: AbortSignal): Promise<BackendConnection>;
  /** Returns a connection; `destroy` discards it (after errors that leave it unusable). */
  release(conn: BackendConnection, destroy?: boolean): void;
  /**
   * Asks the database to cancel the statement running on `conn` (a no-op on PGlite, which cannot
   * interrupt one). Records the request in the connection's state.
   */
  cancel(conn: BackendConnection): Promise<void>;
  /**
   * The script that clears everything a caller may have left on a connection (settings,
   * temporary objects, prepared statements, cursors, advisory locks, listens) and restores the
   * connection's start-up settings. Runs outside a transaction block.
   */
  readonly resetSql: string;
  /**
   * Runs {@link resetSql} on `conn` without waiting for it, when the engine can do that in order
   * (the embedded one: the worker runs it before the connection's next message).
   */
  resetConnection?(conn: BackendConnection): void;
  /**
   * The embedded engine (one session shared by callers and the server's listener): after each
   * call's reset, the channels `channels()` returns are listened on again where a caller's
   * statement dropped them (`UNLISTEN`, also inside a function or `DO` block), and `onDropped`
   * is told which were. Undefined where listeners have connections of their own.
   */
  keepListening?(channels: () => readonly string[], onDropped: (channels: string[]) => void): void;
  /** The application_name connections start with (and return to after each call). */
  readonly defaultApplicationName: string;
  /**
   * Runs `fn` on a connection of the server's own login, which never runs a caller's SQL (the
   * server's tables: users, keys, sessions, idempotency records). On PGlite this is the one
   * session: never call it while holding a connection.
   */
  withServerConnection<T>(fn: (conn: BackendConnection) => Promise<T>): Promise<T>;
  /**
   * PostgreSQL only: opens a connection of `login` outside the pool, for a session that lasts
   * (the listeners of ../notifications.ts), so that it never takes a connection calls wait for.
   * Close it with {@link closeDedicated}.
   */
  openDedicated?(login: BackendLogin): Promise<BackendConnection>;
  /** Closes a connection from {@link openDedicated}. */
  closeDedicated?(conn: BackendConnection): void;
  /** Closes the idle connections of one login (after its credentials changed). */
  closeLogin(key: string): void;
  /**
   * The embedded engine only: runs a `COPY ... FROM '/dev/blob'` statement with `data` as its
   * input on `conn` (which the caller holds); PGlite cannot read COPY data from the protocol.
   */
  copyFromBlob?(conn: BackendConnection, sql: string, data: Uint8Array): Promise<{ rowCount: number }>;
  /** The database's version string. */
  version(): Promise<string>;
  /** Pool counters. */
  stats(): { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

/** Opens the backend the options describe. */
export async function createBackend(opts: ResolvedServerOptions, log: Logger): Promise<Backend> {
  if (opts.databaseUrl) return (await import('./backend/postgres.js')).createPostgresBackend(opts, log);
  return (await import('./backend/pglite.js')).createPgliteBackend(opts, log);
}
