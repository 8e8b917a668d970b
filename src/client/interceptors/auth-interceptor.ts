/**
 * Client credentials: the `authorization: Bearer ...` header of every call, from an API key, an
 * OAuth 2.0 access token (given, from an async provider, or fetched with the client-credentials
 * grant), or a session token from AuthService.Login (user and password). Tokens that expire are
 * renewed before they do, and once more when the server answers UNAUTHENTICATED. Browser-safe.
 * @packageDocumentation
 */
import { headers } from '../protocol/headers.js';
import { Code, ConnectError, createClient, type Interceptor, type Transport } from '@connectrpc/connect';
import { AuthService } from '../../../gen/heliosdb/v1/auth_pb.js';
import { AuthenticationError, HeliosDBError, toHeliosError } from '../errors.js';

/** A token and, when known, how long it stays valid. */
export interface AccessToken {
  token: string;
  /** Lifetime from now, ms. */
  expiresInMs?: number;
  /** Absolute expiry: ms since the epoch, or a Date. */
  expiresAt?: number | Date;
}

/** Returns a current access token (it is asked again before the last one expires, and after a rejection). */
export type TokenProvider = () => Promise<string | AccessToken> | string | AccessToken;

/** The OAuth 2.0 client-credentials grant, run by the client against the token endpoint. */
export interface ClientCredentialsOptions {
  /** The token endpoint, e.g. `https://idp.example.com/oauth/token`. */
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** Space-separated scopes. Default none. */
  scope?: string;
  /** `audience` parameter some providers want (Auth0 and others). Default none. */
  audience?: string;
  /** How the client authenticates to the endpoint: HTTP Basic (`basic`, RFC 6749's default) or form fields (`post`). Default `basic`. */
  authMethod?: 'basic' | 'post';
}

/** OAuth 2.0 bearer tokens: a fixed token, a provider, or the client-credentials grant. */
export type OAuthOptions = string | { token: string } | { tokenProvider: TokenProvider } | ClientCredentialsOptions;

/** The credential options of the client config. */
export interface CredentialOptions {
  user?: string;
  password?: string;
  apiKey?: string;
  oauth?: OAuthOptions;
}

/** Renew this long before expiry: a fifth of the lifetime, at most 30 s. */
function marginOf(lifetimeMs: number): number {
  return Math.min(30_000, lifetimeMs / 5);
}

interface Current {
  token: string;
  refreshAt: number;
  expiresAt: number;
}

/** A cached token with single-flight renewal. */
export class TokenSource {
  private current: Current | undefined;
  private pending: Promise<Current> | undefined;

  constructor(
    private readonly fetchToken: () => Promise<AccessToken>,
    /** Whether asking again can give a different token (false for a fixed key or token). */
    readonly renewable: boolean,
  ) {}

  /** A valid token: the cached one, renewed in the background when near expiry, or a fresh one. */
  async get(): Promise<string> {
    const now = Date.now();
    const c = this.current;
    if (c && now < c.refreshAt) return c.token;
    if (c && now < c.expiresAt) {
      this.renew().catch(() => {});
      return c.token;
    }
    return (await this.renew()).token;
  }

  /** Forgets `token` if it is the cached one (the server rejected it). */
  invalidate(token: string): void {
    if (this.current?.token === token) this.current = undefined;
  }

  /** The cached token, if any (for logout). */
  peek(): string | undefined {
    return this.current?.token;
  }

  private renew(): Promise<Current> {
    this.pending ??= (async () => {
      try {
        const t = await this.fetchToken();
        const now = Date.now();
        const expiresAt =
          t.expiresAt !== undefined
            ? Number(t.expiresAt instanceof Date ? t.expiresAt.getTime() : t.expiresAt)
            : t.expiresInMs !== undefined
              ? now + t.expiresInMs
              : Infinity;
        const lifetime = expiresAt - now;
        const c: Current = { token: t.token, expiresAt, refreshAt: Number.isFinite(expiresAt) ? expiresAt - marginOf(lifetime) : Infinity };
        this.current = c;
        return c;
      } finally {
        this.pending = undefined;
      }
    })();
    return this.pending;
  }
}

function normalize(t: string | AccessToken): AccessToken {
  const v = typeof t === 'string' ? { token: t } : t;
  if (!v || typeof v.token !== 'string' || v.token === '')
    throw new AuthenticationError('the OAuth token provider returned no token', 'AUTHENTICATION_FAILED');
  return v;
}

