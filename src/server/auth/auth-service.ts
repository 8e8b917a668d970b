/**
 * The AuthService implementation: Login (password for a session token), Logout, WhoAmI.
 *
 * Login checks the password through the authenticator's throttle (./throttle.ts): counted before
 * it is verified, slowed down (never refused) after repeated failures of the client address or of
 * the user name, and verified a few at a time, fairly between client addresses.
 * @packageDocumentation
 */
import { headers } from '@heliosdb/client/wire';
import { ErrorReason } from '@heliosdb/client/wire';
import { Code, type ServiceImpl } from '@connectrpc/connect';
import type { Logger } from 'pino';
import type { AuthService } from '@heliosdb/client/wire';
import type { CallContext } from '../call-context.js';
import { serverError } from '../errors.js';
import type { Authenticator } from './authenticator.js';
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
/** Longer user names are wrong without a look-up (no HeliosDB user name is that long in practice). */
const maxUserBytes = 256;

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
          { reason: ErrorReason.INSECURE_TRANSPORT },
        );
      }
      const malformed = !req.user || Buffer.byteLength(req.user) > maxUserBytes || Buffer.byteLength(req.password) > maxPasswordBytes;
      let user: Awaited<ReturnType<AuthData['findUser']>>;
      const ok = await authenticator.throttle.checkPassword(
        { address: peer.address, user: req.user, signal: ctx.signal, deadline: { timeoutMs: timeoutOf(ctx) } },
        async () => {
          if (malformed) return false;
          user = await data.findUser(req.user);
          // The same work whether or not the user exists and has a password.
          const matches = await verifyPassword(req.password, user?.passwordHash ?? (await dummyPasswordHash()));
          return matches && user?.passwordHash !== undefined;
        },
      );
      if (!ok || !user) {
        log.info({ user: req.user.slice(0, maxUserBytes), address: peer.address }, 'failed login');
        throw serverError(Code.Unauthenticated, 'wrong user name or password', { reason: ErrorReason.UNAUTHENTICATED });
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
        const token = /^Bearer[ ]+(\S+)/i.exec(ctx.requestHeader.get(headers.authorization) ?? '')?.[1];
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

/** The handler context's `timeoutMs()` (Connect's HandlerContext has one; the native gRPC listener's context may not). */
function timeoutOf(ctx: CallContext): (() => number | undefined) | undefined {
  const f = (ctx as CallContext & { timeoutMs?: unknown }).timeoutMs;
  return typeof f === 'function' ? () => (f as () => number | undefined).call(ctx) : undefined;
}
