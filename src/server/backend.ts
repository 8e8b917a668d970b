/**
 * The database behind the server: a node-postgres pool on PostgreSQL, or on the embedded PGlite
 * engine through its node-postgres adapter (one session, so the pool has one connection and
 * every caller queues for it: no statement ever runs inside another caller's transaction).
 * @packageDocumentation
 */
import net from 'node:net';
import pg from 'pg';
import type { Logger } from 'pino';
import type { ResolvedServerOptions } from './options.js';

/** A pooled connection with the fields HeliosDB relies on. */
export type BackendConnection = pg.PoolClient & {
  /** Transaction status from the last ReadyForQuery: `I` idle, `T` in a block, `E` failed block. */
  _txStatus?: string | null;
  processID?: number;
  secretKey?: number;
  /** application_name last set on this connection (HeliosDB's own bookkeeping). */
  heliosAppName?: string;
  /**
   * Set when a CancelRequest was sent for this connection; settles once PostgreSQL processed it.
   * A cancel that arrives after its statement finished hits the connection's next statement, so
   * such a connection is not reused before this settles (pooled connections are discarded).
   */
  heliosCancel?: Promise<void>;
};

/** Result cells arrive as PostgreSQL text: no parsing on the server. */
const rawTypes = {
  getTypeParser: () => (value: string) => value,
};

/** Which engine a backend runs. */
export type Engine = 'pglite' | 'postgresql';

/** See the file comment. */
export interface Backend {
  readonly engine: Engine;
  /** Waits for a free connection; fails after `acquireTimeoutMs`. */
  acquire(): Promise<BackendConnection>;
  /** Returns a connection; `destroy` discards it (after errors that leave it unusable). */
  release(conn: BackendConnection, destroy?: boolean): void;
  /**
   * Asks the database to cancel the statement running on `conn` (a no-op on PGlite). Records the
   * request in `conn.heliosCancel`.
   */
  cancel(conn: BackendConnection): Promise<void>;
  /** The database's version string. */
  version(): Promise<string>;
  /** Pool counters. */
  stats(): { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

/** Opens the backend the options describe. */
export async function createBackend(opts: ResolvedServerOptions, log: Logger): Promise<Backend> {
  if (opts.databaseUrl) return createPostgresBackend(opts, log);
  return createPgliteBackend(opts, log);
}

function startupOptions(opts: ResolvedServerOptions): string {
  // Fixed output formats the SDK decodes; statement_timeout as configured.
  return `-c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=3 -c statement_timeout=${opts.statementTimeoutMs}`;
}

async function createPostgresBackend(opts: ResolvedServerOptions, log: Logger): Promise<Backend> {
  const pool = new pg.Pool({
    connectionString: opts.databaseUrl,
    max: opts.poolSize,
    connectionTimeoutMillis: opts.acquireTimeoutMs,
    idleTimeoutMillis: 30_000,
    types: rawTypes,
    options: startupOptions(opts),
    application_name: 'heliosdb',
  } as pg.PoolConfig);
  pool.on('error', (err) => log.warn({ err }, 'idle PostgreSQL connection failed'));
  const params = new URL(opts.databaseUrl!.replace(/^postgresql:/, 'postgres:'));
  // A connection checked out of the pool (a transaction session between statements, say) whose
  // backend is terminated gets PostgreSQL's FATAL while no query runs: pg emits it as 'error',
  // which would crash the process without a listener. Its next query fails and discards it.
  const guarded = new WeakSet<pg.PoolClient>();
  const acquire = async (): Promise<BackendConnection> => {
    const conn = (await pool.connect()) as BackendConnection;
    if (!guarded.has(conn)) {
      guarded.add(conn);
      conn.on('error', (err) => log.warn({ err }, 'PostgreSQL connection failed while checked out'));
    }
    return conn;
  };
  const backend: Backend = {
    engine: 'postgresql',
    acquire,
    release: (conn, destroy) => conn.release(destroy ? true : undefined),
    cancel: (conn) => (conn.heliosCancel ??= sendCancelRequest(conn, params.hostname || '127.0.0.1', Number(params.port || 5432))),
    version: async () => (await pool.query('SELECT version() AS v')).rows[0].v as string,
    stats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    close: () => pool.end(),
  };
  // Fail fast when the database is unreachable at start-up.
  const conn = await backend.acquire();
  backend.release(conn);
  return backend;
}

/** PostgreSQL's CancelRequest: a separate connection that names the backend's key. */
function sendCancelRequest(conn: BackendConnection, host: string, port: number): Promise<void> {
  const { processID, secretKey } = conn;
  if (processID === undefined || secretKey === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const socket = host.startsWith('/')
      ? net.connect(`${host}/.s.PGSQL.${port}`)
      : net.connect({ host, port });
    const msg = Buffer.alloc(16);
    msg.writeInt32BE(16, 0);
    msg.writeInt32BE(80877102, 4);
    msg.writeInt32BE(processID, 8);
    msg.writeInt32BE(secretKey, 12);
    socket.setTimeout(5000, () => socket.destroy());
    socket.on('connect', () => socket.end(msg));
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
  });
}

async function createPgliteBackend(opts: ResolvedServerOptions, log: Logger): Promise<Backend> {
  // PGlite runs in a worker thread (a long statement blocks it, not this event loop), reached as
  // one ordinary pg connection at a time: the engine is one session.
  const { startPgliteEngine } = await import('./pglite/engine.js');
  const engine = await startPgliteEngine({ dataDir: opts.dataDir, log });
  log.info({ dataDir: opts.dataDir ?? 'memory://' }, 'embedded PGlite engine ready');
  const pool = new pg.Pool({
    ...engine.clientConfig({
      options: '-c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=3',
      application_name: 'heliosdb',
    }),
    max: 1,
    connectionTimeoutMillis: opts.acquireTimeoutMs,
    idleTimeoutMillis: 0,
    types: rawTypes,
  } as unknown as pg.PoolConfig);
  pool.on('error', (err) => log.warn({ err }, 'PGlite connection failed'));
  // The worker's end fails the checked-out connection with an 'error' event while no query may
  // run: without a listener it would crash the process. Its next query fails and discards it.
  const guarded = new WeakSet<pg.PoolClient>();
  // A worker that died is started again on a data directory (PGlite recovers it); an in-memory
  // database is gone with it, the auth tables too, so the backend stays down.
  let restarting: Promise<void> | undefined;
  const ensureRunning = async (): Promise<void> => {
    if (engine.isRunning) return;
    if (!opts.dataDir) throw new Error('the embedded engine exited and its in-memory database is gone: restart the server');
    restarting ??= engine
      .restart()
      .then(() => log.warn({ dataDir: opts.dataDir }, 'embedded PGlite engine restarted'))
      .finally(() => (restarting = undefined));
    await restarting;
  };
  return {
    engine: 'pglite',
    acquire: async () => {
      await ensureRunning();
      const conn = (await pool.connect()) as BackendConnection;
      if (!guarded.has(conn)) {
        guarded.add(conn);
        conn.on('error', (err) => log.warn({ err }, 'PGlite connection failed while checked out'));
      }
      return conn;
    },
    release: (conn, destroy) => conn.release(destroy ? true : undefined),
    // Nothing can interrupt a statement running in PGlite.
    cancel: async () => {},
    version: async () => engine.version,
    stats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    close: async () => {
      await pool.end();
      await engine.close();
    },
  };
}
