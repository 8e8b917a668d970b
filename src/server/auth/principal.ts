/**
 * Who a call comes from, as both listeners hand it to the service: the HeliosDB user, the
 * PostgreSQL role its statements run as, and how it was identified.
 * @packageDocumentation
 */
import { type ContextValues, createContextKey } from '@connectrpc/connect';

/** How a caller was identified. */
export type AuthMethod = 'none' | 'password' | 'api_key' | 'oauth' | 'client_certificate';

/** See the file comment. */
export interface Principal {
  /** The HeliosDB user; empty for an anonymous caller (only when the server runs without authentication). */
  readonly user: string;
  /** The PostgreSQL role every statement runs as (`SET ROLE`); empty: no switch (the server's login role). */
  readonly role: string;
  readonly method: AuthMethod;
  /** Every statement runs in a READ ONLY transaction the server controls (read-only API keys). */
  readonly readOnly: boolean;
  /** SHA-256 of the session token (password logins), so Logout can end it. */
  readonly sessionTokenHash?: string;
  /**
   * On PostgreSQL: the user's own login role and the generation of its secret (see
   * ../backend/login.ts); undefined for anonymous callers, who use the server's login.
   */
  readonly login?: { readonly role: string; readonly generation: number };
  /**
   * Asks again whether the credential this principal came from still holds (the API key is not
   * revoked, the session not ended, the user not deleted, the access token not expired): at most
   * once per `--auth-cache-ms`, true meanwhile. Long-lived calls (Listen) call it while they run.
   * Undefined for anonymous callers. Resolves true when the store cannot be asked right now.
   */
  readonly stillValid?: () => Promise<boolean>;
}

/** The caller of a server without authentication that sent no credentials. */
export const anonymous: Principal = Object.freeze({ user: '', role: '', method: 'none', readOnly: false });

/** Where the HTTP listener's interceptor leaves the principal for the handler. */
export const principalKey = createContextKey<Principal | undefined>(undefined, { description: 'heliosdb principal' });

/** What a listener knows about a call's peer, beyond its headers. */
export interface PeerInfo {
  /** Remote IP address (for rate limiting failed logins). */
  readonly address: string;
  /** Whether the connection is TLS. */
  readonly encrypted: boolean;
  /** Subject common name of a client certificate the TLS layer verified against the client CA. */
  readonly certificateCommonName?: string;
}

/** Where the HTTP listener keeps the peer of a request for its interceptor. */
export const peerKey = createContextKey<PeerInfo | undefined>(undefined, { description: 'heliosdb peer' });

/** The principal of a call (set by either listener); anonymous when none was attached. */
export function principalOf(ctx: { principal?: Principal; values?: ContextValues }): Principal {
  return ctx.principal ?? ctx.values?.get(principalKey) ?? anonymous;
}

/** A key that tells principals apart for ownership of server-side state (transactions). */
export function ownerKeyOf(p: Principal): string {
  return p.user === '' ? '' : `${p.user}\u0000${p.role}\u0000${p.readOnly ? 'ro' : 'rw'}`;
}
