/**
 * The PostgreSQL backend: callers' connections in a {@link KeyedPool}, one login role per HeliosDB
 * user, and a small pool of the server's own login (`--database-url`) for the server's tables,
 * which never runs a caller's SQL.
 * @packageDocumentation
 */
import net from 'node:net';
import { serialize } from 'pg-protocol';
import pg from 'pg';
import type { Logger } from 'pino';
import type { Backend } from '../backend.js';
import type { ResolvedServerOptions } from '../options.js';
import { backendKeyOf, type BackendConnection, markBroken, stateOf, trackConnection } from './connection.js';
import { KeyedPool } from './keyed-pool.js';
import { keepRowBytes } from '../pg/raw-rows.js';
import type { BackendLogin } from './login.js';

/** Result cells arrive as PostgreSQL text: no parsing on the server. */
export const rawTypes = {
  getTypeParser: () => (value: string) => value,
};

/** Fixed output formats the SDK decodes, and the statement timeout, as startup options. */
export function startupOptions(opts: ResolvedServerOptions, readOnly: boolean): string {
  const ro = readOnly ? ' -c default_transaction_read_only=on' : '';
  return `-c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=3 -c statement_timeout=${opts.statementTimeoutMs}${ro}`;
}

/** Where the database listens, for cancel requests. */
function addressOf(url: string): { host: string; port: number } {
  const params = new URL(url.replace(/^postgresql:/, 'postgres:'));
  return { host: decodeURIComponent(params.hostname) || '127.0.0.1', port: Number(params.port || 5432) };
}

/** PostgreSQL's CancelRequest, on a connection of its own (pg-protocol's serializer builds it). */
function sendCancelRequest(conn: BackendConnection, host: string, port: number): Promise<void> {
  const key = backendKeyOf(conn);
  if (!key) return Promise.resolve();
  return new Promise((resolve) => {
    const socket = host.startsWith('/') ? net.connect(`${host}/.s.PGSQL.${port}`) : net.connect({ host, port });
    socket.setTimeout(5000, () => socket.destroy());
    socket.on('connect', () => socket.end(serialize.cancel(key.processID, key.secretKey)));
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
  });
}

/** `url` with another user and password. */
export function urlWithLogin(url: string, user: string, password: string): string {
  const u = new URL(url.replace(/^postgresql:/, 'postgres:'));
  u.username = encodeURIComponent(user);
  u.password = encodeURIComponent(password);
  return u.toString();
}

/** Opens the PostgreSQL backend; fails fast when the database is unreachable. */
export async function createPostgresBackend(opts: ResolvedServerOptions, log: Logger): Promise<Backend> {
  const url = opts.databaseUrl!;
  const { host, port } = addressOf(url);
  const own = new pg.Pool({
    connectionString: url,
    max: 3,
    idleTimeoutMillis: 10_000,
    application_name: 'heliosdb-server',
    types: rawTypes,
  } as pg.PoolConfig);
  own.on('error', (err) => log.warn({ err }, 'idle server connection failed'));

  const open = async (login: BackendLogin): Promise<BackendConnection> => {
    const client = new pg.Client({
      // pg lets the URL's fields win over separate ones: the login goes into the URL.
      connectionString: login.user ? urlWithLogin(url, login.user, login.password ?? '') : url,
      types: rawTypes,
      options: startupOptions(opts, login.readOnly),
      application_name: opts.databaseApplicationName,
      connectionTimeoutMillis: opts.acquireTimeoutMs,
    } as pg.ClientConfig);
    keepRowBytes(client);
    // A connection whose backend is terminated gets PostgreSQL's FATAL while no query runs: pg
    // emits it as 'error', which would crash the process without a listener.
    client.on('error', (err) => {
      log.warn({ err, login: login.user ?? '(server)' }, 'database connection failed');
      markBroken(client);
      pool.forget(client);
    });
    client.on('end', () => {
      markBroken(client);
      pool.forget(client);
    });
    try {
      await client.connect();
    } catch (e) {
      client.removeAllListeners('error');
      client.on('error', () => {});
      throw e;
    }
    trackConnection(client, login);
    return client;
  };
  const pool: KeyedPool = new KeyedPool({
    max: opts.poolSize,
    maxBusyPerUser: opts.maxConnectionsPerPrincipal > 0 ? opts.maxConnectionsPerPrincipal : Math.max(1, Math.floor(opts.poolSize / 2)),
    open,
    close: async (c) => {
      await c.end().catch(() => {});
    },
    idleTimeoutMs: 30_000,
    acquireTimeoutMs: opts.acquireTimeoutMs,
    log,
  });

  const backend: Backend = {
    engine: 'postgresql',
    acquire: (login, signal) => pool.acquire(login, signal),
    release: (conn, destroy) => pool.release(conn, destroy),
    cancel: (conn) => {
      const s = stateOf(conn);
      return (s.cancel ??= sendCancelRequest(conn, host, port));
    },
    resetSql: 'DISCARD ALL',
    defaultApplicationName: opts.databaseApplicationName,
    async withServerConnection(fn) {
      const conn = await own.connect();
      let destroy = false;
      try {
        return await fn(conn as unknown as BackendConnection);
      } catch (e) {
        destroy = !(e && typeof e === 'object' && 'severity' in e);
        throw e;
      } finally {
        const status = (conn as unknown as { _txStatus?: string })._txStatus;
        if (!destroy && status && status !== 'I') await conn.query('ROLLBACK').catch(() => (destroy = true));
        conn.release(destroy ? true : undefined);
      }
    },
    openDedicated: (login) => open(login),
    closeDedicated: (conn) => {
      markBroken(conn);
      void conn.end().catch(() => {});
    },
    closeLogin: (key) => pool.closeIdle(key),
    version: async () => (await own.query('SELECT version() AS v')).rows[0].v as string,
    stats: () => {
      const s = pool.stats();
      return { total: s.total, idle: s.idle, waiting: s.waiting };
    },
    close: async () => {
      await pool.close();
      await own.end();
    },
  };
  // Fail fast when the database is unreachable at start-up.
  await backend.version();
  return backend;
}
