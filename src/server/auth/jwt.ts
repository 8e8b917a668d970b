/**
 * OAuth 2.0 access tokens as JWTs, verified with `jose` against the identity provider's JWKS:
 * the signature (by a key from the JWKS, fetched and cached, refetched for an unknown key id), an
 * algorithm allowlist (never `none`, never HMAC with a public key), the issuer, the audience and
 * the expiry (required). One claim names the HeliosDB user.
 * @packageDocumentation
 */
import type { JWTVerifyGetKey } from 'jose';

/** Options of {@link JwtVerifier}. */
export interface JwtOptions {
  /** The identity provider's JWKS URL. */
  jwksUrl: string;
  /** Required `iss`. */
  issuer: string;
  /** Required `aud` (the token must list it). */
  audience: string;
  /** Claim naming the HeliosDB user. Default `sub`. */
  userClaim?: string;
  /** Accepted signature algorithms. Default RS256, PS256, ES256, EdDSA. */
  algorithms?: string[];
  /** Allowed clock skew, seconds. Default 30. */
  clockToleranceSec?: number;
}

/** The default algorithm allowlist: asymmetric signatures only. */
export const defaultJwtAlgorithms = ['RS256', 'PS256', 'ES256', 'EdDSA'];

/** A token that failed verification, with a reason safe to show the caller. */
export class JwtRejected extends Error {}

/** The keys could not be fetched: not the token's fault. */
export class JwksUnavailable extends Error {}

/** See the file comment. */
export class JwtVerifier {
  private jwks: JWTVerifyGetKey | undefined;
  private readonly algorithms: string[];

  constructor(private readonly opts: JwtOptions) {
    if (!opts.issuer) throw new Error('JWT verification needs an issuer (--jwt-issuer)');
    if (!opts.audience) throw new Error('JWT verification needs an audience (--jwt-audience)');
    const url = new URL(opts.jwksUrl);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`--jwks-url must be http(s), got ${opts.jwksUrl}`);
    this.algorithms = opts.algorithms?.length ? opts.algorithms : defaultJwtAlgorithms;
    if (this.algorithms.some((a) => a === 'none' || a.startsWith('HS'))) {
      throw new Error('the JWT algorithm allowlist may only hold asymmetric algorithms (no none, no HS*)');
    }
  }

  /** Verifies a token; returns the HeliosDB user it names and its expiry. Throws {@link JwtRejected}. */
  async verify(token: string): Promise<{ user: string; expiresAtMs: number }> {
    const { createRemoteJWKSet, jwtVerify, errors } = await import('jose');
    this.jwks ??= createRemoteJWKSet(new URL(this.opts.jwksUrl), { cooldownDuration: 30_000, cacheMaxAge: 600_000, timeoutDuration: 5000 });
    try {
      const { payload } = await jwtVerify(token, this.jwks, {
        issuer: this.opts.issuer,
        audience: this.opts.audience,
        algorithms: this.algorithms,
        requiredClaims: ['exp', 'iss', 'aud'],
        clockTolerance: this.opts.clockToleranceSec ?? 30,
      });
      const claim = this.opts.userClaim || 'sub';
      const user = payload[claim];
      if (typeof user !== 'string' || user === '') throw new JwtRejected(`the token has no ${claim} claim naming a user`);
      return { user, expiresAtMs: Number(payload.exp) * 1000 };
    } catch (e) {
      if (e instanceof JwtRejected) throw e;
      if (e instanceof errors.JWKSTimeout) throw new JwksUnavailable(`the JWKS at ${this.opts.jwksUrl} did not answer in time`);
      if (e instanceof errors.JOSEError) throw new JwtRejected(`invalid access token: ${e.message} (${e.code})`);
      // fetch failures (the identity provider is down or unreachable)
      throw new JwksUnavailable(`cannot fetch the JWKS at ${this.opts.jwksUrl}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}
