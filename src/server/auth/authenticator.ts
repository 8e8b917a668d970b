/**
 * Resolves the principal of every call from its credentials, for both listeners: a bearer token
 * in the `authorization` header (an API key `hdb_...`, a session token `hdbs_...` from Login, or
 * an OAuth 2.0 JWT), or else the client certificate the TLS layer verified. Verified tokens are
 * cached briefly (`cacheMs`), so revocation and logout on another server take effect within it.
 *
 * Tokens are high-entropy, so they are verified first and a valid one never waits, whatever the
 * client address did before; only failures are counted (per address, and per API key id, apart
 * from wrong passwords), and the refusal of a failure over the limit is held back (see
 * ./throttle.ts).
 * @packageDocumentation
 */
import { headers } from '@heliosdb/client/wire';
import { Code } from '@connectrpc/connect';
import type { Logger } from 'pino';
import { AuthService, ErrorReason } from '@heliosdb/client/wire';
import { Health } from '@heliosdb/client/wire';
import { serverError } from '../errors.js';
import { JwksUnavailable, JwtRejected, type JwtVerifier } from './jwt.js';
import { anonymous, type PeerInfo, type Principal } from './principal.js';
import type { AuthThrottle } from './throttle.js';
import { type AuthData, apiKeyIdOf, digest, sameDigest, sessionTokenPrefix } from './store.js';

/** What a listener tells the authenticator about a call. */
export interface CallInfo {
  /** Fully qualified service name, e.g. `heliosdb.v1.DatabaseService`. */
  service: string;
  /** Method name, e.g. `Query`. */
  method: string;
  headers: { get(name: string): string | null };
  peer: PeerInfo;
  /** Aborted when the call ends (optional: with it a held-back refusal ends with the call). */
  signal?: AbortSignal;
  /** Milliseconds left before the call's deadline (optional; else the timeout headers are read). */
  timeoutMs?: () => number | undefined;
}

/** Options of {@link Authenticator}. */
export interface AuthenticatorOptions {
  data: AuthData;
  /** `required`: every call but health checks and Login needs credentials. `none`: credentials are optional. */
  mode: 'none' | 'required';
  jwt?: JwtVerifier;
  /** How long a verified token is trusted without asking the store again, ms. */
  cacheMs: number;
  /** Counts failures and holds back refusals; shared with the AuthService's Login. */
  throttle: AuthThrottle;
  log: Logger;
}

interface Cached {
  principal: Principal;
  until: number;
}

const maxCached = 10_000;

/** See the file comment. */
export class Authenticator {
  readonly mode: 'none' | 'required';
  /** The throttle of failed authentications (Login checks passwords through it). */
  readonly throttle: AuthThrottle;
  private readonly cache = new Map<string, Cached>();

  constructor(private readonly o: AuthenticatorOptions) {
    this.mode = o.mode;
    this.throttle = o.throttle;
  }

  /** The principal of a call; throws UNAUTHENTICATED (held back after repeated failures) or RESOURCE_EXHAUSTED. */
  async authenticate(call: CallInfo): Promise<Principal> {
    if (call.service === Health.typeName) return anonymous;
    if (call.service === AuthService.typeName && call.method === 'Login') return anonymous;
    const header = call.headers.get(headers.authorization);
    if (header !== null) {
      const m = /^Bearer[ ]+([^\s,]+)\s*$/i.exec(header);
      if (!m) throw this.unauthenticated('the authorization header must be "Bearer <token>"');
      return this.bearer(m[1], call);
    }
    const cn = call.peer.certificateCommonName;
    if (cn) {
      const user = await this.o.data.findUser(cn);
      if (user)
        return this.rechecked(
          { user: user.name, role: user.role, method: 'client_certificate', readOnly: false, login: user.login },
          async () => (await this.o.data.findUser(cn)) !== undefined,
        );
      if (this.mode === 'required')
        throw this.unauthenticated(`the client certificate's common name ${JSON.stringify(cn)} names no HeliosDB user`);
    }
    if (this.mode === 'none') return anonymous;
    throw this.unauthenticated(
      'this server requires credentials: a bearer token (API key, OAuth 2.0 access token, or a session token from Login) or a client certificate',
    );
  }

  /** Forgets a cached token (logout). */
  evict(token: string): void {
    this.cache.delete(digest(token));
  }

