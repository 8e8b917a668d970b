/**
 * The embedded backend: PGlite, run in a worker thread (../pglite/engine.ts: a long statement
 * blocks the worker, never this event loop) and reached as one ordinary pg connection, since it
 * is one database session that every caller queues for (a shared {@link KeyedPool} of one
 * connection, served fairly by login). It is a single superuser session, so a caller's role is
 * set per call (see ../call/scope.ts) and cannot be a security boundary against crafted SQL;
 * docs/security.md says what holds there.
 * @packageDocumentation
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Backend } from '../backend.js';
import type { ResolvedServerOptions } from '../options.js';
import { type BackendConnection, markBroken, trackConnection } from './connection.js';
import { KeyedPool } from './keyed-pool.js';
import { type BackendLogin, serverLogin } from './login.js';
import { quoteLiteral } from '../sql-quote.js';
import { rawTypes } from './postgres.js';

/** The engine's fixed output formats, as start-up options. */
const startup = '-c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=3';

/**
 * DISCARD ALL without its UNLISTEN * (the server's own LISTENs share the one session), then the
 * start-up settings again: the engine applies them with SET, which RESET ALL reverts. The session
 * user is named: after a caller's `SET SESSION AUTHORIZATION`, PGlite ignores `... DEFAULT`.
 */
const resetSqlFor = (appName: string) =>
  'CLOSE ALL; SET SESSION AUTHORIZATION postgres; RESET ALL; DEALLOCATE ALL; SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES; ' +
  `SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET application_name = ${quoteLiteral(appName)}`;

/** Opens the embedded engine. */
export async function createPgliteBackend(opts: ResolvedServerOptions, log: Logger): Promise<Backend> {
  const { startPgliteEngine } = await import('../pglite/engine.js');
  const engine = await startPgliteEngine({ dataDir: opts.dataDir, log });
  log.info({ dataDir: opts.dataDir ?? 'memory://' }, 'embedded PGlite engine ready');
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
  const open = async (login: BackendLogin): Promise<BackendConnection> => {
    await ensureRunning();
    const client = engine.connect({
      options: startup,
      application_name: opts.databaseApplicationName,
      types: rawTypes,
    } as unknown as pg.ClientConfig);
    const conn = await client;
    // The worker's end fails the connection with an 'error' event while no query may run:
    // without a listener it would crash the process. Its next query fails and discards it.
    conn.on('error', (err) => {
      log.warn({ err }, 'PGlite connection failed');
      markBroken(conn);
      pool.forget(conn);
    });
    trackConnection(conn, login);
    return conn;
  };
  const pool: KeyedPool = new KeyedPool({
    max: 1,
    shared: true,
    open,
    close: async (c) => {
      await c.end().catch(() => {});
    },
    idleTimeoutMs: 0,
    acquireTimeoutMs: opts.acquireTimeoutMs,
    log,
  });
  const txStatusField = (conn: BackendConnection) => conn as unknown as { _txStatus?: string };
  let hubChannels: () => readonly string[] = () => [];
  const backend: Backend = {
    engine: 'pglite',
    acquire: (login, signal) => pool.acquire(login, signal),
    release: (conn, destroy) => pool.release(conn, destroy),
    // Nothing can interrupt a statement running in PGlite.
    cancel: async () => {},
    resetSql: resetSqlFor(opts.databaseApplicationName),
    resetConnection: () => engine.resetSession(resetSqlFor(opts.databaseApplicationName), hubChannels()),
    keepListening(channels, onDropped) {
      hubChannels = channels;
      engine.on('relistened', onDropped);
    },
    defaultApplicationName: opts.databaseApplicationName,
    async withServerConnection(fn) {
      const conn = await pool.acquire(serverLogin);
      let destroy = false;
      try {
        const status = txStatusField(conn)._txStatus;
        if (status && status !== 'I') throw new Error('the embedded engine session is inside a transaction');
        await conn.query('RESET ROLE');
        return await fn(conn);
      } catch (e) {
        destroy = !(e && typeof e === 'object' && 'severity' in e) && !(e instanceof Error && /inside a transaction/.test(e.message));
        throw e;
      } finally {
        const status = txStatusField(conn)._txStatus;
        if (!destroy && status && status !== 'I') await conn.query('ROLLBACK').catch(() => (destroy = true));
        pool.release(conn, destroy);
      }
    },
    closeLogin: () => {},
    async copyFromBlob(conn, sql, data) {
      const r = await engine.copyFrom(sql, data);
      // pg did not see the exchange: its transaction status is the engine's.
      txStatusField(conn)._txStatus = r.txStatus;
      return { rowCount: r.rowCount };
    },
    version: async () => engine.version,
    stats: () => {
      const s = pool.stats();
      return { total: s.total, idle: s.idle, waiting: s.waiting };
    },
    close: async () => {
      await pool.close();
      await engine.close();
    },
  };
  return backend;
}
