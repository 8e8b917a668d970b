/**
 * A stand-in OAuth 2.0 identity provider on 127.0.0.1: a JWKS endpoint and a token endpoint for the
 * client-credentials grant, signing RS256 JWTs with keys made at test time (jose).
 * @packageDocumentation
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose';

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

/** A running provider. */
export interface TestIdp {
  readonly issuer: string;
  readonly audience: string;
  readonly jwksUrl: string;
  readonly tokenUrl: string;
  /** The client the token endpoint accepts. */
  readonly clientId: string;
  readonly clientSecret: string;
  /** Tokens issued by the token endpoint. */
  tokensIssued: number;
  /** Lifetime of tokens from the token endpoint, seconds. */
  tokenLifetimeSec: number;
  /** The `sub` the token endpoint puts in its tokens. */
  subject: string;
  /** Signs a token with the published key (`kid` k1), overriding any claim or header field. */
  sign(claims?: JWTPayload, header?: { alg?: string; kid?: string }, key?: 'published' | 'unpublished'): Promise<string>;
  close(): Promise<void>;
}

/** Starts the provider. */
export async function startTestIdp(subject: string): Promise<TestIdp> {
  const published = await generateKeyPair('RS256');
  const unpublished = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(published.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
  const state = { tokensIssued: 0, tokenLifetimeSec: 3600, subject };
  let issuer = '';
  const audience = 'heliosdb-test';
  const clientId = 'test-client';
  const clientSecret = 's3cret:with/odd chars';

  async function sign(
    claims: JWTPayload = {},
    header: { alg?: string; kid?: string } = {},
    which: 'published' | 'unpublished' = 'published',
  ): Promise<string> {
    const key: Key = which === 'published' ? published.privateKey : unpublished.privateKey;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ sub: state.subject, iss: issuer, aud: audience, iat: now, exp: now + state.tokenLifetimeSec, ...claims })
      .setProtectedHeader({ alg: header.alg ?? 'RS256', kid: header.kid ?? (which === 'published' ? 'k1' : 'k2') })
      .sign(key);
  }

  const server = http.createServer((req, res) => {
    if (req.url === '/jwks') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
      return;
    }
    if (req.url === '/token' && req.method === 'POST') {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', async () => {
        const form = new URLSearchParams(body);
        const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        const [id, secret] = basic
          ? Buffer.from(basic, 'base64').toString().split(':').map(decodeURIComponent)
          : [form.get('client_id'), form.get('client_secret')];
        if (form.get('grant_type') !== 'client_credentials' || id !== clientId || secret !== clientSecret) {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'invalid_client', error_description: 'unknown client or wrong secret' }));
          return;
        }
        state.tokensIssued++;
        const token = await sign({ scope: form.get('scope') ?? undefined });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: state.tokenLifetimeSec }));
      });
      return;
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  issuer = `${base}/`;
  return Object.assign(state, {
    issuer,
    audience,
    jwksUrl: `${base}/jwks`,
    tokenUrl: `${base}/token`,
    clientId,
    clientSecret,
    sign,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
}

/** An unsigned token (`alg: none`). */
export function unsignedToken(claims: JWTPayload): string {
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
}
