/**
 * Independent attack pass (docs/security.md, "Read-only API keys"): routes by which a read-only
 * key might still change something, each checked in the database. Found by the attack pass of
 * issues 11 and 12 (/work/notes/attack-report.md):
 *
 * - held: transaction control, settings and scripts in every RPC; writes hidden in COPY TO,
 *   writable CTEs and `LOCK`;
 * - broken (marked `todo`): large-object functions, which PostgreSQL 15 runs in a READ ONLY
 *   transaction, write when the key's own transaction is committed; a read-only key's
 *   transaction delivers its NOTIFYs to other principals.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClient, type HeliosDBClient } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';
import { makeUser, type SecurityFixture, startSecureServer } from './helpers/security.js';

const certs: TestCerts = makeTestCerts();
after(() => certs.cleanup());

/** Settles `p` to its value or its error. */
const settle = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    (v) => v,
    (e: unknown) => e,
  );

describeEachBackend('attack: read-only keys', (backend) => {
  const pg = backend.name === 'postgresql';
  let f: SecurityFixture;
  let writer: HeliosDBClient;
  let roWriter: HeliosDBClient; // a read-only key of a user whose role may write
  let roReader: HeliosDBClient; // a read-only key of a SELECT-only user
  const clients: HeliosDBClient[] = [];

  before(async () => {
    f = await startSecureServer(backend, certs, { authCacheMs: 100 });
    const w = await makeUser(f, 'w', f.writerRole);
    const r = await makeUser(f, 'r', f.readerRole);
    const mk = async (user: string, readOnly: boolean) => {
      const c = createClient({
        url: f.server.grpcUrl,
        apiKey: (await f.auth.createApiKey({ user, readOnly })).key,
        minConnections: 0,
        timeoutMs: 15_000,
        ...f.tlsOptions(),
      });
      clients.push(c);
      return c;
    };
    writer = await mk(w, false);
    roWriter = await mk(w, true);
    roReader = await mk(r, true);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await f?.close();
  });

  const largeObjects = async () => Number((await f.adminSql('SELECT count(*)::int AS n FROM pg_largeobject_metadata'))[0].n);
  const rows = async () => Number((await f.adminSql(`SELECT count(*)::int AS n FROM ${f.table}`))[0].n);

  test('held: transaction control, settings, scripts and hidden writes in every RPC write nothing', async () => {
    const before = await rows();
    const insert = `INSERT INTO ${f.table} VALUES (1, 'ro')`;
    const attacks: [string, () => Promise<unknown>][] = [
      ['RESET ALL then insert', () => roWriter.execute(`RESET ALL; ${insert}`)],
      ['RESET transaction_read_only', () => roWriter.execute(`RESET transaction_read_only; ${insert}`)],
      ['SET LOCAL', () => roWriter.execute(`SET LOCAL transaction_read_only = off; ${insert}`)],
      ['ABORT', () => roWriter.execute(`SELECT 1; ABORT; ${insert}`)],
      ['END', () => roWriter.execute(`END; ${insert}`)],
      ['START TRANSACTION', () => roWriter.execute(`START TRANSACTION READ WRITE; ${insert}`)],
      ['SAVEPOINT', () => roWriter.execute(`SAVEPOINT a; SET transaction_read_only = off; ${insert}`)],
      ['isolation setting', () => roWriter.execute(`SET transaction_isolation = 'serializable'; ${insert}`)],
      ['batch: ROLLBACK', () => roWriter.batch([{ sql: 'ROLLBACK' }, { sql: insert }], { atomic: false })],
      ['batch: SAVEPOINT', () => roWriter.batch([{ sql: 'SAVEPOINT s' }, { sql: insert }], { atomic: false })],
      ['atomic batch: SET', () => roWriter.batch([{ sql: 'SET transaction_read_only = off' }, { sql: insert }])],
      ['stream: SET', () => roWriter.stream(`SET transaction_read_only = off; ${insert} RETURNING id`).toArray()],
      ['dollar-quoted script', () => roWriter.query(`SELECT $$; COMMIT; ${insert}; $$ AS s`)],
      ['COPY TO of INSERT RETURNING', () => roWriter.copyTo(`COPY (${insert} RETURNING id) TO STDOUT`)[Symbol.asyncIterator]().next()],
      ['transaction: SET', () => roWriter.transaction(async (tx) => tx.execute(`SET transaction_read_only = off; ${insert}`))],
      [
        'reserved session: RESET ALL',
        async () => {
          await using s = await roWriter.reserve();
          return await s.execute(`RESET ALL; SET default_transaction_read_only = off; ${insert}`);
        },
      ],
    ];
    for (const [what, attack] of attacks) {
      const r = await settle(attack());
      const results = (r as { results?: { ok: boolean }[] } | undefined)?.results;
      if (!(r instanceof Error) && results)
        assert.ok(
          results.every((x) => !x.ok),
          `${what}: every statement refused`,
        );
      assert.equal(await rows(), before, `${what}: nothing was written`);
    }
    // The key still reads; the same user's read-write key writes.
    assert.equal((await roWriter.queryOne<{ n: number }>('SELECT 1 AS n')).n, 1);
    await writer.execute(insert);
    assert.equal(await rows(), before + 1);
  });

  test('large objects: a read-only key creates or changes none, by any route', {}, async () => {
    const base = await largeObjects();
    // Auto-commit routes: the guard's ROLLBACK undoes them (held).
    for (const c of [roWriter, roReader]) {
      await settle(c.query(`SELECT lo_from_bytea(0, 'ro query')`));
      await settle(c.batch([{ sql: `SELECT lo_from_bytea(0, 'ro batch')` }]));
    }
    assert.equal(await largeObjects(), base, 'auto-commit routes');
    // Interactive transactions: committed by commit().
    for (const c of [roWriter, roReader]) {
      await settle(c.transaction(async (tx) => tx.query(`SELECT lo_from_bytea(0, 'ro transaction')`)));
      await settle(c.transaction(async (tx) => tx.query(`SELECT lo_from_bytea(0, 'ro tx')`), { readOnly: true }));
    }
    assert.equal(await largeObjects(), base, "a read-only key's transactions created no large object");
    // An existing object of the user's role is not overwritten either.
    const [{ oid }] = await writer.query<{ oid: number }>(`SELECT lo_from_bytea(0, 'abc')::int8 AS oid`).then((r) => r.rows);
    try {
      await settle(roWriter.transaction(async (tx) => tx.query(`SELECT lo_put(${oid}, 0, 'RO')`)));
      const [{ v }] = await f.adminSql(`SELECT encode(lo_get(${oid}), 'escape') AS v`);
      assert.equal(v, 'abc', 'the large object is unchanged');
    } finally {
      await f.adminSql(`SELECT lo_unlink(${oid})`);
    }
  });

  test('notifications: a read-only key notifies nobody', {}, async () => {
    const channel = `attack_ro_${f.id}`;
    const got: string[] = [];
    const listener = await writer.listen(channel, (n) => {
      if (!n.missed) got.push(n.payload);
    });
    try {
      await settle(roReader.query(`SELECT pg_notify('${channel}', 'auto-commit')`));
      await settle(roReader.transaction(async (tx) => tx.query(`SELECT pg_notify('${channel}', 'transaction')`)));
      await settle(roReader.transaction(async (tx) => tx.execute(`NOTIFY ${channel}, 'notify statement'`)));
      // A writer's notification after them: once it arrives, any earlier one would have too.
      await writer.execute(`SELECT pg_notify('${channel}', 'marker')`);
      for (let i = 0; i < 100 && !got.includes('marker'); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(got.includes('marker'), 'the listener works');
      assert.deepEqual(
        got.filter((p) => p !== 'marker'),
        [],
        'nothing the read-only key sent was delivered',
      );
    } finally {
      await listener.unlisten();
    }
  });

  test('a claimed read writes no large object (a lost answer would create it twice)', {
    skip: pg ? false : 'PGlite (PostgreSQL 18) refuses large-object writes in a READ ONLY transaction',
  }, async () => {
    const base = await largeObjects();
    // The client sends a SELECT as a read; the server must make it one.
    await settle(writer.query(`SELECT lo_from_bytea(0, 'claimed read')`));
    await settle(writer.stream(`SELECT lo_from_bytea(0, 'claimed read stream')`).toArray());
    const made = (await largeObjects()) - base;
    await f.adminSql(`SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE lomowner = '${f.writerRole}'::regrole`);
    // A SELECT of a large-object writer is a write for client and server: it runs once, with a key.
    assert.equal(made, 2, 'each SELECT of lo_from_bytea created its large object once');
  });
});
