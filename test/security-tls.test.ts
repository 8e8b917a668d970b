/**
 * TLS against a real server over real TLS, on both listeners (`grpcs://` and `https://`, HTTP/2 and
 * HTTP/1.1): every client sslMode against a good certificate, one for the wrong host, an expired
 * one and one from an untrusted CA; `servername`; and mutual TLS, where the server requires a
 * client certificate from its client CA and the certificate's common name identifies a user.
 * Certificates are made at test time (test/helpers/certs.ts). TLS does not depend on the database
 * backend, so this runs on the embedded engine.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AuthenticationError, type ConnectionConfig, ConnectionError, createClient, HeliosDBError, SSLMode } from '@heliosdb/client';
import { type HeliosServer, startServer } from '../src/server/server.js';
import { type CertPair, makeTestCerts, type TestCerts } from './helpers/certs.js';

const certs: TestCerts = makeTestCerts();
after(() => certs.cleanup());

/** Whether a query through `config` succeeds; rejects with the error otherwise. */
async function works(config: ConnectionConfig): Promise<void> {
  const c = createClient({ minConnections: 0, connectTimeoutMs: 1500, timeoutMs: 5000, ...config });
  try {
    assert.deepEqual((await c.query('SELECT 1 AS n')).rows, [{ n: 1 }]);
  } finally {
    await c.close();
  }
}

