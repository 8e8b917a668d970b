/**
 * The first use of every feature on a fresh server, on both backends (the first transaction,
 * stream, query and keyed write as a server's very first call: fresh-server.test.ts). Features
 * share a brand-new server only where each is still the first use of its kind there (its RPC and
 * the server path behind it), and each runs within a tight limit so that a hang fails fast:
 *
 * - health, server info, `transaction(fn)`, prepare + execute, an atomic batch, COPY TO, LISTEN;
 * - a reserved session, `queryOne`, rollback (with a stream in the transaction), a non-atomic
 *   batch, DDL through execute;
 * - on tables made before the server started (outside it): COPY FROM as the first call, the sql
 *   template, `executeMany`, savepoints, a cursor;
 * - over http:// (Connect): COPY FROM as the first call, then `transaction(fn)`, a reserved
 *   session, LISTEN, a prepared statement, a batch, COPY TO;
 * - authentication required: the first calls create users and API keys (PGlite:
 *   `server.auth`; PostgreSQL: the administrator's store, as test/helpers/security.ts), then an
 *   API key's first transaction, a read-only key's first transaction and a password's first Login.
 *
 * Writes are checked in the database (rows counted outside the client under test).
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { after, test, type TestContext } from 'node:test';
import type pg from 'pg';
import { type HeliosDBClient, type Notification, PermissionDeniedError } from '@heliosdb/client';
import { pgRunner } from '../src/server/auth/setup.js';
import { SqlAuthStore } from '../src/server/auth/store.js';
import { describeEachBackend, type TestBackend } from './helpers/backends.js';
import {
  featureLimitMs,
  type FreshServer,
  freshServer,
  freshTestOptions,
  keyRecords,
  methodsOf,
  removeFreshScratch,
  tableExists,
  within,
} from './helpers/fresh.js';
import { waitFor } from './helpers/server.js';

after(() => removeFreshScratch());

/** The password of the users that log in with one. */
const password = 'correct horse battery staple';

/** Listens on a new channel, sends a notification through the client (and, on PostgreSQL, from another session), checks they arrive. */
async function listenAndNotify(t: TestContext, f: FreshServer, client: HeliosDBClient, label: string): Promise<void> {
  const got: Notification[] = [];
  const listener = await within(t, `${label}listen`, () => client.listen('fresh_channel', (n) => got.push(n)));
  try {
    await within(t, `${label}pg_notify delivered`, async () => {
      await client.execute("SELECT pg_notify('fresh_channel', 'hello')");
      await f.admin?.query("SELECT pg_notify('fresh_channel', 'from another session')");
      const expected = f.admin ? 2 : 1;
      assert.ok(await waitFor(() => got.length >= expected, featureLimitMs - 500), `${expected} notifications arrived (got ${got.length})`);
    });
    assert.deepEqual(
      got.map((n) => [n.channel, n.payload, n.missed]),
      [['fresh_channel', 'hello', false], ...(f.admin ? [['fresh_channel', 'from another session', false]] : [])],
    );
  } finally {
    await listener.unlisten();
  }
}

/** Reserves a session, sets a setting on it, reads it back, releases it; returns what it read. */
async function reserveSetRelease(client: HeliosDBClient): Promise<string> {
  const s = await client.reserve();
  await s.execute("SET heliosdb_fresh.flag = 'kept'");
  const r = await s.queryOne<{ v: string }>("SELECT current_setting('heliosdb_fresh.flag') AS v");
  await s.release();
  return r.v;
}