/** Runs the client-credentials grant once. */
export async function fetchClientCredentialsToken(o: ClientCredentialsOptions): Promise<AccessToken> {
  const body = new URLSearchParams({ grant_type: 'client_credentials' });
  if (o.scope) body.set('scope', o.scope);
  if (o.audience) body.set('audience', o.audience);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if ((o.authMethod ?? 'basic') === 'basic') {
    headers.authorization = `Basic ${btoa(`${encodeURIComponent(o.clientId)}:${encodeURIComponent(o.clientSecret)}`)}`;
  } else {
    body.set('client_id', o.clientId);
    body.set('client_secret', o.clientSecret);
  }
  let res: Response;
  try {
    res = await fetch(o.tokenUrl, { method: 'POST', headers, body: body.toString() });
  } catch (e) {
    throw new AuthenticationError(
      `cannot reach the OAuth token endpoint ${o.tokenUrl}: ${e instanceof Error ? e.message : String(e)}`,
      'OAUTH_TOKEN_UNAVAILABLE',
      {
        cause: e,
        retryable: true,
      },
    );
  }
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: reported below
  }
  if (!res.ok || typeof json.access_token !== 'string') {
    const why =
      typeof json.error === 'string'
        ? `${json.error}${typeof json.error_description === 'string' ? `: ${json.error_description}` : ''}`
        : text.slice(0, 200);
    throw new AuthenticationError(
      `the OAuth token endpoint refused the client credentials (HTTP ${res.status}): ${why}`,
      'OAUTH_TOKEN_REFUSED',
      {
        grpcCode: Code.Unauthenticated,
        retryable: res.status >= 500,
      },
    );
  }
  const expiresIn = Number(json.expires_in);
  return { token: json.access_token, expiresInMs: Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn * 1000 : undefined };
}

function configError(message: string): HeliosDBError {
  return new HeliosDBError(message, 'INVALID_CONFIG');
}

/** The client's credential handling: an interceptor, and the transport Login goes through. */
export interface ClientAuth {
  interceptor: Interceptor;
  /** Gives the interceptor the transport it runs on (Login is sent through it). */
  bind(transport: Transport): void;
  /** Ends a password session (best effort). */
  close(): Promise<void>;
}

/**
 * The credential interceptor for `options`; undefined without credentials. `secure` says whether
 * the connection uses TLS and `loopback` whether the server is on this machine: a password is only
 * sent over TLS or to this machine.
 */
export function createClientAuth(options: CredentialOptions, secure: boolean, loopback: boolean): ClientAuth | undefined {
  const kinds = [
    options.apiKey !== undefined,
    options.oauth !== undefined,
    options.user !== undefined || options.password !== undefined,
  ].filter(Boolean).length;
  if (kinds === 0) return undefined;
  if (kinds > 1) throw configError('give one kind of credentials: apiKey, oauth, or user and password');
  let transport: Transport | undefined;
  let source: TokenSource;
  let password = false;
  if (options.apiKey !== undefined) {
    if (!options.apiKey) throw configError('apiKey is empty');
    const key = options.apiKey;
    source = new TokenSource(async () => ({ token: key }), false);
  } else if (options.oauth !== undefined) {
    const o = options.oauth;
    if (typeof o === 'string' || 'token' in o) {
      const token = typeof o === 'string' ? o : o.token;
      if (!token) throw configError('oauth.token is empty');
      source = new TokenSource(async () => ({ token }), false);
    } else if ('tokenProvider' in o) {
      if (typeof o.tokenProvider !== 'function') throw configError('oauth.tokenProvider must be a function');
      source = new TokenSource(async () => normalize(await o.tokenProvider()), true);
    } else if ('tokenUrl' in o) {
      if (!o.tokenUrl || !o.clientId || !o.clientSecret)
        throw configError('the client-credentials grant needs oauth.tokenUrl, oauth.clientId and oauth.clientSecret');
      source = new TokenSource(() => fetchClientCredentialsToken(o), true);
    } else {
      throw configError('oauth must be a token, { token }, { tokenProvider } or { tokenUrl, clientId, clientSecret }');
    }
  } else {
    const { user, password: pw } = options;
    if (!user || pw === undefined) throw configError('password authentication needs both user and password');
    if (!secure && !loopback) {
      throw configError('refusing to send a password over a connection without TLS: use grpcs:// or https:// (or sslMode), or an API key');
    }
    password = true;
    source = new TokenSource(async () => {
      if (!transport) throw new HeliosDBError('the credential interceptor is not bound to a transport', 'INTERNAL');
      try {
        const r = await createClient(AuthService, transport).login({ user, password: pw });
        return { token: r.token, expiresInMs: Number(r.expiresInMs) };
      } catch (e) {
        throw toHeliosError(e);
      }
    }, true);
  }
  const interceptor: Interceptor = (next) => async (req) => {
    if (req.service.typeName === AuthService.typeName && req.method.name === 'Login') return next(req);
    const token = await source.get();
    req.header.set(headers.authorization, `Bearer ${token}`);
    try {
      return await next(req);
    } catch (e) {
      // Once more with a new token when the server rejected this one (expired, logged out, rotated).
      if (req.stream || !source.renewable || ConnectError.from(e).code !== Code.Unauthenticated) throw e;
      source.invalidate(token);
      const fresh = await source.get();
      if (fresh === token) throw e;
      req.header.set(headers.authorization, `Bearer ${fresh}`);
      return await next(req);
    }
  };
  return {
    interceptor,
    bind(t) {
      transport = t;
    },
    async close() {
      const token = source.peek();
      if (!password || !token || !transport) return;
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 1000);
      try {
        await createClient(AuthService, transport).logout({}, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
      } catch {
        // best effort: the session expires anyway
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
