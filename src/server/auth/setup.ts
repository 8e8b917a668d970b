/**
 * Opens the server's user and key store on its backend: on PostgreSQL a small pool of its own
 * (its connections never run callers' SQL, so nothing a caller set on a session can touch the
 * credential queries); on the embedded engine an in-memory mirror (see MirroredAuthStore).
 * @packageDocumentation
 */
import pg from 'pg';
import type { Backend } from '../backend.js';
import type { ResolvedServerOptions } from '../options.js';
import { type AuthAdmin, type AuthData, MirroredAuthStore, type SqlRunner, SqlAuthStore } from './store.js';

/** Rows of a pg result, or of every result of a multi-statement script. */
export function rowsOf(res: pg.QueryResult | pg.QueryResult[]): Record<string, unknown>[] {
  return Array.isArray(res) ? res.flatMap((r) => r.rows) : res.rows;
}

/** A SqlRunner over a node-postgres pool or client. */
export function pgRunner(db: pg.Pool | pg.Client): SqlRunner {
  return { query: async (text, values) => rowsOf((await db.query(text, values)) as pg.QueryResult | pg.QueryResult[]) };
}

/** The store the server reads credentials from, and its administration. */
export async function openAuthData(
  opts: ResolvedServerOptions,
  backend: Backend,
): Promise<{ data: AuthData; admin: AuthAdmin; superuserLogin: boolean; close(): Promise<void> }> {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 2, idleTimeoutMillis: 10_000, application_name: 'heliosdb-auth' });
    pool.on('error', () => {});
    const store = new SqlAuthStore(pgRunner(pool));
    const [who] = await pgRunner(pool).query('SELECT rolsuper FROM pg_roles WHERE rolname = session_user').catch(() => []);
    // Expired sessions accumulate otherwise; best effort (the login role may lack DELETE).
    const purge = setInterval(() => void store.purgeSessions().catch(() => {}), 60_000);
    purge.unref();
    return {
      data: store,
      admin: store,
      superuserLogin: who?.rolsuper === true,
      close: async () => {
        clearInterval(purge);
        await pool.end();
      },
    };
  }
  // The embedded engine: through the backend's one session, outside any caller's role.
  const runner: SqlRunner = {
    async query(text, values) {
      const conn = await backend.acquire();
      let destroy = false;
      try {
        await conn.query('RESET ROLE');
        return rowsOf((await conn.query(text, values)) as pg.QueryResult | pg.QueryResult[]);
      } finally {
        if (conn._txStatus && conn._txStatus !== 'I') await conn.query('ROLLBACK').catch(() => (destroy = true));
        backend.release(conn, destroy);
      }
    },
  };
  const mirror = new MirroredAuthStore(new SqlAuthStore(runner));
  await mirror.load();
  return { data: mirror, admin: mirror, superuserLogin: true, close: async () => {} };
}
