/**
 * What the authentication store keeps (users, API keys, password sessions, login roles) and the
 * interfaces the authenticator and the administration use to reach it.
 * @packageDocumentation
 */

/** A user's own PostgreSQL login role (PostgreSQL only) and the generation of its secret. */
export interface LoginRecord {
  role: string;
  generation: number;
}

/** A stored user. */
export interface UserRecord {
  name: string;
  /** PostgreSQL role the user's statements run as. */
  role: string;
  /** scrypt hash; undefined when the user has no password (API keys, OAuth, certificates only). */
  passwordHash: string | undefined;
  /**
   * SCRAM-SHA-256 verifier of the password (PostgreSQL's form), for the PostgreSQL port; undefined
   * for users whose password was set before HeliosDB kept one.
   */
  scramVerifier?: string;
  /** The login role its statements run under (PostgreSQL); undefined on the embedded engine. */
  login?: LoginRecord;
}

/** A stored API key (its secret only as a digest). */
export interface ApiKeyRecord {
  id: string;
  user: string;
  role: string;
  login?: LoginRecord;
  keyHash: string;
  readOnly: boolean;
  revoked: boolean;
}

/** A password session. */
export interface SessionRecord {
  user: string;
  role: string;
  login?: LoginRecord;
  expiresAtMs: number;
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
