/**
 * Who a PostgreSQL-port client is, by the rules of the other listeners (../auth/authenticator.ts,
 * docs/security.md). With `--auth required` the method follows the start-up user name, since
 * PostgreSQL offers one method per connection:
 *
 * - a HeliosDB user with a SCRAM-SHA-256 verifier (a password set since HeliosDB keeps one), and
 *   any other name but those below (no such user, or a user without a password): SCRAM-SHA-256
 *   (../auth/scram.ts), with or without TLS, since the password never travels. A name without a
 *   verifier plays the exchange with a mock one, so the answers do not tell whether the user
 *   exists; the proof fails with 28P01.
 * - a user whose password was kept before verifiers were, and the name {@link tokenUserName}
 *   (unless a user of that name has a verifier): AuthenticationCleartextPassword. An API key or
 *   session token there is checked as a bearer token (the user name is then not used); anything
 *   else is the named user's password, checked against its scrypt hash, refused over a connection
 *   without TLS unless `--allow-insecure-password`.
 *
 * Passwords of either kind are checked through the same throttle as Login. A client certificate
 * verified against `--tls-client-ca` identifies its user without a password. Without
 * authentication no password is asked and the client is anonymous (or its certificate's user).
 * @packageDocumentation
 */
import { ConnectError } from '@connectrpc/connect';
import { DatabaseService, headers } from '@heliosdb/client/wire';
import type { Logger } from 'pino';
import type { Authenticator } from '../auth/authenticator.js';
import { dummyPasswordHash, verifyPassword } from '../auth/passwords.js';
import type { PeerInfo, Principal } from '../auth/principal.js';
import type { AuthData, UserRecord } from '../auth/records.js';
import { mockScramVerifier, parseScramVerifier, ScramProtocolError, scramMechanism, startScram } from '../auth/scram.js';
import { authenticationSasl, authenticationSaslContinue, authenticationSaslFinal, cstringAt, ProtocolViolation } from './messages.js';

/** What authentication needs. */
export interface PgAuthDeps {
  mode: 'none' | 'required';
  authenticator: Authenticator;
  data: AuthData;
  allowInsecurePassword: boolean;
  /** Key of the mock salts of names that are no user (the same for a name while it is the same). */
  mockKey: Buffer;
  log: Logger;
}

/** How authentication talks to the client. */
export interface PgAuthConversation {
  /** Sends AuthenticationCleartextPassword; resolves with the PasswordMessage's password. */
  askPassword(): Promise<string>;
  /** Sends an authentication request; resolves with the client's next password-type ('p') message. */
  exchange(request: Buffer): Promise<Buffer>;
  /** Sends a message without waiting for an answer. */
  send(msg: Buffer): void;
}

/** The start-up user name that asks for the cleartext method when no HeliosDB user has it (API keys). */
export const tokenUserName = 'apikey';

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

/** Authenticates a client through `conversation` (see the file comment). Throws {@link PgAuthError}. */
export async function authenticatePgClient(
  deps: PgAuthDeps,
  peer: PeerInfo,
  startupUser: string,
  conversation: PgAuthConversation,
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
  const malformed = !startupUser || Buffer.byteLength(startupUser) > maxUserBytes;
  let named: UserRecord | undefined;
  try {
    named = malformed ? undefined : await deps.data.findUser(startupUser);
  } catch (e) {
    throw refusal(e);
  }
  // Cleartext for the users a SCRAM exchange cannot serve (a password kept before verifiers were),
  // and for API keys under the name tokenUserName; SCRAM for everyone else, a mock one for names
  // without a verifier (no such user, or one without a password), so the method tells nothing.
  const cleartext =
    named?.scramVerifier === undefined && (startupUser === tokenUserName || (named !== undefined && named.passwordHash !== undefined));
  if (!cleartext) return scram(deps, peer, startupUser, named?.scramVerifier ? named : undefined, conversation);
  const password = await conversation.askPassword();
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
  const tooLong = Buffer.byteLength(password) > maxPasswordBytes;
  let user: UserRecord | undefined;
  let ok: boolean;
  try {
    ok = await deps.authenticator.throttle.checkPassword({ address: peer.address, user: startupUser }, async () => {
      if (malformed || tooLong) return false;
      user = await deps.data.findUser(startupUser);
      const matches = await verifyPassword(password, user?.passwordHash ?? (await dummyPasswordHash()));
      return matches && user?.passwordHash !== undefined;
    });
  } catch (e) {
    throw refusal(e);
  }
  if (!ok || !user) throw failedLogin(deps, peer, startupUser);
  return { user: user.name, role: user.role, method: 'password', readOnly: false, login: user.login };
}

/**
 * A SCRAM-SHA-256 exchange for `startupUser` (`user` when it exists with a verifier; a mock
 * verifier otherwise). The proof is checked under the throttle once the client sent it, so a slow
 * client holds no check slot.
 */
async function scram(
  deps: PgAuthDeps,
  peer: PeerInfo,
  startupUser: string,
  user: UserRecord | undefined,
  conversation: PgAuthConversation,
): Promise<Principal> {
  const verifier = parseScramVerifier(user?.scramVerifier) ?? mockScramVerifier(deps.mockKey, startupUser);
  const initial = await conversation.exchange(authenticationSasl([scramMechanism]));
  const [mechanism, at] = cstringAt(initial, 5);
  if (mechanism !== scramMechanism)
    throw new ProtocolViolation(`the client chose SASL mechanism ${JSON.stringify(mechanism)}: the server offers ${scramMechanism}`);
  if (initial.length < at + 4) throw new ProtocolViolation('malformed SASLInitialResponse');
  const len = initial.readInt32BE(at);
  if (len < 0 || at + 4 + len !== initial.length) throw new ProtocolViolation('malformed SASLInitialResponse');
  try {
    const exchange = startScram(initial.toString('utf8', at + 4), verifier);
    const final = await conversation.exchange(authenticationSaslContinue(exchange.serverFirst));
    let serverFinal: string | undefined;
    const ok = await deps.authenticator.throttle.checkPassword({ address: peer.address, user: startupUser }, async () => {
      serverFinal = exchange.finish(final.toString('utf8', 5));
      return serverFinal !== undefined && user !== undefined;
    });
    if (!ok || !user || serverFinal === undefined) throw failedLogin(deps, peer, startupUser);
    conversation.send(authenticationSaslFinal(serverFinal));
    return { user: user.name, role: user.role, method: 'password', readOnly: false, login: user.login };
  } catch (e) {
    if (e instanceof ScramProtocolError) throw new ProtocolViolation(e.message);
    if (e instanceof ConnectError) throw refusal(e);
    throw e;
  }
}

/** Logs a failed login and makes its refusal (the same whether the user exists or not). */
function failedLogin(deps: PgAuthDeps, peer: PeerInfo, startupUser: string): PgAuthError {
  deps.log.info({ user: startupUser.slice(0, maxUserBytes), address: peer.address, listener: 'pg' }, 'failed login');
  return new PgAuthError('28P01', `password authentication failed for user ${JSON.stringify(startupUser.slice(0, maxUserBytes))}`);
}

/** A refusal of the authenticator, in PostgreSQL's terms. */
function refusal(e: unknown): PgAuthError {
  if (e instanceof PgAuthError) return e;
  const message = e instanceof ConnectError ? e.rawMessage : e instanceof Error ? e.message : String(e);
  return new PgAuthError('28P01', message);
}