describeEachBackend('a fresh server: the first use of each feature', (backend) => {
  test('grpc: health, server info, transaction(fn), prepare + execute, atomic batch, COPY TO, LISTEN', freshTestOptions, async (t) => {
    const f = await freshServer(t, backend);
    t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
    const { client, calls } = f.client('grpc');
    assert.equal(await within(t, 'healthCheck', () => client.healthCheck()), true);
    assert.equal(methodsOf(calls)[0], 'Check', 'the health check was the first call');
    const info = await within(t, 'serverInfo', () => client.serverInfo());
    assert.equal(info.engine, backend.name);
    assert.ok(info.version && info.engineVersion && info.limits.maxMessageBytes > 0);

    const out = await within(t, 'transaction(fn)', () =>
      client.transaction(async (tx) => {
        await tx.execute('CREATE TABLE fresh_fn (id int PRIMARY KEY, v text)');
        await tx.execute('INSERT INTO fresh_fn VALUES ($1, $2), ($3, $4), ($5, $6)', [1, 'a', 2, 'b', 3, 'c']);
        return (await tx.queryOne<{ n: number }>('SELECT count(*)::int AS n FROM fresh_fn')).n;
      }),
    );
    assert.equal(out, 3);
    assert.equal(await f.count('fresh_fn'), 3);

    await within(t, 'prepare + execute', async () => {
      const insert = await client.prepare('INSERT INTO fresh_fn (id, v) VALUES ($1, $2)');
      assert.equal((await insert.execute([10, 'p'])).rowCount, 1);
      assert.equal((await insert.execute([11, 'q'])).rowCount, 1);
      const read = await client.prepare<{ v: string }>('SELECT v FROM fresh_fn WHERE id = $1');
      assert.deepEqual((await read.query([11])).rows, [{ v: 'q' }]);
      await insert.close();
      await read.close();
    });
    assert.equal(await f.count('fresh_fn'), 5);

    const batch = await within(t, 'atomic batch', () =>
      client.batch([
        { sql: 'CREATE TABLE fresh_batch (id int PRIMARY KEY)' },
        { sql: 'INSERT INTO fresh_batch VALUES ($1)', params: [1] },
        { sql: 'INSERT INTO fresh_batch VALUES (2), (3)' },
      ]),
    );
    assert.equal(batch.failed, 0);
    assert.equal(await f.count('fresh_batch'), 3);

    const copy = client.copyTo('COPY (SELECT 1) TO STDOUT');
    const text = await within(t, 'copyTo', async () => {
      const parts: Uint8Array[] = [];
      for await (const chunk of copy) parts.push(chunk);
      return Buffer.concat(parts).toString('utf8');
    });
    assert.equal(text, '1\n');
    assert.equal(copy.result?.rowCount, 1);

    await listenAndNotify(t, f, client, '');
  });

  test('grpc: reserve, queryOne, rollback (and a stream in a transaction), non-atomic batch, DDL', freshTestOptions, async (t) => {
    const f = await freshServer(t, backend);
    t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
    const { client, calls } = f.client('grpc');
    assert.equal(await within(t, 'reserve + SET + read back + release', () => reserveSetRelease(client)), 'kept');
    assert.equal(methodsOf(calls)[0], 'ReserveSession', 'the reservation was the first call');

    const one = await within(t, 'queryOne', () =>
      client.queryOne<{ n: number; v: string | null }>("SELECT 7 AS n, current_setting('heliosdb_fresh.flag', true) AS v"),
    );
    assert.equal(one.n, 7);
    assert.ok(one.v === null || one.v === '', `the released session's setting is gone (got ${JSON.stringify(one.v)})`);

    const streamed = await within(t, 'begin, stream in the transaction, rollback', async () => {
      const tx = await client.begin();
      await tx.execute('CREATE TABLE fresh_rolled (id int)');
      await tx.execute('INSERT INTO fresh_rolled SELECT generate_series(1, 300)');
      let rows = 0;
      for await (const _ of tx.stream('SELECT id FROM fresh_rolled')) rows++;
      await tx.rollback();
      return rows;
    });
    assert.equal(streamed, 300);
    assert.equal(await tableExists(f, 'fresh_rolled'), false, 'the rolled-back table does not exist');

    const loose = await within(t, 'non-atomic batch', () =>
      client.batch(
        [
          { sql: 'CREATE TABLE fresh_loose (id int PRIMARY KEY)' },
          { sql: 'INSERT INTO fresh_loose VALUES (1)' },
          { sql: 'INSERT INTO fresh_loose VALUES (1)' },
          { sql: 'INSERT INTO fresh_loose VALUES (2)' },
        ],
        { atomic: false },
      ),
    );
    assert.deepEqual(
      loose.results.map((r) => r.ok),
      [true, true, false, true],
    );
    assert.equal(loose.failed, 1);
    assert.equal(await f.count('fresh_loose'), 2);

    const ddl = await within(t, 'execute DDL', () => client.execute('CREATE TABLE fresh_ddl (id int PRIMARY KEY, v text)'));
    assert.equal(ddl.command, 'CREATE TABLE');
    assert.equal(await tableExists(f, 'fresh_ddl'), true);
  });

  test(
    'grpc, tables made before the server started: copyFrom, sql template, executeMany, savepoints, cursor',
    freshTestOptions,
    async (t) => {
      const f = await freshServer(t, backend, { withTables: true });
      t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
      const { client, calls } = f.client('grpc');
      const copied = await within(t, 'copyFrom', () =>
        client.copyFrom('COPY fresh_copy (id, v) FROM STDIN (FORMAT csv)', '1,a\n2,b\n3,c\n'),
      );
      assert.equal(copied.rowCount, 3);
      assert.equal(methodsOf(calls)[0], 'CopyFrom', 'the COPY was the first call');
      assert.equal(await f.count('fresh_copy'), 3);

      const { rows } = await within(
        t,
        'sql template',
        () => client.sql<{ sum: number; s: string }>`SELECT ${20}::int4 + ${22}::int4 AS sum, ${"it's"}::text AS s`,
      );
      assert.deepEqual(rows, [{ sum: 42, s: "it's" }]);

      const many = await within(t, 'executeMany', () =>
        client.executeMany(
          'INSERT INTO fresh_many (id, v) VALUES ($1, $2)',
          Array.from({ length: 100 }, (_, i) => [i, `v${i}`]),
        ),
      );
      assert.equal(many.rowCount, 100);
      assert.equal(await f.count('fresh_many'), 100);

      await within(t, 'savepoints', async () => {
        const tx = await client.begin();
        await tx.execute('INSERT INTO fresh_keyed VALUES (1, $1)', ['before']);
        const undone = await tx.savepoint();
        await tx.execute("INSERT INTO fresh_keyed VALUES (2, 'undone')");
        await undone.rollback();
        const kept = await tx.savepoint();
        await tx.execute("INSERT INTO fresh_keyed VALUES (3, 'kept')");
        await kept.release();
        await tx.commit();
      });
      assert.deepEqual(
        (await f.verify('SELECT id, v FROM fresh_keyed ORDER BY id')).map((r) => [r.id, r.v]),
        [
          [1, 'before'],
          [3, 'kept'],
        ],
      );

      const fetched = await within(t, 'cursor', async () => {
        const tx = await client.begin({ readOnly: true });
        const cursor = await tx.cursor<{ g: number }>('SELECT g::int4 AS g FROM generate_series(1, 250) g', [], { fetchSize: 100 });
        let sum = 0;
        for await (const row of cursor) sum += row.g;
        await tx.commit();
        return sum;
      });
      assert.equal(fetched, (250 * 251) / 2);
    },
  );

  test(
    'http, tables made before the server started: copyFrom, transaction(fn), reserve, LISTEN, prepare, batch, COPY TO',
    freshTestOptions,
    async (t) => {
      const f = await freshServer(t, backend, { withTables: true });
      t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
      const { client, calls } = f.client('http');
      async function* rows() {
        for (let i = 0; i < 10; i++) yield `${i}\tv${i}\n`;
      }
      const copied = await within(t, 'http: copyFrom (streamed source)', () => client.copyFrom('COPY fresh_copy FROM STDIN', rows()));
      assert.equal(copied.rowCount, 10);
      assert.equal(methodsOf(calls)[0], 'CopyFrom', 'the COPY was the first call');
      assert.equal(await f.count('fresh_copy'), 10);

      await within(t, 'http: transaction(fn)', () => client.transaction((tx) => tx.execute("INSERT INTO fresh_keyed VALUES (1, 'tx')")));
      assert.equal(await f.count('fresh_keyed'), 1);
      assert.equal(await within(t, 'http: reserve + SET + read back + release', () => reserveSetRelease(client)), 'kept');
      await listenAndNotify(t, f, client, 'http: ');
      await within(t, 'http: prepare + execute', async () => {
        const ps = await client.prepare('INSERT INTO fresh_many VALUES ($1, $2)');
        assert.equal((await ps.execute([1, 'p'])).rowCount, 1);
        await ps.close();
      });
      await within(t, 'http: batch', () =>
        client.batch([{ sql: "INSERT INTO fresh_many VALUES (2, 'b')" }, { sql: "INSERT INTO fresh_many VALUES (3, 'b')" }]),
      );
      assert.equal(await f.count('fresh_many'), 3);
      const copy = client.copyTo('COPY fresh_many TO STDOUT (FORMAT csv)');
      const lines = await within(t, 'http: copyTo', async () => {
        const parts: Uint8Array[] = [];
        for await (const chunk of copy) parts.push(chunk);
        return Buffer.concat(parts).toString('utf8').trim().split('\n').sort();
      });
      assert.deepEqual(lines, ['1,p', '2,b', '3,b']);
    },
  );

  test(
    'authentication required: the first calls create users and keys, then their first transactions and Login',
    freshTestOptions,
    async (t) => {
      if (backend.databaseUrl) return authOnPostgres(t, backend);
      const f = await freshServer(t, backend, { server: { auth: 'required', allowInsecurePassword: true } });
      t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
      const keys = await within(t, 'createUser + createApiKey (server.auth)', async () => {
        await f.server.auth.createUser({ name: 'fresh_user', role: 'postgres' });
        await f.server.auth.createUser({ name: 'fresh_pw', role: 'postgres', password });
        return {
          writer: (await f.server.auth.createApiKey({ user: 'fresh_user' })).key,
          reader: (await f.server.auth.createApiKey({ user: 'fresh_user', readOnly: true })).key,
        };
      });
      f.verifyAs({ apiKey: keys.writer });
      await authenticatedFirstUses(t, f, keys, { user: 'fresh_pw', setup: 'CREATE TABLE fresh_auth (id int PRIMARY KEY, v text)' });
    },
  );
});

