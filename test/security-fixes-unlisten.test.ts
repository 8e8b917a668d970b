/**
 * Attack report row 12: a writer's `UNLISTEN` that the statement policy cannot see (inside a `DO`
 * block, or a function) must not silence other principals' `client.listen()`. On PGlite, where
 * callers and the server's listener share the one session, the server listens again after the
 * call and tells the listeners `missed`; on PostgreSQL listeners have a connection of their own
 * and notice nothing.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClient, type HeliosDBClient } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';
import { makeUser, type SecurityFixture, startSecureServer } from './helpers/security.js';
import { waitFor } from './helpers/server.js';

const certs: TestCerts = makeTestCerts();
after(() => certs.cleanup());

describeEachBackend("a writer's hidden UNLISTEN does not silence other listeners (attack report row 12)", (backend) => {
  let f: SecurityFixture;
  let writer: HeliosDBClient;
  let bob: HeliosDBClient;
  let fn: string;
  before(async () => {
    f = await startSecureServer(backend, certs, { tls: false });
    const w = await makeUser(f, 'writer', f.writerRole);
    writer = createClient({ url: f.server.grpcUrl, apiKey: (await f.auth.createApiKey({ user: w })).key, minConnections: 0 });
    const b = await makeUser(f, 'bob', f.readerRole);
    bob = createClient({ url: f.server.grpcUrl, apiKey: (await f.auth.createApiKey({ user: b, readOnly: true })).key, minConnections: 0 });
    fn = `hdb_unlisten_${f.id}`;
    await f.adminSql(
      `CREATE FUNCTION ${fn}() RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'UNLISTEN *'; RETURN 1; END $$;
       GRANT EXECUTE ON FUNCTION ${fn}() TO ${f.writerRole}`,
    );
  });
  after(async () => {
    await writer?.close();
    await bob?.close();
    await f?.adminSql(`DROP FUNCTION IF EXISTS ${fn}()`).catch(() => {});
    await f?.close();
  });

  const attacks: [string, () => string][] = [
    ["DO $$ BEGIN EXECUTE 'UNLISTEN *'; END $$", () => "DO $$ BEGIN EXECUTE 'UNLISTEN *'; END $$"],
    ['a function that runs UNLISTEN *', () => `SELECT ${fn}()`],
    ['UNLISTEN * after a 70 KB comment (not parsed by the server)', () => `/* ${'x'.repeat(70_000)} */ UNLISTEN *`],
  ];
  let n = 0;
  for (const [what, sql] of attacks) {
    test(`${what}: bob's listener still receives what is sent afterwards${backend.name === 'pglite' ? ', told `missed`' : ''}`, async () => {
      n++;
      const channel = `orders_${f.id}_${n}`;
      const got: string[] = [];
      const missed: string[] = [];
      const listener = await bob.listen(channel, (x) => (x.missed ? missed.push(x.reason ?? '') : got.push(x.payload)));
      try {
        await writer.execute('SELECT pg_notify($1, $2)', [channel, 'one']);
        assert.ok(await waitFor(() => got.includes('one'), 10_000), 'the listener works');
        await writer.execute(sql());
        await writer.execute('SELECT pg_notify($1, $2)', [channel, 'two']);
        assert.ok(
          await waitFor(() => got.includes('two'), 10_000),
          `the notification after the UNLISTEN arrives (got ${JSON.stringify(got)})`,
        );
        assert.deepEqual(got, ['one', 'two']);
        if (backend.name === 'pglite') {
          assert.equal(missed.length, 1, `one missed event: ${JSON.stringify(missed)}`);
          assert.match(missed[0], /UNLISTEN/);
        } else assert.deepEqual(missed, [], 'PostgreSQL: the listener has a connection of its own');
      } finally {
        await listener.unlisten();
      }
    });
  }
});
