/**
 * Servers for the PostgreSQL-port tests, on either backend, with or without authentication, and
 * the environment the third-party clients (psql, pgbench, psycopg, node-postgres, postgres.js)
 * reach them with. Results are checked outside the pg port: through an administrator connection
 * (PostgreSQL) or the server's gRPC listener (PGlite).
 *
 * - Without authentication: a fresh server (a new database on PostgreSQL), user `postgres`.
 * - With authentication: TLS with test certificates and `--auth required` (test/helpers/security.ts);
 *   a HeliosDB user with a password. On PostgreSQL its role owns a schema of its own, which the
 *   clients' `search_path` names, so pgbench's tables never meet another test's.
 * @packageDocumentation
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import type pg from 'pg';
import type { HeliosServer, StartServerOptions } from '../src/server/server.js';
import type { TestBackend } from './helpers/backends.js';
import { makeTestCerts } from './helpers/certs.js';
import { freshServer } from './helpers/fresh.js';
import { startSecureServer } from './helpers/security.js';

/** A server whose pg port the clients use. */
export interface PgPortServer {
  readonly server: HeliosServer;
  readonly port: number;
  readonly auth: boolean;
  readonly backend: TestBackend;
  /** libpq's environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE, PGOPTIONS...). */
  readonly env: Record<string, string>;
  /** node-postgres connection options. */
  readonly pgConfig: pg.ClientConfig;
  /** The user name and password the clients log in with. */
  readonly user: string;
  readonly password: string;
  /**
   * {@link env} with an API key of the user as the password, as user `apikey` (with
   * authentication): a key is checked by its digest, a password by SCRAM's 4096 PBKDF2 rounds in
   * the client, so many connections at once log in faster with a key.
   */
  readonly keyEnv: Record<string, string>;
  /** A table name as the verifying connection names it (schema-qualified where needed). */
  qualify(table: string): string;
  /** Runs SQL outside the pg port; rows as objects. */
  verify(sql: string): Promise<Record<string, unknown>[]>;
}

/** Starts a server for `t` (stopped when it ends). */
export async function pgPortServer(
  t: TestContext,
  backend: TestBackend,
  opts: { auth: boolean; server?: Partial<StartServerOptions> },
): Promise<PgPortServer> {
  if (!opts.auth) {
    const f = await freshServer(t, backend, { server: { httpPort: -1, ...opts.server } });
    const port = f.server.pgPort!;
    return {
      server: f.server,
      port,
      auth: false,
      backend,
      env: { PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: 'postgres', PGDATABASE: 'postgres', PGSSLMODE: 'disable', PGPASSWORD: '' },
      pgConfig: { host: '127.0.0.1', port, user: 'postgres', database: 'postgres' },
      user: 'postgres',
      password: '',
      keyEnv: {
        PGHOST: '127.0.0.1',
        PGPORT: String(port),
        PGUSER: 'postgres',
        PGDATABASE: 'postgres',
        PGSSLMODE: 'disable',
        PGPASSWORD: '',
      },
      qualify: (table) => table,
      verify: (sql) => f.verify(sql),
    };
  }
  const certs = makeTestCerts();
  const fx = await startSecureServer(backend, certs, { httpPort: -1, ...opts.server });
  t.after(async () => {
    await fx.close();
    certs.cleanup();
  });
  const password = randomBytes(12).toString('hex');
  const user = `pgw_u_${fx.id}`;
  let schema: string | undefined;
  if (backend.databaseUrl) {
    schema = `pgw_${fx.id}`;
    await fx.adminSql(`CREATE SCHEMA ${schema} AUTHORIZATION ${fx.writerRole}`);
    await fx.auth.createUser({ name: user, role: fx.writerRole, password });
  } else {
    await fx.auth.createUser({ name: user, role: 'postgres', password });
  }
  const port = fx.server.pgPort!;
  const env: Record<string, string> = {
    PGHOST: '127.0.0.1',
    PGPORT: String(port),
    PGUSER: user,
    PGDATABASE: 'postgres',
    PGPASSWORD: password,
    PGSSLMODE: 'verify-full',
    PGSSLROOTCERT: certs.ca.certFile,
    PGHOSTADDR: '127.0.0.1',
  };
  // verify-full checks the name: the certificate is for localhost.
  env.PGHOST = 'localhost';
  if (schema) env.PGOPTIONS = `-c search_path=${schema}`;
  const { key } = await fx.auth.createApiKey({ user });
  return {
    server: fx.server,
    port,
    auth: true,
    backend,
    env,
    pgConfig: {
      host: 'localhost',
      port,
      user,
      password,
      database: 'postgres',
      ssl: { ca: certs.ca.cert },
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    },
    user,
    password,
    keyEnv: { ...env, PGUSER: 'apikey', PGPASSWORD: key },
    qualify: (table) => (schema ? `${schema}.${table}` : table),
    verify: (sql) => fx.adminSql(sql),
  };
}

/** What a program printed and how it ended. */
export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program with `env` added to the environment, `input` on its stdin; killed after `timeoutMs`. */
export function runTool(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  opts: { input?: string; timeoutMs?: number; cwd?: string } = {},
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}
