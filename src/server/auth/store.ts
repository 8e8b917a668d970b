/**
 * Users, API keys and password sessions, kept durably in the backend database's `heliosdb`
 * schema, so several servers on one database share them. Secrets are never stored: passwords as
 * scrypt hashes (and SCRAM-SHA-256 verifiers, for the PostgreSQL port), API keys and session tokens (random, 256 bits) as SHA-256 digests.
 *
 * The same store serves the running server (reads, sessions) and the `heliosdb user` / `heliosdb
 * apikey` commands (writes), each through its own {@link SqlRunner}.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { loginRoleName, loginSecret, newServerKey, scramVerifier } from '../backend/login.js';
import { idempotencyCurrentSql, idempotencyGrantsSql, idempotencySchemaSql } from '../idempotency-sql.js';
import { quoteIdent, quoteLiteral } from '../sql-quote.js';
import { hashPassword } from './passwords.js';
import type { ApiKeyRecord, LoginRecord, SessionRecord, UserRecord } from './records.js';
import { apiKeyPrefix, digest } from './tokens.js';

// The store's parts, where callers have always found them.
export type { ApiKeyRecord, AuthAdmin, AuthData, LoginRecord, SessionRecord, UserRecord } from './records.js';
export { apiKeyIdOf, apiKeyPrefix, digest, newSessionToken, sameDigest, sessionTokenPrefix } from './tokens.js';
export { MirroredAuthStore } from './mirrored-store.js';

/** Runs one SQL statement (or, without values, a script) and returns its rows. */
export interface SqlRunner {
  query(text: string, values?: unknown[]): Promise<Record<string, unknown>[]>;
}

function bool(v: unknown): boolean {
  return v === true || v === 't' || v === 'true';
}

/** Whether an error means the heliosdb schema or its tables do not exist (no users yet). */
function isMissingSchema(e: unknown): boolean {
  const code = (e as { code?: string } | null)?.code;
  return code === '42P01' || code === '3F000';
}

/** The schema, created idempotently (an advisory lock keeps concurrent creators apart). */
export const schemaSql = `
BEGIN;
SELECT pg_advisory_xact_lock(7700771);
CREATE SCHEMA IF NOT EXISTS heliosdb;
CREATE TABLE IF NOT EXISTS heliosdb.users (
  name text PRIMARY KEY CHECK (name <> ''),
  role text NOT NULL CHECK (role <> ''),
  password_hash text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS heliosdb.api_keys (
  id text PRIMARY KEY,
  user_name text NOT NULL REFERENCES heliosdb.users (name) ON DELETE CASCADE ON UPDATE CASCADE,
  key_hash text NOT NULL,
  read_only boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
CREATE TABLE IF NOT EXISTS heliosdb.sessions (
  token_hash text PRIMARY KEY,
  user_name text NOT NULL REFERENCES heliosdb.users (name) ON DELETE CASCADE ON UPDATE CASCADE,
  expires_at timestamptz NOT NULL
);
ALTER TABLE heliosdb.users ADD COLUMN IF NOT EXISTS login_role text UNIQUE;
ALTER TABLE heliosdb.users ADD COLUMN IF NOT EXISTS login_generation integer NOT NULL DEFAULT 1;
ALTER TABLE heliosdb.users ADD COLUMN IF NOT EXISTS scram_verifier text;
CREATE TABLE IF NOT EXISTS heliosdb.server_key (
  id integer PRIMARY KEY CHECK (id = 1),
  key text NOT NULL
);
REVOKE ALL ON ALL TABLES IN SCHEMA heliosdb FROM PUBLIC;
COMMIT;
`;

/** The newest parts the schema adds (an older schema is upgraded when one is missing). */
const newestPart = `SELECT to_regclass('heliosdb.server_key') IS NOT NULL AND EXISTS (
  SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('heliosdb.users') AND attname = 'scram_verifier' AND NOT attisdropped
) AS ok`;

/**
 * Columns of a user row, with its login. The SCRAM verifier is read through `to_jsonb`, so a server
 * reading a schema made before it (not upgraded by `heliosdb auth init` yet) finds none.
 */
const userColumns = "u.name, u.role, u.password_hash, u.login_role, u.login_generation, to_jsonb(u) ->> 'scram_verifier' AS scram_verifier";

