/**
 * A HeliosDB server for the security tests: TLS with test certificates, authentication required,
 * and PostgreSQL roles made at test time with unique names (dropped afterwards):
 *
 * - PostgreSQL: the server logs in as a role of its own with CREATEROLE and no other privilege
 *   (a production set-up: `heliosdb auth init --grant-to`); an administrator connection (the test
 *   URL's superuser) creates roles, a table, the grants and the users, whose statements then run
 *   under login roles of their own.
 * - PGlite: one superuser session; an administrator API key whose role is `postgres` creates them.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createClient, type HeliosDBClient } from '@heliosdb/client';
import { pgRunner } from '../../src/server/auth/setup.js';
import { type AuthAdmin, SqlAuthStore } from '../../src/server/auth/store.js';
import type { ServerOptions } from '../../src/server/options.js';
import { type HeliosServer, startServer } from '../../src/server/server.js';
import type { TestBackend } from './backends.js';
import type { TestCerts } from './certs.js';

/** The roles and table a security test uses. */
export interface SecurityFixture {
  readonly server: HeliosServer;
  readonly backend: TestBackend;
  /** Suffix unique to this fixture. */
  readonly id: string;
  /** A role with SELECT and INSERT on `table`. */
  readonly writerRole: string;
  /** A role with SELECT on `table` only. */
  readonly readerRole: string;
  /** A table `(id int, v text)` owned by the administrator. */
  readonly table: string;
  /** The server's own database login (PostgreSQL); undefined on PGlite. */
  readonly loginRole: string | undefined;
  /**
   * Users and API keys, written as an administrator would (PostgreSQL: the `heliosdb` commands'
   * store on the admin connection, since the server's authenticator may only read them; PGlite:
   * `server.auth`).
   */
  readonly auth: AuthAdmin;
  /** Runs SQL as the administrator (superuser). */
  adminSql(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** Client options that reach `url` through the test CA. */
  tlsOptions(): { ssl: { ca: string } };
  close(): Promise<void>;
}

/** Starts the fixture's server with `options` (TLS from `certs` unless `tls: false`). */
export async function startSecureServer(
  backend: TestBackend,
  certs: TestCerts,
  options: ServerOptions & { tls?: boolean } = {},
): Promise<SecurityFixture> {
  const id = `${process.pid}_${randomBytes(3).toString('hex')}`;
  const writerRole = `hdb_writer_${id}`;
  const readerRole = `hdb_reader_${id}`;
  const table = `sec_${id}`;
  const { tls = true, ...rest } = options;
  const tlsOpts: ServerOptions = tls ? { tlsCert: certs.server.certFile, tlsKey: certs.server.keyFile } : {};
  const base: ServerOptions = { port: 0, httpPort: 0, logLevel: 'silent', auth: 'required', ...tlsOpts, ...rest };
  const tlsOptions = () => ({ ssl: { ca: certs.ca.cert } });

  if (backend.databaseUrl) {
    const loginRole = `hdb_srv_${id}`;
    const admin = new pg.Client({ connectionString: backend.databaseUrl, application_name: 'heliosdb-security-admin' });
    await admin.connect();
    const store = new SqlAuthStore(pgRunner(admin));
    await admin.query(
      `CREATE ROLE ${loginRole} LOGIN CREATEROLE NOINHERIT; CREATE ROLE ${writerRole} NOLOGIN; CREATE ROLE ${readerRole} NOLOGIN;
       CREATE TABLE ${table} (id int, v text);
       GRANT SELECT, INSERT ON ${table} TO ${writerRole}; GRANT SELECT ON ${table} TO ${readerRole};`,
    );
    await store.ensureSchema();
    await store.grantTo(loginRole);
    const url = new URL(backend.databaseUrl);
    url.username = loginRole;
    url.password = '';
    const server = await startServer({ ...base, databaseUrl: url.toString() });
    return {
      server,
      backend,
      id,
      writerRole,
      readerRole,
      table,
      loginRole,
      auth: store,
      adminSql: async (sql, params) => (await admin.query(sql, params)).rows,
      tlsOptions,
      async close() {
        await server.close();
        const users = await admin.query(`SELECT name FROM heliosdb.users WHERE name LIKE $1`, [`%${id}%`]);
        for (const u of users.rows) await store.deleteUser(u.name);
        await admin.query(
          `DROP TABLE IF EXISTS ${table}; DROP OWNED BY ${loginRole}, ${writerRole}, ${readerRole};
           DROP ROLE ${loginRole}; DROP ROLE ${writerRole}; DROP ROLE ${readerRole};`,
        );
        await admin.end();
      },
    };
  }

  const server = await startServer(base);
  await server.auth.createUser({ name: `admin_${id}`, role: 'postgres' });
  const { key } = await server.auth.createApiKey({ user: `admin_${id}` });
  const url = tls ? server.grpcUrl : server.grpcUrl;
  const admin: HeliosDBClient = createClient({ url, apiKey: key, minConnections: 0, ...(tls ? tlsOptions() : {}) });
  await admin.execute(
    `CREATE ROLE ${writerRole} NOLOGIN; CREATE ROLE ${readerRole} NOLOGIN;
     CREATE TABLE ${table} (id int, v text);
     GRANT SELECT, INSERT ON ${table} TO ${writerRole}; GRANT SELECT ON ${table} TO ${readerRole};`,
  );
  return {
    server,
    backend,
    id,
    writerRole,
    readerRole,
    table,
    loginRole: undefined,
    auth: server.auth,
    adminSql: async (sql, params) => (await admin.query(sql, params ? [...params] : undefined)).rows,
    tlsOptions,
    async close() {
      await admin.close();
      await server.close();
    },
  };
}

/** Creates a user of `fixture` (named uniquely from `name`) and returns its name. */
export async function makeUser(f: SecurityFixture, name: string, role: string, password?: string): Promise<string> {
  const user = `${name}_${f.id}`;
  await f.auth.createUser({ name: user, role, password });
  return user;
}