/**
 * The first transaction of an API key (2 rows into fresh_auth, its commit's key recorded), of a
 * read-only key (reads; its write refused), and of a password user (Login, 2 more rows).
 */
async function authenticatedFirstUses(
  t: TestContext,
  f: FreshServer,
  keys: { writer: string; reader: string },
  opts: { user: string; setup?: string },
): Promise<void> {
  const { client, calls } = f.client('grpc', { apiKey: keys.writer });
  await within(t, 'API key: begin, insert, commit', async () => {
    const tx = await client.begin();
    if (opts.setup) await tx.execute(opts.setup);
    await tx.execute('INSERT INTO fresh_auth VALUES ($1, $2), ($3, $4)', [1, 'a', 2, 'b']);
    await tx.commit();
  });
  assert.equal(methodsOf(calls)[0], 'BeginTransaction');
  assert.equal(await f.count('fresh_auth'), 2);
  assert.equal(await keyRecords(f, calls.find((c) => c.method === 'Commit')?.idempotencyKey ?? '?'), 1, "the commit's key was recorded");

  const reader = f.client('grpc', { apiKey: keys.reader }).client;
  const refused = await within(t, 'read-only key: begin, read, refused write, rollback', async () => {
    const tx = await reader.begin();
    assert.equal((await tx.queryOne<{ n: number }>('SELECT count(*)::int AS n FROM fresh_auth')).n, 2);
    const e = await tx.execute("INSERT INTO fresh_auth VALUES (9, 'no')").then(
      () => undefined,
      (err: unknown) => err,
    );
    await tx.rollback();
    return e;
  });
  assert.ok(
    refused instanceof PermissionDeniedError && refused.sqlstate === '25006',
    `the read-only key's write was refused (got ${String(refused)})`,
  );
  assert.equal(await f.count('fresh_auth'), 2);

  const pw = f.client('grpc', { user: opts.user, password }).client;
  await within(t, 'password: Login, begin, insert, commit', async () => {
    const tx = await pw.begin();
    await tx.execute("INSERT INTO fresh_auth VALUES (3, 'c'), (4, 'd')");
    await tx.commit();
  });
  assert.equal(await f.count('fresh_auth'), 4);
}