function loginOf(r: Record<string, unknown>): LoginRecord | undefined {
  return r.login_role == null ? undefined : { role: String(r.login_role), generation: Number(r.login_generation ?? 1) };
}

function userOf(r: Record<string, unknown>): UserRecord {
  return {
    name: String(r.name),
    role: String(r.role),
    passwordHash: r.password_hash == null ? undefined : String(r.password_hash),
    scramVerifier: r.scram_verifier == null ? undefined : String(r.scram_verifier),
    login: loginOf(r),
  };
}

export { quoteIdent } from '../sql-quote.js';

/** Options of {@link SqlAuthStore}. */
export interface SqlAuthStoreOptions {
  /**
   * Give every user a PostgreSQL login role of its own (PostgreSQL; see ../backend/login.ts).
   * Default `true`; the embedded engine, one session, has none.
   */
  loginRoles?: boolean;
}

/** See the file comment. */
export class SqlAuthStore {
  private readonly loginRoles: boolean;

  constructor(
    private readonly sql: SqlRunner,
    options: SqlAuthStoreOptions = {},
  ) {
    this.loginRoles = options.loginRoles ?? true;
  }

  /**
   * Creates (or upgrades) the schema, its tables, the idempotency records' table and functions,
   * and the server key, when missing (needs CREATE on the database, unless they exist).
   */
  async ensureSchema(): Promise<void> {
    const [r] = await this.sql.query(newestPart);
    if (!(r?.ok === true || r?.ok === 't')) await this.sql.query(schemaSql);
    const [f] = await this.sql.query(idempotencyCurrentSql);
    if (!(f?.ok === true || f?.ok === 't')) await this.sql.query(idempotencySchemaSql);
    await this.sql.query(idempotencyGrantsSql);
    await this.sql.query('INSERT INTO heliosdb.server_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING', [newServerKey()]);
  }

  /**
   * Lets a server that logs in as another role than the administrator's (`loginRole`) read users
   * and keys, keep sessions and idempotency records, and derive the users' login secrets.
   */
  async grantTo(loginRole: string): Promise<void> {
    const r = quoteIdent(loginRole);
    await this.sql.query(
      `GRANT USAGE ON SCHEMA heliosdb TO ${r}; GRANT SELECT ON heliosdb.users, heliosdb.api_keys, heliosdb.server_key TO ${r}; ` +
        `GRANT SELECT, INSERT, DELETE ON heliosdb.sessions TO ${r}; GRANT SELECT, INSERT, UPDATE, DELETE ON heliosdb.idempotency_keys TO ${r}`,
    );
  }

  /** The key login secrets derive from (undefined before the schema exists). */
  async serverKey(): Promise<string | undefined> {
    const rows = await this.read('SELECT key FROM heliosdb.server_key WHERE id = 1', []);
    return rows[0] ? String(rows[0].key) : undefined;
  }

  async findUser(name: string): Promise<UserRecord | undefined> {
    const rows = await this.read(`SELECT ${userColumns} FROM heliosdb.users u WHERE u.name = $1`, [name]);
    return rows[0] ? userOf(rows[0]) : undefined;
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    const rows = await this.read(
      `SELECT k.id, k.user_name, u.role, u.login_role, u.login_generation, k.key_hash, k.read_only, (k.revoked_at IS NOT NULL) AS revoked
         FROM heliosdb.api_keys k JOIN heliosdb.users u ON u.name = k.user_name WHERE k.id = $1`,
      [id],
    );
    const r = rows[0];
    if (!r) return undefined;
    return {
      id: String(r.id),
      user: String(r.user_name),
      role: String(r.role),
      login: loginOf(r),
      keyHash: String(r.key_hash),
      readOnly: bool(r.read_only),
      revoked: bool(r.revoked),
    };
  }

  async findSession(tokenHash: string): Promise<SessionRecord | undefined> {
    const rows = await this.read(
      `SELECT s.user_name, u.role, u.login_role, u.login_generation, (extract(epoch FROM s.expires_at) * 1000)::bigint::text AS expires_ms
         FROM heliosdb.sessions s JOIN heliosdb.users u ON u.name = s.user_name WHERE s.token_hash = $1`,
      [tokenHash],
    );
    const r = rows[0];
    return r ? { user: String(r.user_name), role: String(r.role), login: loginOf(r), expiresAtMs: Number(r.expires_ms) } : undefined;
  }

