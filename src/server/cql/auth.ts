/**
 * Authentication of CQL connections: the server announces
 * `org.apache.cassandra.auth.PasswordAuthenticator` and reads the SASL PLAIN token the drivers
 * send (`authzid NUL user NUL password`). The password is a HeliosDB user's password (checked
 * through the same throttle as Login, and only over TLS unless --allow-insecure-password), or an
 * API key (`hdb_...`) or session token, verified by the same {@link Authenticator} as every other
 * listener's bearer tokens.
 * @packageDocumentation
 */
import { DatabaseService, headers } from '@heliosdb/client/wire';
import type { Logger } from 'pino';
import type { Authenticator } from '../auth/authenticator.js';
import { dummyPasswordHash, verifyPassword } from '../auth/passwords.js';
import type { PeerInfo, Principal } from '../auth/principal.js';
import type { AuthData, UserRecord } from '../auth/store.js';
import { CqlError, ErrorCode } from './errors.js';

/** The authenticator class CQL clients are told about. */
export const passwordAuthenticator = 'org.apache.cassandra.auth.PasswordAuthenticator';

/** What {@link CqlAuth} needs. */
export interface CqlAuthDeps {
  readonly authenticator: Authenticator;
  readonly data: AuthData;
  /** Accept passwords over connections without TLS. */
  readonly allowInsecurePassword: boolean;
  /** How long a password login is trusted before the user is looked up again, ms (`--auth-cache-ms`). Default 5000. */
  readonly authCacheMs?: number;
  readonly log: Logger;
}

const maxField = 1024;

function badCredentials(message: string): CqlError {
  return new CqlError(ErrorCode.badCredentials, message);
}

/** See the file comment. */
export class CqlAuth {
  constructor(private readonly deps: CqlAuthDeps) {}

  /** The principal of a SASL PLAIN token; throws Bad credentials (0x0100). */
  async verify(token: Buffer | null, peer: PeerInfo, signal: AbortSignal): Promise<Principal> {
    const parts = (token ?? Buffer.alloc(0)).toString('utf8').split('\u0000');
    if (parts.length !== 3) throw badCredentials('the SASL PLAIN token must be "authzid NUL user NUL password"');
    const [, user, password] = parts;
    if (user.length > maxField || password.length > maxField) throw badCredentials('the user name or password is too long');
    if (password.startsWith('hdb_') || password.startsWith('hdbs_')) {
      let principal: Principal;
      try {
        principal = await this.deps.authenticator.authenticate({
          service: DatabaseService.typeName,
          method: 'Query',
          headers: { get: (n: string) => (n === headers.authorization ? `Bearer ${password}` : null) },
          peer,
          signal,
        });
      } catch (e) {
        throw badCredentials((e as { rawMessage?: string }).rawMessage ?? 'the API key is not valid');
      }
      if (user && user !== principal.user) throw badCredentials(`the API key belongs to another user than ${JSON.stringify(user)}`);
      return principal;
    }
    if (!peer.encrypted && !this.deps.allowInsecurePassword)
      throw badCredentials(
        'passwords are refused over a connection without TLS: enable TLS (the server needs --tls-cert and --tls-key), or give an API key as the password; --allow-insecure-password permits it for local development',
      );
    let found: UserRecord | undefined;
    const ok = await this.deps.authenticator.throttle.checkPassword({ address: peer.address, user, signal }, async () => {
      found = user ? await this.deps.data.findUser(user) : undefined;
      const matches = await verifyPassword(password, found?.passwordHash ?? (await dummyPasswordHash()));
      return matches && found?.passwordHash !== undefined;
    });
    if (!ok || !found) {
      this.deps.log.info({ user: user.slice(0, 64), address: peer.address }, 'failed CQL login');
      throw badCredentials('Provided username and/or password are incorrect');
    }
    return {
      user: found.name,
      role: found.role,
      method: 'password',
      readOnly: false,
      login: found.login,
      stillValid: this.passwordStillValid(found),
    };
  }

  /**
   * Whether a password login still holds: the user exists with the same password hash and role
   * (a deleted user, `user create --replace` or a new password end it), asked at most once per
   * `authCacheMs`; a lookup that fails counts as valid and is retried next time.
   */
  private passwordStillValid(u: UserRecord): () => Promise<boolean> {
    const cacheMs = this.deps.authCacheMs ?? 5000;
    let until = Date.now() + cacheMs;
    let valid = true;
    return async () => {
      if (!valid) return false;
      if (Date.now() < until) return true;
      try {
        const now = await this.deps.data.findUser(u.name);
        valid = now !== undefined && now.passwordHash === u.passwordHash && now.role === u.role;
      } catch (e) {
        this.deps.log.warn({ err: e }, 'credential re-check failed');
        return true;
      }
      until = Date.now() + cacheMs;
      return valid;
    };
  }
}
