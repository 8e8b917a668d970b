/**
 * Who a PostgreSQL-port client is, by the rules of the other listeners (../auth/authenticator.ts,
 * docs/security.md). With `--auth required` the client is asked for a password
 * (AuthenticationCleartextPassword): an API key or session token there is checked as a bearer
 * token (the start-up user name is then not used); anything else is the password of the HeliosDB
 * user the start-up names, checked against its stored hash through the same throttle as Login, and
 * refused over a connection without TLS unless `--allow-insecure-password`. A client certificate
 * verified against `--tls-client-ca` identifies its user without a password. Without
 * authentication no password is asked and the client is anonymous (or its certificate's user).
 *
 * SCRAM-SHA-256 is not offered: HeliosDB stores users' passwords as scrypt hashes and API keys as
 * SHA-256 digests, and SCRAM needs a PBKDF2 verifier of the password itself, so the server could
 * only answer a SCRAM exchange by keeping a second, weaker form of every secret.
 * @packageDocumentation
 */
import { ConnectError } from '@connectrpc/connect';
import { DatabaseService, headers } from '@heliosdb/client/wire';
import type { Logger } from 'pino';
import type { Authenticator } from '../auth/authenticator.js';
import { dummyPasswordHash, verifyPassword } from '../auth/passwords.js';
import type { PeerInfo, Principal } from '../auth/principal.js';
import type { AuthData, UserRecord } from '../auth/records.js';

/** What authentication needs. */
export interface PgAuthDeps {
  mode: 'none' | 'required';
  authenticator: Authenticator;
  data: AuthData;
  allowInsecurePassword: boolean;
  log: Logger;
}

/** An authentication refusal: FATAL with its SQLSTATE (28P01 wrong credentials, 28000 refused). */
export class PgAuthError extends Error {
  override readonly name = 'PgAuthError';
  constructor(
    readonly sqlstate: string,
    message: string,
  ) {
    super(message);
  }
}

const maxPasswordBytes = 1024;
const maxUserBytes = 256;

/** Whether a password is a bearer token (API key, session token, OAuth 2.0 access token). */
function isToken(pw: string): boolean {
  return pw.startsWith('hdb_') || pw.startsWith('hdbs_') || pw.split('.').length === 3;
}

/**
 * Authenticates a client; `askPassword` sends AuthenticationCleartextPassword and resolves with the
 * PasswordMessage. Throws {@link PgAuthError}.
 */
export async function authenticatePgClient(
  deps: PgAuthDeps,
  peer: PeerInfo,
  startupUser: string,
  askPassword: () => Promise<string>,
): Promise<Principal> {
  const call = (authorization: string | null) =>
    deps.authenticator.authenticate({
      service: DatabaseService.typeName,
      method: 'Query',
      headers: { get: (name: string) => (name === headers.authorization ? authorization : null) },
      peer,
    });
  try {
    if (deps.mode === 'none') return await call(null);
    if (peer.certificateCommonName) {
      const p = await call(null);
      if (p.user && (startupUser === '' || startupUser === p.user)) return p;
    }
  } catch (e) {
    throw refusal(e);
  }
  const password = await askPassword();
  if (password === '') throw new PgAuthError('28P01', 'password authentication failed: the password is empty');
  if (isToken(password)) {
    try {
      return await call(`Bearer ${password}`);
    } catch (e) {
      throw refusal(e);
    }
  }
  if (!peer.encrypted && !deps.allowInsecurePassword) {
    throw new PgAuthError(
      '28000',
      'passwords are refused over a connection without TLS: connect with sslmode=require (the server needs --tls-cert and --tls-key), or use an API key as the password; --allow-insecure-password permits it for local development',
    );
  }
  const malformed = !startupUser || Buffer.byteLength(startupUser) > maxUserBytes || Buffer.byteLength(password) > maxPasswordBytes;
  let user: UserRecord | undefined;
  let ok: boolean;
  try {
    ok = await deps.authenticator.throttle.checkPassword({ address: peer.address, user: startupUser }, async () => {
      if (malformed) return false;
      user = await deps.data.findUser(startupUser);
      const matches = await verifyPassword(password, user?.passwordHash ?? (await dummyPasswordHash()));
      return matches && user?.passwordHash !== undefined;
    });
  } catch (e) {
    throw refusal(e);
  }
  if (!ok || !user) {
    deps.log.info({ user: startupUser.slice(0, maxUserBytes), address: peer.address, listener: 'pg' }, 'failed login');
    throw new PgAuthError('28P01', `password authentication failed for user ${JSON.stringify(startupUser.slice(0, maxUserBytes))}`);
  }
  return { user: user.name, role: user.role, method: 'password', readOnly: false, login: user.login };
}

/** A refusal of the authenticator, in PostgreSQL's terms. */
function refusal(e: unknown): PgAuthError {
  if (e instanceof PgAuthError) return e;
  const message = e instanceof ConnectError ? e.rawMessage : e instanceof Error ? e.message : String(e);
  return new PgAuthError('28P01', message);
}