  async createSession(tokenHash: string, user: string, expiresAtMs: number): Promise<void> {
    await this.sql.query(
      'INSERT INTO heliosdb.sessions (token_hash, user_name, expires_at) VALUES ($1, $2, to_timestamp($3::float8 / 1000))',
      [tokenHash, user, expiresAtMs],
    );
  }

  async deleteSession(tokenHash: string): Promise<void> {
    await this.sql.query('DELETE FROM heliosdb.sessions WHERE token_hash = $1', [tokenHash]);
  }

  /** Deletes expired sessions. */
  async purgeSessions(): Promise<void> {
    await this.sql.query('DELETE FROM heliosdb.sessions WHERE expires_at < now()');
  }

  /**
   * Creates a user (or, with `replace`, updates its role and password: its sessions end, and a new
   * login secret replaces the old one). On PostgreSQL also creates or updates its login role: a
   * `LOGIN NOINHERIT` role that starts in `role` and is a member of nothing else.
   */
  async createUser(opts: { name: string; role: string; password?: string; replace?: boolean }): Promise<void> {
    if (!opts.name) throw new Error('a user needs a name');
    if (!opts.role) throw new Error('a user needs a PostgreSQL role (--role)');
    const hash = opts.password === undefined ? null : await hashPassword(opts.password);
    // The PostgreSQL port's SCRAM-SHA-256 needs a verifier of the password itself (see ./scram.ts).
    const verifier = opts.password === undefined ? null : scramVerifier(opts.password);
    await this.ensureSchema();
    if (!this.loginRoles) {
      const conflict = opts.replace
        ? 'ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, password_hash = EXCLUDED.password_hash, scram_verifier = EXCLUDED.scram_verifier, login_generation = heliosdb.users.login_generation + 1'
        : '';
      await this.sql.query(`INSERT INTO heliosdb.users (name, role, password_hash, scram_verifier) VALUES ($1, $2, $3, $4) ${conflict}`, [
        opts.name,
        opts.role,
        hash,
        verifier,
      ]);
      if (opts.replace) await this.sql.query('DELETE FROM heliosdb.sessions WHERE user_name = $1', [opts.name]);
      return;
    }
    const [db] = await this.sql.query('SELECT current_database() AS d');
    const login = loginRoleName(String(db.d), opts.name);
    const conflict = opts.replace
      ? 'ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, password_hash = EXCLUDED.password_hash, scram_verifier = EXCLUDED.scram_verifier, login_role = EXCLUDED.login_role, login_generation = heliosdb.users.login_generation + 1'
      : '';
    const [row] = await this.sql.query(
      `INSERT INTO heliosdb.users (name, role, password_hash, scram_verifier, login_role) VALUES ($1, $2, $3, $4, $5) ${conflict} RETURNING login_generation`,
      [opts.name, opts.role, hash, verifier, login],
    );
    if (opts.replace) await this.sql.query('DELETE FROM heliosdb.sessions WHERE user_name = $1', [opts.name]);
    await this.provisionLogin(login, opts.role, opts.name, Number(row.login_generation));
  }

  /**
   * Creates or updates a user's login role: member of `role` only, starting in it, with the secret
   * of `generation` (as a SCRAM verifier).
   */
  private async provisionLogin(login: string, role: string, user: string, generation: number): Promise<void> {
    const key = await this.serverKey();
    if (!key) throw new Error('the heliosdb schema has no server key: run heliosdb auth init');
    const l = quoteIdent(login);
    const verifier = scramVerifier(loginSecret(key, login, generation));
    const [exists] = await this.sql.query('SELECT 1 AS x FROM pg_roles WHERE rolname = $1', [login]);
    const attrs = 'LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS';
    if (!exists) await this.sql.query(`CREATE ROLE ${l} ${attrs} PASSWORD '${verifier}'`);
    else await this.sql.query(`ALTER ROLE ${l} ${attrs} PASSWORD '${verifier}'`);
    // Member of the user's role only: any other membership (from an earlier role) is revoked.
    const others = await this.sql.query(
      'SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1',
      [login],
    );
    for (const o of others) if (String(o.rolname) !== role) await this.sql.query(`REVOKE ${quoteIdent(String(o.rolname))} FROM ${l}`);
    await this.sql.query(`GRANT ${quoteIdent(role)} TO ${l}`);
    await this.sql.query(`ALTER ROLE ${l} SET role = ${quoteLiteral(role)}`);
    await this.sql.query(`COMMENT ON ROLE ${l} IS ${quoteLiteral(`HeliosDB login of user ${user}`)}`);
  }