  private async bearer(token: string, call: CallInfo): Promise<Principal> {
    const key = digest(token);
    const hit = this.cache.get(key);
    const now = Date.now();
    if (hit && hit.until > now) return hit.principal;
    if (hit) this.cache.delete(key);
    let apiKeyId: string | undefined;
    let principal: Principal | undefined;
    let until = now + this.o.cacheMs;
    let why = 'the bearer token is not valid';
    try {
      if (token.startsWith(sessionTokenPrefix)) {
        const s = await this.o.data.findSession(key);
        if (s && s.expiresAtMs > now) {
          principal = this.rechecked(
            { user: s.user, role: s.role, method: 'password', readOnly: false, sessionTokenHash: key, login: s.login },
            async () => {
              const again = await this.o.data.findSession(key);
              return again !== undefined && again.expiresAtMs > Date.now();
            },
          );
          until = Math.min(until, s.expiresAtMs);
        } else why = 'the session token is unknown or expired: log in again';
      } else if (token.startsWith('hdb_')) {
        const id = apiKeyIdOf(token);
        apiKeyId = id;
        const k = id === undefined ? undefined : await this.o.data.findApiKey(id);
        if (id !== undefined && k && !k.revoked && sameDigest(k.keyHash, key))
          principal = this.rechecked({ user: k.user, role: k.role, method: 'api_key', readOnly: k.readOnly, login: k.login }, async () => {
            const again = await this.o.data.findApiKey(id);
            return again !== undefined && !again.revoked && sameDigest(again.keyHash, key);
          });
        else why = 'the API key is unknown or revoked';
      } else if (this.o.jwt && token.split('.').length === 3) {
        const { user: name, expiresAtMs } = await this.o.jwt.verify(token);
        const u = await this.o.data.findUser(name);
        until = Math.min(until, expiresAtMs);
        if (u)
          principal = this.rechecked(
            { user: u.name, role: u.role, method: 'oauth', readOnly: false, login: u.login },
            async () => Date.now() < expiresAtMs && (await this.o.data.findUser(name)) !== undefined,
          );
        else why = `the access token names ${JSON.stringify(name)}, which is no HeliosDB user`;
      } else if (token.split('.').length === 3) {
        why = 'this server does not accept OAuth 2.0 access tokens (no --jwks-url)';
      }
    } catch (e) {
      if (e instanceof JwtRejected) why = e.message;
      else if (e instanceof JwksUnavailable) {
        this.o.log.warn({ err: e }, 'JWKS unavailable');
        throw serverError(Code.Unavailable, e.message, { reason: ErrorReason.AUTH_UNAVAILABLE, retryable: true, retryAfterMs: 1000 });
      } else {
        this.o.log.error({ err: e }, 'credential lookup failed');
        throw serverError(Code.Unavailable, 'credentials cannot be checked right now', {
          reason: ErrorReason.AUTH_UNAVAILABLE,
          retryable: true,
          retryAfterMs: 1000,
        });
      }
    }
    if (!principal) {
      const deadline = { timeoutMs: call.timeoutMs, headers: call.headers };
      return this.throttle.refuseToken({ address: call.peer.address, apiKeyId, signal: call.signal, deadline }, this.unauthenticated(why));
    }
    if (apiKeyId !== undefined) this.throttle.apiKeySucceeded(apiKeyId);
    if (this.cache.size >= maxCached) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, { principal, until });
    return principal;
  }

  /**
   * `p` with {@link Principal.stillValid}: `check` asked at most once per `cacheMs` (concurrent
   * askers share one lookup); a lookup that fails (the store is unreachable) counts as valid and
   * is retried next time.
   */
  private rechecked(p: Principal, check: () => Promise<boolean>): Principal {
    let until = Date.now() + this.o.cacheMs;
    let valid = true;
    let running: Promise<boolean> | undefined;
    const stillValid = (): Promise<boolean> => {
      if (!valid) return Promise.resolve(false);
      if (Date.now() < until) return Promise.resolve(true);
      running ??= check()
        .then(
          (ok) => {
            valid = ok;
            until = Date.now() + this.o.cacheMs;
            return ok;
          },
          (e: unknown) => {
            this.o.log.warn({ err: e }, 'credential re-check failed');
            return true;
          },
        )
        .finally(() => {
          running = undefined;
        });
      return running;
    };
    return { ...p, stillValid };
  }

  private unauthenticated(message: string) {
    return serverError(Code.Unauthenticated, message, { reason: ErrorReason.UNAUTHENTICATED });
  }
}
