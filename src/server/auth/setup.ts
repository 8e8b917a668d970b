/**
 * Opens the server's user and key store on its backend, always through the server's own login
 * (`Backend.withServerConnection`), whose connections never run callers' SQL: on PostgreSQL the
 * store's tables are read live (several servers share them); on the embedded engine they are
 * mirrored in memory (see MirroredAuthStore), since reading through its one session could wait
 * behind the very caller being authenticated.
 * @packageDocumentation
 */
import type pg from 'pg';
import type { Backend } from '../backend.js';
import type { ResolvedServerOptions } from '../options.js';
import { type AuthAdmin, type AuthData, MirroredAuthStore, type SqlRunner, SqlAuthStore } from './store.js';

/** Rows of a pg result, or of every result of a multi-statement script. */
export function rowsOf(res: pg.QueryResult | pg.QueryResult[]): Record<string, unknown>[] {
  return Array.isArray(res) ? res.flatMap((r) => r.rows) : res.rows;
}

/** A SqlRunner over a node-postgres pool or client. */
export function pgRunner(db: Pick<pg.Client, 'query'>): SqlRunner {
  return { query: async (text, values) => rowsOf((await db.query(text, values)) as pg.QueryResult | pg.QueryResult[]) };
}

/** What the server gets: the store it reads credentials from, and its administration. */
export interface AuthDataHandle {
  data: AuthData;
  admin: AuthAdmin;
  /** The key login secrets derive from (PostgreSQL; undefined until `heliosdb auth init`). */
  serverKey: string | undefined;
  /** Reads the server key again (it may be made after start-up). */
  readServerKey(): Promise<string | undefined>;
  close(): Promise<void>;
}

/** Opens the store on `backend`. */
export async function openAuthData(opts: ResolvedServerOptions, backend: Backend): Promise<AuthDataHandle> {
  const runner: SqlRunner = { query: (text, values) => backend.withServerConnection((conn) => pgRunner(conn).query(text, values)) };
  if (opts.databaseUrl) {
    const store = new SqlAuthStore(runner);
    const serverKey = await store.serverKey().catch(() => undefined);
    // Expired sessions accumulate otherwise; best effort (the login role may lack DELETE).
    const purge = setInterval(() => void store.purgeSessions().catch(() => {}), 60_000);
    purge.unref();
    return {
      data: store,
      admin: store,
      serverKey,
      readServerKey: () => store.serverKey(),
      close: async () => clearInterval(purge),
    };
  }
  const mirror = new MirroredAuthStore(new SqlAuthStore(runner, { loginRoles: false }));
  await mirror.load();
  return { data: mirror, admin: mirror, serverKey: undefined, readServerKey: async () => undefined, close: async () => {} };
}