  /**
   * Gives every user without a login role one (upgrading a store made before login roles), and
   * re-provisions the others (PostgreSQL; run by `heliosdb auth init`).
   */
  async provisionAllLogins(): Promise<number> {
    if (!this.loginRoles) return 0;
    const [db] = await this.sql.query('SELECT current_database() AS d');
    const users = await this.read(`SELECT ${userColumns} FROM heliosdb.users u`, []);
    for (const u of users) {
      const login = u.login_role == null ? loginRoleName(String(db.d), String(u.name)) : String(u.login_role);
      if (u.login_role == null) await this.sql.query('UPDATE heliosdb.users SET login_role = $2 WHERE name = $1', [u.name, login]);
      await this.provisionLogin(login, String(u.role), String(u.name), Number(u.login_generation ?? 1));
    }
    return users.length;
  }

  /**
   * Deletes a user with its keys and sessions; false when there was none. On PostgreSQL its login
   * role's backends are ended and the role dropped (objects it owns pass to the user's role).
   */
  async deleteUser(name: string): Promise<boolean> {
    const rows = await this.read('DELETE FROM heliosdb.users WHERE name = $1 RETURNING role, login_role', [name]);
    if (rows.length === 0) return false;
    const login = rows[0].login_role == null ? undefined : String(rows[0].login_role);
    if (this.loginRoles && login) {
      const [r] = await this.sql.query('SELECT 1 AS x FROM pg_roles WHERE rolname = $1', [login]);
      if (r) {
        const l = quoteIdent(login);
        // An administrator with CREATEROLE may need to become a member to end its backends and take its objects.
        await this.sql.query(`GRANT ${l} TO CURRENT_USER`).catch(() => {});
        await this.sql.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [login]).catch(() => {});
        await this.sql.query(`REASSIGN OWNED BY ${l} TO ${quoteIdent(String(rows[0].role))}`).catch(() => {});
        await this.sql.query(`DROP OWNED BY ${l}`).catch(() => {});
        await this.sql.query(`DROP ROLE ${l}`);
      }
    }
    return true;
  }

  /** Creates an API key for `user`; the key itself is returned once and never stored. */
  async createApiKey(opts: { user: string; readOnly?: boolean }): Promise<{ id: string; key: string }> {
    const id = randomBytes(8).toString('hex');
    const key = `${apiKeyPrefix}${id}_${randomBytes(32).toString('base64url')}`;
    if (!(await this.findUser(opts.user))) throw new Error(`no HeliosDB user ${JSON.stringify(opts.user)}`);
    await this.sql.query('INSERT INTO heliosdb.api_keys (id, user_name, key_hash, read_only) VALUES ($1, $2, $3, $4)', [
      id,
      opts.user,
      digest(key),
      opts.readOnly ?? false,
    ]);
    return { id, key };
  }

  /** Revokes an API key by id; false when no such unrevoked key exists. */
  async revokeApiKey(id: string): Promise<boolean> {
    const rows = await this.read('UPDATE heliosdb.api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id', [id]);
    return rows.length > 0;
  }

  /** Every user (for the in-memory mirror on the embedded engine). */
  async allUsers(): Promise<UserRecord[]> {
    const rows = await this.read(`SELECT ${userColumns} FROM heliosdb.users u`, []);
    return rows.map(userOf);
  }

  /** Every API key id. */
  async allApiKeyIds(): Promise<string[]> {
    const rows = await this.read('SELECT id FROM heliosdb.api_keys', []);
    return rows.map((r) => String(r.id));
  }

  /** A read that finds nothing while the schema does not exist yet. */
  private async read(text: string, values: unknown[]): Promise<Record<string, unknown>[]> {
    try {
      return await this.sql.query(text, values);
    } catch (e) {
      if (isMissingSchema(e)) return [];
      throw e;
    }
  }
}
