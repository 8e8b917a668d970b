/**
 * The SDK over `postgres://` to heliosdb's pg port with `--auth required`, on both backends: an
 * `apiKey` with a URL that names no user logs in as `apikey` (the name the port takes keys under);
 * `user` and `password` options log in by SCRAM-SHA-256 whatever the URL names. Outcomes are
 * counted in the database.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AuthenticationError, createClient } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { pgPortServer } from './pgwire-fixture.js';

describeEachBackend("the client over postgres:// to heliosdb's pg port, with --auth required", (backend) => {
  test('apiKey without a user in the URL; user and password options; a wrong key is an AuthenticationError', async (t) => {
    const s = await pgPortServer(t, backend, { auth: true });
    const url = `postgres://localhost:${s.port}/postgres`;
    const ssl = { ca: String(s.pgConfig.ssl && typeof s.pgConfig.ssl === 'object' ? s.pgConfig.ssl.ca : '') };
    const table = s.qualify(`sdk_auth_${Date.now()}`);
    const byKey = createClient({ url, apiKey: s.keyEnv.PGPASSWORD, ssl, minConnections: 0 });
    const byPassword = createClient({
      url: `postgres://nobody@localhost:${s.port}/postgres`,
      user: s.user,
      password: s.password,
      ssl,
      minConnections: 0,
    });
    const wrong = createClient({ url, apiKey: `${s.keyEnv.PGPASSWORD}x`, ssl, minConnections: 0 });
    try {
      await byKey.execute(`CREATE TABLE ${table} (x int)`);
      await byKey.execute(`INSERT INTO ${table} VALUES (1)`);
      await byPassword.execute(`INSERT INTO ${table} VALUES (2)`);
      await assert.rejects(wrong.query('SELECT 1'), AuthenticationError);
      const rows = await s.verify(`SELECT count(*)::int AS n FROM ${table}`);
      assert.equal(rows[0]!.n, 2, 'both clients wrote');
    } finally {
      await byKey.execute(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
      await Promise.all([byKey.close(), byPassword.close(), wrong.close()]);
    }
  });
});