async function fails(config: ConnectionConfig, check: (e: unknown) => boolean = (e) => e instanceof ConnectionError): Promise<void> {
  await assert.rejects(works(config), (e: unknown) => {
    assert.ok(check(e), `unexpected error: ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
    return true;
  });
}

function startTls(pair: CertPair, extra: Parameters<typeof startServer>[0] = {}): Promise<HeliosServer> {
  return startServer({ port: 0, httpPort: 0, logLevel: 'silent', tlsCert: pair.certFile, tlsKey: pair.keyFile, ...extra });
}

/** Both listeners; the HTTP one over HTTP/2 (ALPN h2) and HTTP/1.1. */
function endpoints(s: () => HeliosServer): [string, () => ConnectionConfig][] {
  return [
    ['grpcs', () => ({ url: s().grpcUrl })],
    ['https h2', () => ({ url: s().httpUrl! })],
    ['https 1.1', () => ({ url: s().httpUrl!, httpVersion: '1.1' })],
  ];
}

describe('TLS modes of the client against a certificate for localhost / 127.0.0.1', () => {
  let server: HeliosServer;
  before(async () => {
    server = await startTls(certs.server);
    assert.match(server.grpcUrl, /^grpcs:/);
    assert.match(server.httpUrl!, /^https:/);
  });
  after(() => server.close());
  for (const [name, ep] of endpoints(() => server)) {
    test(`${name}: verify-full (the default) with the CA; not without it`, async () => {
      await works({ ...ep(), ssl: { ca: certs.ca.cert } });
      await works({ ...ep(), sslMode: SSLMode.VERIFY_FULL, ssl: { ca: certs.ca.cert } });
      await fails({ ...ep() }); // the system store does not know the test CA
    });
    test(`${name}: verify-ca, require; servername`, async () => {
      await works({ ...ep(), ssl: { ca: certs.ca.cert, mode: 'verify-ca' } });
      await works({ ...ep(), sslMode: 'require' });
      await works({ ...ep(), ssl: { ca: certs.ca.cert, servername: 'localhost' } });
      await fails({ ...ep(), ssl: { ca: certs.ca.cert, servername: 'db.example.test' } });
    });
  }
  test('a cleartext client gets nothing from a TLS listener', async () => {
    await fails({ url: server.grpcUrl.replace('grpcs:', 'grpc:') }, (e) => e instanceof HeliosDBError);
    await fails({ url: server.httpUrl!.replace('https:', 'http:'), httpVersion: '1.1' }, (e) => e instanceof HeliosDBError);
  });
  test("sslMode 'disable' with a TLS URL is a configuration error", () => {
    assert.throws(() => createClient({ url: server.grpcUrl, sslMode: 'disable' }), /contradicts/);
  });
});

describe('a certificate for the wrong host', () => {
  let server: HeliosServer;
  before(async () => (server = await startTls(certs.wrongHost)));
  after(() => server.close());
  for (const [name, ep] of endpoints(() => server)) {
    test(`${name}: verify-full refuses it; verify-ca and require accept it`, async () => {
      await fails({ ...ep(), ssl: { ca: certs.ca.cert } });
      await works({ ...ep(), ssl: { ca: certs.ca.cert, mode: SSLMode.VERIFY_CA } });
      await works({ ...ep(), ssl: { ca: certs.ca.cert, servername: 'wrong.example.test' } });
      await works({ ...ep(), sslMode: 'require' });
    });
  }
});

describe('an expired certificate', () => {
  let server: HeliosServer;
  before(async () => (server = await startTls(certs.expired)));
  after(() => server.close());
  for (const [name, ep] of endpoints(() => server)) {
    test(`${name}: verify-full and verify-ca refuse it; require accepts it`, async () => {
      await fails({ ...ep(), ssl: { ca: certs.ca.cert } });
      await fails({ ...ep(), ssl: { ca: certs.ca.cert, mode: 'verify-ca' } });
      await works({ ...ep(), sslMode: 'require' });
    });
  }
});

describe('a certificate from a CA the client does not trust', () => {
  let server: HeliosServer;
  before(async () => (server = await startTls(certs.untrustedServer)));
  after(() => server.close());
  for (const [name, ep] of endpoints(() => server)) {
    test(`${name}: verify-ca refuses it; require accepts it`, async () => {
      await fails({ ...ep(), ssl: { ca: certs.ca.cert, mode: 'verify-ca' } });
      await works({ ...ep(), sslMode: 'require' });
    });
  }
});

describe('mutual TLS: the server requires a client certificate from its client CA', () => {
  let server: HeliosServer;
  let alice: CertPair;
  let stranger: CertPair;
  let adminKey: string;
  before(async () => {
    server = await startTls(certs.server, { tlsClientCa: certs.ca.certFile, auth: 'required' });
    alice = certs.client('alice');
    stranger = certs.client('stranger');
    await server.auth.createUser({ name: 'admin', role: 'postgres' });
    adminKey = (await server.auth.createApiKey({ user: 'admin' })).key;
    const admin = createClient({
      url: server.grpcUrl,
      minConnections: 0,
      apiKey: adminKey,
      ssl: { ca: certs.ca.cert, cert: alice.cert, key: alice.key },
    });
    await admin.execute('CREATE ROLE alice_role NOLOGIN');
    await admin.close();
    await server.auth.createUser({ name: 'alice', role: 'alice_role' });
  });
  after(() => server.close());
  for (const [name, ep] of endpoints(() => server)) {
    test(`${name}: no client certificate, or one from another CA, gets no connection`, async () => {
      await fails(
        { ...ep(), ssl: { ca: certs.ca.cert }, apiKey: adminKey },
        (e) => e instanceof HeliosDBError && !(e instanceof AuthenticationError),
      );
      const other = certs.untrustedClient('alice');
      await fails(
        { ...ep(), ssl: { ca: certs.ca.cert, cert: other.cert, key: other.key }, apiKey: adminKey },
        (e) => e instanceof HeliosDBError && !(e instanceof AuthenticationError),
      );
    });
    test(`${name}: a verified client certificate identifies its user (no other credentials)`, async () => {
      const c = createClient({ ...ep(), minConnections: 0, ssl: { ca: certs.ca.cert, cert: alice.cert, key: alice.key } });
      try {
        assert.equal((await c.queryOne<{ u: string }>('SELECT current_user AS u')).u, 'alice_role');
      } finally {
        await c.close();
      }
    });
    test(`${name}: a certificate naming no user needs other credentials`, async () => {
      await fails({ ...ep(), ssl: { ca: certs.ca.cert, cert: stranger.cert, key: stranger.key } }, (e) => e instanceof AuthenticationError);
      await works({ ...ep(), ssl: { ca: certs.ca.cert, cert: stranger.cert, key: stranger.key }, apiKey: adminKey });
    });
  }
});