/**
 * PostgreSQL with authentication required, set up as test/helpers/security.ts does: the server
 * logs in as an unprivileged CREATEROLE login; users and keys are written by the administrator
 * through the store; the users' role may read and insert into a table the administrator made.
 */
async function authOnPostgres(t: TestContext, backend: TestBackend): Promise<void> {
  const id = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const loginRole = `hdb_fresh_srv_${id}`;
  const writerRole = `hdb_fresh_writer_${id}`;
  let store: SqlAuthStore | undefined;
  const f = await freshServer(t, backend, {
    server: { auth: 'required', allowInsecurePassword: true },
    async beforeStart(admin, databaseUrl) {
      await admin.query(
        `CREATE ROLE ${loginRole} LOGIN CREATEROLE NOINHERIT; CREATE ROLE ${writerRole} NOLOGIN;
         CREATE TABLE fresh_auth (id int PRIMARY KEY, v text); GRANT SELECT, INSERT ON fresh_auth TO ${writerRole};`,
      );
      store = new SqlAuthStore(pgRunner(admin));
      await store.ensureSchema();
      await store.grantTo(loginRole);
      const url = new URL(databaseUrl);
      url.username = loginRole;
      url.password = '';
      return { databaseUrl: url.toString() };
    },
    async afterDrop(m: pg.Client) {
      await m.query(`DROP ROLE IF EXISTS ${loginRole}; DROP ROLE IF EXISTS ${writerRole}`);
    },
  });
  t.diagnostic(`server started in ${f.startMs.toFixed(0)} ms`);
  const admin = store!;
  const users = [`fresh_user_${id}`, `fresh_pw_${id}`] as const;
  f.onCleanup(async () => {
    for (const u of users) await admin.deleteUser(u);
  });
  const keys = await within(t, 'createUser + createApiKey (the store)', async () => {
    await admin.createUser({ name: users[0], role: writerRole });
    await admin.createUser({ name: users[1], role: writerRole, password });
    return {
      writer: (await admin.createApiKey({ user: users[0] })).key,
      reader: (await admin.createApiKey({ user: users[0], readOnly: true })).key,
    };
  });
  await authenticatedFirstUses(t, f, keys, { user: users[1] });
}
