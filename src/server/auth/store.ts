/**
 * Users, API keys and password sessions, kept durably in the backend database's `heliosdb`
 * schema, so several servers on one database share them. Secrets are never stored: passwords as
 * scrypt hashes, API keys and session tokens (random, 256 bits) as SHA-256 digests.
 *
 * The same store serves the running server (reads, sessions) and the `heliosdb user` / `heliosdb
 * apikey` commands (writes), each through its own {@link SqlRunner}.
 * @packageDocumentation
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { hashPassword } from './passwords.js';

/** Runs one SQL statement (or, without values, a script) and returns its rows. */
export interface SqlRunner {
  query(text: string, values?: unknown[]): Promise<Record<string, unknown>[]>;
}

/** A stored user. */
export interface UserRecord {
  name: string;
  /** PostgreSQL role the user's statements run as. */
  role: string;
  /** scrypt hash; undefined when the user has no password (API keys, OAuth, certificates only). */
  passwordHash: string | undefined;
}

/** A stored API key (its secret only as a digest). */
export interface ApiKeyRecord {
  id: string;
  user: string;
  role: string;
  keyHash: string;
  readOnly: boolean;
  revoked: boolean;
}

/** A password session. */
export interface SessionRecord {
  user: string;
  role: string;
  expiresAtMs: number;
}

/** The prefix of API keys (`hdb_<16 hex id>_<secret>`). */
export const apiKeyPrefix = 'hdb_';
/** The prefix of session tokens. */
export const sessionTokenPrefix = 'hdbs_';

/** SHA-256 of a high-entropy secret (API key, session token), hex. */
export function digest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Constant-time equality of two hex digests. */
export function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** Splits an API key into its public id; undefined when it does not look like one. */
export function apiKeyIdOf(key: string): string | undefined {
  const m = /^hdb_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$/.exec(key);
  return m?.[1];
}

/** A new random session token. */
export function newSessionToken(): string {
  return sessionTokenPrefix + randomBytes(32).toString('base64url');
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
REVOKE ALL ON SCHEMA heliosdb FROM PUBLIC;
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
REVOKE ALL ON ALL TABLES IN SCHEMA heliosdb FROM PUBLIC;
COMMIT;
`;

/** Quotes a PostgreSQL identifier. */
export function quoteIdent(name: string): string {
  if (name.includes('\u0000')) throw new Error('identifiers cannot contain NUL');
  return `"${name.replace(/"/g, '""')}"`;
}

/** See the file comment. */
export class SqlAuthStore {
  constructor(private readonly sql: SqlRunner) {}

  /** Creates the schema and its tables if missing (needs CREATE on the database, unless they exist). */
  async ensureSchema(): Promise<void> {
    const [r] = await this.sql.query("SELECT to_regclass('heliosdb.sessions') IS NOT NULL AS ok");
    if (r?.ok === true || r?.ok === 't') return;
    await this.sql.query(schemaSql);
  }

  /**
   * Lets the server's login role read users and keys and keep sessions (run by an administrator,
   * for a server that logs in as an unprivileged authenticator).
   */
  async grantTo(loginRole: string): Promise<void> {
    const r = quoteIdent(loginRole);
    await this.sql.query(
      `GRANT USAGE ON SCHEMA heliosdb TO ${r}; GRANT SELECT ON heliosdb.users, heliosdb.api_keys TO ${r}; ` +
        `GRANT SELECT, INSERT, DELETE ON heliosdb.sessions TO ${r}`,
    );
  }

  async findUser(name: string): Promise<UserRecord | undefined> {
    const rows = await this.read('SELECT name, role, password_hash FROM heliosdb.users WHERE name = $1', [name]);
    const r = rows[0];
    return r ? { name: String(r.name), role: String(r.role), passwordHash: r.password_hash == null ? undefined : String(r.password_hash) } : undefined;
  }

  async findApiKey(id: string): Promise<ApiKeyRecord | undefined> {
    const rows = await this.read(
      `SELECT k.id, k.user_name, u.role, k.key_hash, k.read_only, (k.revoked_at IS NOT NULL) AS revoked
         FROM heliosdb.api_keys k JOIN heliosdb.users u ON u.name = k.user_name WHERE k.id = $1`,
      [id],
    );
    const r = rows[0];
    if (!r) return undefined;
    return { id: String(r.id), user: String(r.user_name), role: String(r.role), keyHash: String(r.key_hash), readOnly: bool(r.read_only), revoked: bool(r.revoked) };
  }

  async findSession(tokenHash: string): Promise<SessionRecord | undefined> {
    const rows = await this.read(
      `SELECT s.user_name, u.role, (extract(epoch FROM s.expires_at) * 1000)::bigint::text AS expires_ms
         FROM heliosdb.sessions s JOIN heliosdb.users u ON u.name = s.user_name WHERE s.token_hash = $1`,
      [tokenHash],
    );
    const r = rows[0];
    return r ? { user: String(r.user_name), role: String(r.role), expiresAtMs: Number(r.expires_ms) } : undefined;
  }

