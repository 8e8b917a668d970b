/**
 * Authentication against a real server over real TLS, on both listeners (native gRPC `grpcs://`
 * and the HTTP listener `https://`), on every backend: API keys (hashed, revocable, read-only),
 * passwords (Login for a session token, renewed before expiry; refused without TLS), OAuth 2.0
 * (JWTs checked against a JWKS: issuer, audience, expiry, algorithm, key id; a token provider; the
 * client-credentials grant run by the client), and failed logins slowed down.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Interceptor } from '@connectrpc/connect';
import { AuthenticationError, type ConnectionConfig, createClient, type HeliosDBClient, HeliosDBError } from '@heliosdb/client';
import { startServer } from '../src/server/server.js';
import { describeEachBackend } from './helpers/backends.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';
import { startTestIdp, type TestIdp, unsignedToken } from './helpers/oauth.js';
import { makeUser, type SecurityFixture, startSecureServer } from './helpers/security.js';

const certs: TestCerts = makeTestCerts();
after(() => certs.cleanup());

/** Runs `fn` with a client for `config`, closing it afterwards. */
async function withClient<T>(config: ConnectionConfig, fn: (c: HeliosDBClient) => Promise<T>): Promise<T> {
  const c = createClient({ minConnections: 0, connectTimeoutMs: 3000, timeoutMs: 10_000, ...config });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

async function currentUser(c: HeliosDBClient): Promise<string> {
  return String((await c.queryOne<{ u: string }>('SELECT current_user AS u')).u);
}

/** Counts the Login calls a client makes. */
function loginCounter(): { interceptor: Interceptor; count: number } {
  const out = {
    count: 0,
    interceptor: ((next) => async (req) => {
      if (req.method.name === 'Login') out.count++;
      return next(req);
    }) as Interceptor,
  };
  return out;
}

describeEachBackend('authentication over TLS', (backend) => {
  let f: SecurityFixture;
  let idp: TestIdp;
  let writer: string;
  let oauthUser: string;
  before(async () => {
    idp = await startTestIdp('pending');
    f = await startSecureServer(backend, certs, {
      jwksUrl: idp.jwksUrl,
      jwtIssuer: idp.issuer,
      jwtAudience: idp.audience,
      sessionTtlMs: 2000,
      authCacheMs: 200,
      authFailureLimit: 1000,
    });
    writer = await makeUser(f, 'writer', f.writerRole, 'correct horse battery staple');
    oauthUser = await makeUser(f, 'svc', f.readerRole);
    idp.subject = oauthUser;
  });
  after(async () => {
    await f?.close();
    await idp?.close();
  });

  for (const listener of ['grpcs', 'https'] as const) {
    const url = () => (listener === 'grpcs' ? f.server.grpcUrl : f.server.httpUrl!);
    const cfg = (extra: ConnectionConfig): ConnectionConfig => ({ url: url(), ...f.tlsOptions(), ...extra });

    describe(`${listener}://`, () => {
      test('without credentials calls are refused (AuthenticationError); health checks are not', async () => {
        await withClient(cfg({}), async (c) => {
          await assert.rejects(c.query('SELECT 1'), (e: unknown) => e instanceof AuthenticationError && e.grpcCode === 16);
          assert.equal(await c.healthCheck(), true);
        });
      });

      test('an API key runs statements as its user role; a wrong or revoked key is refused', async () => {
        const { id, key } = await f.auth.createApiKey({ user: writer });
        await withClient(cfg({ apiKey: key }), async (c) => {
          assert.equal(await currentUser(c), f.writerRole);
          await c.execute(`INSERT INTO ${f.table} VALUES ($1, $2)`, [1, listener]);
        });
        await withClient(cfg({ apiKey: key.slice(0, -4) + 'AAAA' }), async (c) => {
          await assert.rejects(c.query('SELECT 1'), AuthenticationError);
        });
        assert.equal(await f.auth.revokeApiKey(id), true);
        await new Promise((r) => setTimeout(r, 300)); // authCacheMs
        await withClient(cfg({ apiKey: key }), async (c) => {
          await assert.rejects(c.query('SELECT 1'), /unknown or revoked/);
        });
      });

      test('user and password: Login gives a session token, renewed before it expires', async () => {
        const logins = loginCounter();
        await withClient(cfg({ user: writer, password: 'correct horse battery staple', interceptors: [logins.interceptor] }), async (c) => {
          assert.equal(await currentUser(c), f.writerRole);
          await c.query('SELECT 1');
          assert.equal(logins.count, 1, 'one Login for several calls');
          await new Promise((r) => setTimeout(r, 1700)); // past 80% of the 2 s session
          await c.query('SELECT 1');
          await new Promise((r) => setTimeout(r, 400)); // the first token has expired now
          assert.equal(await currentUser(c), f.writerRole);
          assert.ok(logins.count >= 2, `renewed before expiry (${logins.count} logins)`);
        });
      });

      test('a wrong password is refused', async () => {
        await withClient(cfg({ user: writer, password: 'wrong' }), async (c) => {
          await assert.rejects(
            c.query('SELECT 1'),
            (e: unknown) => e instanceof AuthenticationError && /wrong user name or password/.test(e.message),
          );
        });
        await withClient(cfg({ user: `nobody_${f.id}`, password: 'x' }), async (c) => {
          await assert.rejects(c.query('SELECT 1'), AuthenticationError);
        });
      });

      test('OAuth 2.0: a JWT from the identity provider names the user', async () => {
        const token = await idp.sign();
        await withClient(cfg({ oauth: token }), async (c) => {
          assert.equal(await currentUser(c), f.readerRole);
        });
      });

      test('OAuth 2.0: alg none, wrong issuer or audience, unknown key id, expiry, a missing exp and an HMAC algorithm are refused', async () => {
        const now = Math.floor(Date.now() / 1000);
        const bad: [string, string][] = [
          ['alg none', unsignedToken({ sub: oauthUser, iss: idp.issuer, aud: idp.audience, exp: now + 600 })],
          ['wrong issuer', await idp.sign({ iss: 'https://evil.example.test/' })],
          ['wrong audience', await idp.sign({ aud: 'another-api' })],
          ['unknown key id', await idp.sign({}, {}, 'unpublished')],
          ['published kid, other key', await idp.sign({}, { kid: 'k1' }, 'unpublished')],
          ['expired', await idp.sign({ iat: now - 7200, exp: now - 3600 })],
          ['no exp', await idp.sign({ exp: undefined })],
          ['unknown user', await idp.sign({ sub: 'somebody-else' })],
        ];
        for (const [why, token] of bad) {
          await withClient(cfg({ oauth: token }), async (c) => {
            await assert.rejects(c.query('SELECT 1'), (e: unknown) => e instanceof AuthenticationError && e.grpcCode === 16, why);
          });
        }
      });

      test('OAuth 2.0: a token provider is asked again once when the server rejects its token', async () => {
        const tokens = ['not-a-valid-token', await idp.sign()];
        let asked = 0;
        await withClient(cfg({ oauth: { tokenProvider: async () => tokens[Math.min(asked++, 1)] } }), async (c) => {
          assert.equal(await currentUser(c), f.readerRole);
          assert.equal(asked, 2);
        });
      });

      test('OAuth 2.0: the client runs the client-credentials grant, caches the token and renews it before expiry', async () => {
        idp.tokenLifetimeSec = 2;
        const issued = idp.tokensIssued;
        try {
          await withClient(
            cfg({ oauth: { tokenUrl: idp.tokenUrl, clientId: idp.clientId, clientSecret: idp.clientSecret, scope: 'db' } }),
            async (c) => {
              assert.equal(await currentUser(c), f.readerRole);
              await c.query('SELECT 1');
              assert.equal(idp.tokensIssued - issued, 1, 'one token for several calls');
              await new Promise((r) => setTimeout(r, 1700));
              await c.query('SELECT 1'); // inside the renewal margin: renewed in the background
              await new Promise((r) => setTimeout(r, 500));
              assert.equal(await currentUser(c), f.readerRole); // the first token has expired
              assert.ok(idp.tokensIssued - issued >= 2, 'renewed');
            },
          );
          await withClient(cfg({ oauth: { tokenUrl: idp.tokenUrl, clientId: idp.clientId, clientSecret: 'wrong' } }), async (c) => {
            await assert.rejects(c.query('SELECT 1'), (e: unknown) => e instanceof AuthenticationError && /invalid_client/.test(e.message));
          });
        } finally {
          idp.tokenLifetimeSec = 3600;
        }
      });
    });
  }
});

describe('passwords without TLS, credential configuration, and slowing down failed logins', () => {
  test('a password over a connection without TLS is refused unless the server allows it', async () => {
    const strict = await startServer({ port: 0, httpPort: 0, logLevel: 'silent', auth: 'required' });
    const lax = await startServer({ port: 0, httpPort: 0, logLevel: 'silent', auth: 'required', allowInsecurePassword: true });
    try {
      for (const s of [strict, lax]) await s.auth.createUser({ name: 'dev', role: 'postgres', password: 'pw' });
      for (const url of [strict.grpcUrl, strict.httpUrl!]) {
        await withClient({ url, user: 'dev', password: 'pw' }, async (c) => {
          await assert.rejects(c.query('SELECT 1'), (e: unknown) => e instanceof HeliosDBError && e.reason === 'INSECURE_TRANSPORT');
        });
      }
      for (const url of [lax.grpcUrl, lax.httpUrl!]) {
        await withClient({ url, user: 'dev', password: 'pw' }, async (c) => {
          assert.deepEqual((await c.query('SELECT 1 AS n')).rows, [{ n: 1 }]);
        });
      }
    } finally {
      await strict.close();
      await lax.close();
    }
  });

  test('the client never sends a password in clear to another machine; one kind of credentials at a time', () => {
    assert.throws(() => createClient({ url: 'grpc://db.example.test:7700', user: 'u', password: 'p' }), /without TLS/);
    assert.throws(() => createClient({ url: 'http://db.example.test:7701', user: 'u', password: 'p' }), /without TLS/);
    assert.throws(() => createClient({ url: 'grpc://127.0.0.1:1', apiKey: 'k', oauth: 't', minConnections: 0 }), /one kind of credentials/);
    assert.throws(() => createClient({ url: 'grpc://127.0.0.1:1', user: 'u', minConnections: 0 }), /both user and password/);
  });

  test('too many failed logins from one client are slowed down, on both listeners', async () => {
    const server = await startServer({
      port: 0,
      httpPort: 0,
      logLevel: 'silent',
      auth: 'required',
      tlsCert: certs.server.certFile,
      tlsKey: certs.server.keyFile,
      authFailureLimit: 3,
    });
    try {
      await server.auth.createUser({ name: 'victim', role: 'postgres', password: 'right' });
      const ssl = { ca: certs.ca.cert };
      for (let i = 0; i < 3; i++) {
        await withClient({ url: server.grpcUrl, ssl, user: 'victim', password: `guess${i}` }, async (c) => {
          await assert.rejects(c.query('SELECT 1'), AuthenticationError);
        });
      }
      // Now the right password is slowed down, then let in; a wrong API key is still refused.
      for (const url of [server.grpcUrl, server.httpUrl!]) {
        const t0 = Date.now();
        await withClient({ url, ssl, user: 'victim', password: 'right' }, async (c) => {
          assert.deepEqual((await c.query('SELECT 1 AS n')).rows, [{ n: 1 }]);
        });
        assert.ok(Date.now() - t0 >= 1000, 'slowed, then let in');
        await withClient({ url, ssl, apiKey: 'hdb_0000000000000000_' + 'A'.repeat(43) }, async (c) => {
          await assert.rejects(c.query('SELECT 1'), AuthenticationError);
        });
      }
    } finally {
      await server.close();
    }
  });
});
