/**
 * The embedded backend: PGlite, one database session that every caller queues for (a shared
 * {@link KeyedPool} of one connection, served fairly by login). It is a single superuser session,
 * so a caller's role is set per call (see ../call/scope.ts) and cannot be a security boundary
 * against crafted SQL; docs/security.md says what holds there.
 * @packageDocumentation
 */
import pg from 'pg';
import type { Logger } from 'pino';
import type { Backend } from '../backend.js';
import type { ResolvedServerOptions } from '../options.js';
import { type BackendConnection, trackConnection } from './connection.js';
import { KeyedPool } from './keyed-pool.js';
import { type BackendLogin, serverLogin } from './login.js';
import { rawTypes } from './postgres.js';

/** The engine's fixed output formats (it takes no start-up options). */
const fixedSettings = `SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3`;

/**
 * DISCARD ALL without its UNLISTEN * (the server's own LISTENs share the one session), then the
 * fixed settings again (RESET ALL reverts them: they were SET, not start-up options).
 */
const resetSql = `CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; SELECT pg_advisory_unlock_all(); DISCARD PLANS; DISCARD TEMP; DISCARD SEQUENCES; ${fixedSettings}`;

/** Opens the embedded engine. */
export async function createPgliteBackend(opts: ResolvedServerOptions, log: Logger): Promise<Backend> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { createPgConfig } = await import('@electric-sql/pglite/node-postgres');
  const db = await PGlite.create(opts.dataDir ?? 'memory://');
  await db.exec(fixedSettings);
  log.info({ dataDir: opts.dataDir ?? 'memory://' }, 'embedded PGlite engine ready');
  const open = async (login: BackendLogin): Promise<BackendConnection> => {
    const client = new pg.Client({ ...createPgConfig(db), types: rawTypes } as unknown as pg.ClientConfig);
    client.on('error', (err) => log.warn({ err }, 'PGlite connection failed'));
    await client.connect();
    trackConnection(client, login);
    return client;
  };
  const pool = new KeyedPool({
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
  const backend: Backend = {
    engine: 'pglite',
    acquire: (login, signal) => pool.acquire(login, signal),
    release: (conn, destroy) => pool.release(conn, destroy),
    // PGlite runs statements to the end: a running one cannot be interrupted.
    cancel: async () => {},
    resetSql,
    async withServerConnection(fn) {
      const conn = await pool.acquire(serverLogin);
      let destroy = false;
      try {
        const status = (conn as unknown as { _txStatus?: string })._txStatus;
        if (status && status !== 'I') throw new Error('the embedded engine session is inside a transaction');
        await conn.query('RESET ROLE');
        return await fn(conn);
      } catch (e) {
        destroy = !(e && typeof e === 'object' && 'severity' in e) && !(e instanceof Error && /inside a transaction/.test(e.message));
        throw e;
      } finally {
        const status = (conn as unknown as { _txStatus?: string })._txStatus;
        if (!destroy && status && status !== 'I') await conn.query('ROLLBACK').catch(() => (destroy = true));
        pool.release(conn, destroy);
      }
    },
    closeLogin: () => {},
    async copyFromBlob(_conn, sql, data) {
      const r = await db.query(sql, [], { blob: new Blob([new Uint8Array(data)]) });
      return { rowCount: r.affectedRows ?? 0 };
    },
    version: async () => (await db.query<{ v: string }>('SELECT version() AS v')).rows[0].v,
    stats: () => {
      const s = pool.stats();
      return { total: s.total, idle: s.idle, waiting: s.waiting };
    },
    close: async () => {
      await pool.close();
      await db.close();
    },
  };
  return backend;
}