  async createSession(tokenHash: string, user: string, expiresAtMs: number): Promise<void> {
    await this.sql.query('INSERT INTO heliosdb.sessions (token_hash, user_name, expires_at) VALUES ($1, $2, to_timestamp($3::float8 / 1000))', [
      tokenHash,
      user,
      expiresAtMs,
    ]);
  }

  async deleteSession(tokenHash: string): Promise<void> {
    await this.sql.query('DELETE FROM heliosdb.sessions WHERE token_hash = $1', [tokenHash]);
  }

  /** Deletes expired sessions. */
  async purgeSessions(): Promise<void> {
    await this.sql.query('DELETE FROM heliosdb.sessions WHERE expires_at < now()');
  }

  /** Creates a user (or, with `replace`, updates its role and password). */
  async createUser(opts: { name: string; role: string; password?: string; replace?: boolean }): Promise<void> {
    if (!opts.name) throw new Error('a user needs a name');
    if (!opts.role) throw new Error('a user needs a PostgreSQL role (--role)');
    const hash = opts.password === undefined ? null : await hashPassword(opts.password);
    await this.ensureSchema();
    const conflict = opts.replace ? 'ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, password_hash = EXCLUDED.password_hash' : '';
    await this.sql.query(`INSERT INTO heliosdb.users (name, role, password_hash) VALUES ($1, $2, $3) ${conflict}`, [opts.name, opts.role, hash]);
  }

  /** Deletes a user with its keys and sessions; false when there was none. */
  async deleteUser(name: string): Promise<boolean> {
    const rows = await this.read('DELETE FROM heliosdb.users WHERE name = $1 RETURNING name', [name]);
    return rows.length > 0;
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
    const rows = await this.read('SELECT name, role, password_hash FROM heliosdb.users', []);
    return rows.map((r) => ({ name: String(r.name), role: String(r.role), passwordHash: r.password_hash == null ? undefined : String(r.password_hash) }));
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

/** What the authenticator reads and writes. */
export interface AuthData {
  findUser(name: string): Promise<UserRecord | undefined>;
  findApiKey(id: string): Promise<ApiKeyRecord | undefined>;
  findSession(tokenHash: string): Promise<SessionRecord | undefined>;
  createSession(tokenHash: string, user: string, expiresAtMs: number): Promise<void>;
  deleteSession(tokenHash: string): Promise<void>;
}

/** Administration of users and keys, as `server.auth` exposes it. */
export interface AuthAdmin {
  createUser(opts: { name: string; role: string; password?: string; replace?: boolean }): Promise<void>;
  deleteUser(name: string): Promise<boolean>;
  createApiKey(opts: { user: string; readOnly?: boolean }): Promise<{ id: string; key: string }>;
  revokeApiKey(id: string): Promise<boolean>;
}

/**
 * The embedded engine is one database session that callers queue for, and an open transaction
 * holds it: reading credentials through it could wait behind the caller being authenticated. So
 * there users and keys are mirrored in memory (loaded at start, written through on every change,
 * which only this server can make), and password sessions live in memory only.
 */
export class MirroredAuthStore implements AuthData, AuthAdmin {
  private users = new Map<string, UserRecord>();
  private keys = new Map<string, ApiKeyRecord>();
  private readonly sessions = new Map<string, SessionRecord>();

  constructor(private readonly store: SqlAuthStore) {}

  /** Loads users and keys. */
  async load(): Promise<void> {
    const users = new Map((await this.store.allUsers()).map((u) => [u.name, u]));
    const keys = new Map<string, ApiKeyRecord>();
    for (const id of await this.store.allApiKeyIds()) {
      const k = await this.store.findApiKey(id);
      if (k) keys.set(id, k);
    }
    this.users = users;
    this.keys = keys;
  }

  async findUser(name: string) {
    return this.users.get(name);
  }
  async findApiKey(id: string) {
    return this.keys.get(id);
  }
  async findSession(tokenHash: string) {
    const s = this.sessions.get(tokenHash);
    if (s && s.expiresAtMs <= Date.now()) this.sessions.delete(tokenHash);
    return s;
  }
  async createSession(tokenHash: string, user: string, expiresAtMs: number) {
    const u = this.users.get(user);
    if (!u) throw new Error(`no user ${user}`);
    for (const [h, s] of this.sessions) if (s.expiresAtMs <= Date.now()) this.sessions.delete(h);
    this.sessions.set(tokenHash, { user, role: u.role, expiresAtMs });
  }
  async deleteSession(tokenHash: string) {
    this.sessions.delete(tokenHash);
  }

  async createUser(opts: { name: string; role: string; password?: string; replace?: boolean }) {
    await this.store.createUser(opts);
    await this.load();
  }
  async deleteUser(name: string) {
    const ok = await this.store.deleteUser(name);
    for (const [h, s] of this.sessions) if (s.user === name) this.sessions.delete(h);
    await this.load();
    return ok;
  }
  async createApiKey(opts: { user: string; readOnly?: boolean }) {
    const out = await this.store.createApiKey(opts);
    await this.load();
    return out;
  }
  async revokeApiKey(id: string) {
    const ok = await this.store.revokeApiKey(id);
    await this.load();
    return ok;
  }
}
