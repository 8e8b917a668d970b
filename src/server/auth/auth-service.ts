/**
 * The AuthService implementation: Login (password for a session token), Logout, WhoAmI.
 * @packageDocumentation
 */
import { Code, type ServiceImpl } from '@connectrpc/connect';
import type { Logger } from 'pino';
import type { AuthService } from '../../../gen/heliosdb/v1/auth_pb.js';
import type { CallContext } from '../call-context.js';
import { serverError } from '../errors.js';
import { type Authenticator, authReasons } from './authenticator.js';
import { dummyPasswordHash, verifyPassword } from './passwords.js';
import { peerKey, principalOf } from './principal.js';
import { type AuthData, digest, newSessionToken } from './store.js';

/** What the service needs. */
export interface AuthServiceDeps {
  data: AuthData;
  authenticator: Authenticator;
  /** Session token lifetime, ms. */
  sessionTtlMs: number;
  /** Accept passwords over connections without TLS (local development only). */
  allowInsecurePassword: boolean;
  log: Logger;
}

const maxPasswordBytes = 1024;

/** Builds the service. */
export function createAuthService(deps: AuthServiceDeps): ServiceImpl<typeof AuthService> {
  const { data, authenticator, log } = deps;
  return {
    async login(req, ctx: CallContext) {
      const peer = ctx.peer ?? ctx.values?.get(peerKey);
      if (!peer) throw serverError(Code.Internal, 'the listener did not describe the connection');
      if (!peer.encrypted && !deps.allowInsecurePassword) {
        throw serverError(
          Code.FailedPrecondition,
          'passwords are refused over a connection without TLS: connect with grpcs:// or https:// (the server needs --tls-cert and --tls-key), or use an API key; --allow-insecure-password permits it for local development',
          { reason: authReasons.insecureTransport },
        );
      }
      authenticator.checkLimiter(peer.address);
      if (!req.user || Buffer.byteLength(req.password) > maxPasswordBytes) {
        authenticator.limiter.fail(peer.address);
        throw serverError(Code.Unauthenticated, 'wrong user name or password', { reason: authReasons.unauthenticated });
      }
      const user = await data.findUser(req.user);
      // The same work whether or not the user exists and has a password.
      const ok = await verifyPassword(req.password, user?.passwordHash ?? (await dummyPasswordHash()));
      if (!user?.passwordHash || !ok) {
        authenticator.limiter.fail(peer.address);
        log.info({ user: req.user, address: peer.address }, 'failed login');
        throw serverError(Code.Unauthenticated, 'wrong user name or password', { reason: authReasons.unauthenticated });
      }
      const token = newSessionToken();
      const expiresAt = Date.now() + deps.sessionTtlMs;
      await data.createSession(digest(token), user.name, expiresAt);
      return { token, expiresAtUnixMs: BigInt(expiresAt), expiresInMs: BigInt(deps.sessionTtlMs) };
    },

    async logout(_req, ctx: CallContext) {
      const p = principalOf(ctx);
      if (p.sessionTokenHash) {
        await data.deleteSession(p.sessionTokenHash);
        const token = /^Bearer[ ]+(\S+)/i.exec(ctx.requestHeader.get('authorization') ?? '')?.[1];
        if (token) authenticator.evict(token);
      }
      return {};
    },

    async whoAmI(_req, ctx: CallContext) {
      const p = principalOf(ctx);
      return { user: p.user, role: p.role, method: p.method, readOnly: p.readOnly };
    },
  };
}
