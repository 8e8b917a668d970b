/**
 * CQL authentication with `--auth required`: PasswordAuthenticator over SASL PLAIN, a HeliosDB
 * user's password (only with TLS or --allow-insecure-password) or an API key as the password;
 * statements run as the user's role, as on the other listeners; a read-only key cannot write;
 * wrong credentials arrive as the driver's AuthenticationError.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import cassandra from 'cassandra-driver';
import { backends, describeEachBackend } from './helpers/backends.js';
import { makeTestCerts } from './helpers/certs.js';
import { createKeyspaceCql, cqlClient, cqlServer, keyspaceName } from './cql-support.js';

const auth = (user: string, password: string) => ({ authProvider: new cassandra.auth.PlainTextAuthProvider(user, password) });

/** Whether `e` is the driver's failure to connect because of credentials. */
function isAuthFailure(e: unknown): boolean {
  const inner = e instanceof cassandra.errors.NoHostAvailableError ? Object.values(e.innerErrors)[0] : e;
  return inner instanceof cassandra.errors.AuthenticationError;
}

describeEachBackend('CQL authentication', (backend) => {
  test('API keys and passwords authenticate; statements run as the user role; a read-only key cannot write', {
    timeout: 180_000,
  }, async (t) => {
    const role = `cql_role_${randomBytes(4).toString('hex')}`;
    const f = await cqlServer(t, backend, {
      server: { auth: 'required', allowInsecurePassword: true },
      beforeStart: async (admin, url) => {
        await admin.query(`CREATE ROLE ${role}`);
        await admin.query(`GRANT CREATE ON DATABASE ${new URL(url).pathname.slice(1)} TO ${role}`);
        return undefined;
      },
      afterDrop: async (m) => {
        await m.query(`DROP ROLE IF EXISTS ${role}`);
      },
    });
    const userRole = backend.name === 'postgresql' ? role : 'postgres';
    await f.server.auth.createUser({ name: 'cassie', role: userRole, password: 'correct horse' });
    f.onCleanup(async () => void (await f.server.auth.deleteUser('cassie')));
    const { key } = await f.server.auth.createApiKey({ user: 'cassie' });
    const { key: readKey } = await f.server.auth.createApiKey({ user: 'cassie', readOnly: true });
    f.verifyAs({ apiKey: key });

    await assert.rejects(cqlClient(t, f), isAuthFailure);
    await assert.rejects(cqlClient(t, f, auth('cassie', 'wrong')), isAuthFailure);
    await assert.rejects(cqlClient(t, f, auth('cassie', `${key.slice(0, -4)}AAAA`)), isAuthFailure);
    await assert.rejects(cqlClient(t, f, auth('someone-else', key)), isAuthFailure);

    const client = await cqlClient(t, f, auth('cassie', key));
    const ks = keyspaceName('auth');
    await client.execute(createKeyspaceCql(ks));
    await client.execute(`CREATE TABLE ${ks}.t (k int PRIMARY KEY, v text)`);
    await client.execute(`INSERT INTO ${ks}.t (k, v) VALUES (1, 'a')`);
    if (backend.name === 'postgresql') {
      assert.deepEqual(await f.verify(`SELECT tableowner FROM pg_tables WHERE schemaname = $1`, [ks]), [{ tableowner: role }]);
    }

    const byPassword = await cqlClient(t, f, auth('cassie', 'correct horse'));
    assert.equal((await byPassword.execute(`SELECT v FROM ${ks}.t WHERE k = 1`)).rows[0].v, 'a');

    const reader = await cqlClient(t, f, auth('cassie', readKey));
    assert.equal((await reader.execute(`SELECT v FROM ${ks}.t WHERE k = 1`)).rows[0].v, 'a');
    await assert.rejects(reader.execute(`INSERT INTO ${ks}.t (k, v) VALUES (2, 'b')`), (e: unknown) => {
      assert.ok(e instanceof cassandra.errors.ResponseError);
      assert.equal(e.code, cassandra.types.responseErrorCodes.unauthorized);
      return true;
    });
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.t`), [{ n: 1 }]);
  });

  test('passwords are refused without TLS unless --allow-insecure-password', { timeout: 120_000 }, async (t) => {
    const f = await cqlServer(t, backend, { server: { auth: 'required' } });
    await f.server.auth.createUser({ name: 'plain', role: 'postgres', password: 'pw' });
    f.onCleanup(async () => void (await f.server.auth.deleteUser('plain')));
    await assert.rejects(cqlClient(t, f, auth('plain', 'pw')), (e: unknown) => {
      assert.ok(isAuthFailure(e));
      assert.match(String((e as Error).message), /TLS/);
      return true;
    });
    const { key } = await f.server.auth.createApiKey({ user: 'plain' });
    const client = await cqlClient(t, f, auth('plain', key));
    assert.equal((await client.execute("SELECT key FROM system.local WHERE key = 'local'")).rows.length, 1);
  });
});

test('CQL over TLS: --tls-cert / --tls-key apply to the CQL listener, and passwords are accepted over it', {
  timeout: 120_000,
}, async (t) => {
  const certs = makeTestCerts();
  t.after(() => certs.cleanup());
  const f = await cqlServer(t, backends[0], { server: { auth: 'required', tlsCert: certs.server.certFile, tlsKey: certs.server.keyFile } });
  await f.server.auth.createUser({ name: 'secure', role: 'postgres', password: 'over tls' });
  const client = await cqlClient(t, f, { ...auth('secure', 'over tls'), sslOptions: { ca: [certs.ca.cert], servername: 'localhost' } });
  assert.equal((await client.execute("SELECT key FROM system.local WHERE key = 'local'")).rows.length, 1);
  await assert.rejects(cqlClient(t, f, auth('secure', 'over tls')), 'a plain TCP client cannot talk to the TLS listener');
});
