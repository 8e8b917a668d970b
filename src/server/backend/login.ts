/**
 * Who a backend connection logs in as. On PostgreSQL every HeliosDB user has a login role of its
 * own (made by `heliosdb user create`), so a caller's SQL runs under PostgreSQL's own login
 * identity: nothing it sends (`RESET ROLE`, `SET SESSION AUTHORIZATION`, functions, `DO` blocks)
 * can reach a role that login was not granted, the server's tables, or other principals'
 * backends. The login's secret is derived from the server key (`heliosdb.server_key`) and the
 * role's name, so it is never shown and never stored; PostgreSQL keeps only a SCRAM verifier.
 * @packageDocumentation
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

/** The identity a pooled backend connection is opened with. */
export interface BackendLogin {
  /** Pool key: connections are shared only between calls with the same key. */
  readonly key: string;
  /** PostgreSQL login role; undefined: the server's own login (`--database-url`). */
  readonly user?: string;
  /** The login's password (derived; see {@link loginSecret}). */
  readonly password?: string;
  /**
   * The PostgreSQL role statements run as. On PostgreSQL the login role starts in it (`ALTER ROLE
   * ... SET role`); on the embedded engine, which has one session, it is set per call.
   */
  readonly role?: string;
  /** Connections start with `default_transaction_read_only` on (read-only principals). */
  readonly readOnly: boolean;
}

/** The server's own login: anonymous callers when authentication is off, and nothing else. */
export const serverLogin: BackendLogin = Object.freeze({ key: 'server', readOnly: false });

/** The server's own login for read-only callers (no login role of their own). */
export const serverReadOnlyLogin: BackendLogin = Object.freeze({ key: 'server:ro', readOnly: true });

/** Longest PostgreSQL identifier, bytes. */
const maxIdentifierBytes = 63;

/**
 * The login role of a HeliosDB user: `hdb_<8 hex of database and user>_<user>` (the user part
 * kept when it is a plain lower-case identifier, trimmed to fit 63 bytes), unique per database
 * and user, since roles are shared by every database of a PostgreSQL cluster.
 */
export function loginRoleName(database: string, user: string): string {
  const tag = createHash('sha256').update(database).update('\u0000').update(user).digest('hex').slice(0, 8);
  const plain = /^[a-z_][a-z0-9_]*$/.test(user)
    ? user
    : user
        .toLowerCase()
        .replace(/[^a-z0-9_]+/g, '_')
        .replace(/^_+|_+$/g, '');
  return `hdb_${tag}_${plain}`.slice(0, maxIdentifierBytes).replace(/_+$/, '');
}

/** A new server key: 256 random bits, hex. */
export function newServerKey(): string {
  return randomBytes(32).toString('hex');
}

/**
 * The password of a login role: HMAC-SHA-256 of its name and generation under the server key.
 * A new generation (a credential change) gives a new password.
 */
export function loginSecret(serverKey: string, loginRole: string, generation: number): string {
  return createHmac('sha256', Buffer.from(serverKey, 'hex'))
    .update(`heliosdb login\u0000${loginRole}\u0000${generation}`)
    .digest('base64url');
}

/**
 * A SCRAM-SHA-256 verifier of `password` in the form PostgreSQL stores (RFC 7677, 4096
 * iterations), so `ALTER ROLE ... PASSWORD` never carries the password itself (nor puts it in a
 * server log).
 */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
