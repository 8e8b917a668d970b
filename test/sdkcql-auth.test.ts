/**
 * The SDK over `cql://` against a server with `--auth required`, on both backends: an API key
 * (`apiKey`, with `user`) or a user's password (in the URL) authenticates; a read-only key's write
 * is a PermissionDeniedError and writes nothing; wrong or missing credentials are an
 * AuthenticationError.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import * as lib from '@heliosdb/client';
import { createKeyspaceCql, cqlServer, keyspaceName } from './cql-support.js';
import { backends, describeEachBackend } from './helpers/backends.js';
import { makeTestCerts } from './helpers/certs.js';
import { sdkCqlClient } from './sdkcql-support.js';

describeEachBackend('the SDK over cql:// with --auth required', (backend) => {
  test('API keys and passwords authenticate; read-only keys cannot write; bad credentials are typed', { timeout: 180_000 }, async (t) => {
    const role = `sdkcql_role_${randomBytes(4).toString('hex')}`;
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
    await f.server.auth.createUser({ name: 'cassie', role: backend.name === 'postgresql' ? role : 'postgres', password: 'correct horse' });
    f.onCleanup(async () => void (await f.server.auth.deleteUser('cassie')));
    const { key } = await f.server.auth.createApiKey({ user: 'cassie' });
    const { key: readKey } = await f.server.auth.createApiKey({ user: 'cassie', readOnly: true });
    f.verifyAs({ apiKey: key });

    const client = sdkCqlClient(f, { user: 'cassie', apiKey: key });
    const ks = keyspaceName('sdkauth');
    await client.query(createKeyspaceCql(ks));
    await client.query(`CREATE TABLE ${ks}.t (k int PRIMARY KEY, v text)`);
    await client.query(`INSERT INTO ${ks}.t (k, v) VALUES (?, ?)`, [1, 'a']);
    if (backend.name === 'postgresql') {
      assert.deepEqual(await f.verify('SELECT tableowner FROM pg_tables WHERE schemaname = $1', [ks]), [{ tableowner: role }]);
    }

    const byPassword = sdkCqlClient(f, {}, 'cassie:correct%20horse@');
    assert.deepEqual((await byPassword.query(`SELECT v FROM ${ks}.t WHERE k = ?`, [1])).rows, [{ v: 'a' }]);

    const reader = sdkCqlClient(f, { user: 'cassie', apiKey: readKey });
    assert.deepEqual((await reader.query(`SELECT v FROM ${ks}.t WHERE k = ?`, [1])).rows, [{ v: 'a' }]);
    await assert.rejects(reader.query(`INSERT INTO ${ks}.t (k, v) VALUES (?, ?)`, [2, 'b']), (e: unknown) => {
      assert.ok(e instanceof lib.PermissionDeniedError, String(e));
      assert.equal(e.code, 'PERMISSION_DENIED');
      return true;
    });
    await assert.rejects(reader.batch([{ sql: `INSERT INTO ${ks}.t (k, v) VALUES (?, ?)`, params: [3, 'c'] }]), lib.PermissionDeniedError);
    assert.deepEqual(await f.verify(`SELECT count(*)::int AS n FROM ${ks}.t`), [{ n: 1 }]);

    for (const config of [{}, { user: 'cassie', password: 'wrong' }, { user: 'someone-else', apiKey: key }]) {
      const bad = sdkCqlClient(f, config);
      await assert.rejects(bad.query(`SELECT v FROM ${ks}.t`), (e: unknown) => {
        assert.ok(e instanceof lib.AuthenticationError, `${JSON.stringify(config)}: ${String(e)}`);
        assert.equal(e.code, 'AUTHENTICATION_FAILED');
        return true;
      });
    }
  });
});

test('cql:// over TLS: ssl.ca verifies the server, and a password is accepted over it', { timeout: 120_000 }, async (t) => {
  const certs = makeTestCerts();
  t.after(() => certs.cleanup());
  const f = await cqlServer(t, backends[0], { server: { auth: 'required', tlsCert: certs.server.certFile, tlsKey: certs.server.keyFile } });
  await f.server.auth.createUser({ name: 'secure', role: 'postgres', password: 'over tls' });
  f.onCleanup(async () => void (await f.server.auth.deleteUser('secure')));
  const client = sdkCqlClient(f, { user: 'secure', password: 'over tls', ssl: { ca: certs.ca.cert, servername: 'localhost' } });
  assert.deepEqual((await client.query("SELECT key FROM system.local WHERE key = 'local'")).rows, [{ key: 'local' }]);
  // Without TLS the client cannot talk to the TLS listener; with an unknown CA it refuses the server.
  await assert.rejects(sdkCqlClient(f, { user: 'secure', password: 'over tls' }).query('SELECT key FROM system.local'), lib.HeliosDBError);
  await assert.rejects(
    sdkCqlClient(f, { user: 'secure', password: 'over tls', ssl: { ca: certs.otherCa.cert, servername: 'localhost' } }).query(
      'SELECT key FROM system.local',
    ),
    lib.HeliosDBError,
  );
});
