/**
 * The authorization boundary, attacked as a principal that sends any SQL would attack it
 * (docs/security.md, "Threat model"). Each attack asserts that it fails AND that the same
 * principal's legitimate work still succeeds, counting rows in the database:
 *
 * - identity: no statement, function or setting reaches a role the principal's login was not
 *   granted, the server's tables, other principals' statements in pg_stat_activity, or their
 *   backends (PostgreSQL: every user has a login role of its own);
 * - read-only API keys write by no route;
 * - nothing a call leaves on a connection (temporary tables, advisory locks, settings, prepared
 *   statements, cursors, search_path) reaches the next call, of another principal or its own;
 * - credential changes end sessions; per-principal limits hold;
 * - the embedded engine keeps answering while a statement runs, and a passed deadline answers at
 *   once.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  AuthenticationError,
  createClient,
  type HeliosDBClient,
  HeliosDBError,
  PermissionDeniedError,
  TimeoutError,
} from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';
import { makeUser, type SecurityFixture, startSecureServer } from './helpers/security.js';
import { waitFor } from './helpers/server.js';

const certs: TestCerts = makeTestCerts();
after(() => certs.cleanup());

/** Resolves to the error `p` rejected with (fails when it resolves). */
async function failure(p: Promise<unknown>, what: string): Promise<HeliosDBError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HeliosDBError, `${what}: a HeliosDBError (${String(e)})`);
    return e;
  }
  assert.fail(`${what}: expected a failure`);
}

describeEachBackend('authorization boundary', (backend) => {
  const pg = backend.name === 'postgresql';
  let f: SecurityFixture;
  let writer: HeliosDBClient;
  let writer2: HeliosDBClient; // another user with the same role
  let reader: HeliosDBClient;
  let ro: HeliosDBClient; // a read-only key of the writer
  let roHttp: HeliosDBClient;
  let secret: string;
  let writerName: string;
  let passwordUser: string;
  const clients: HeliosDBClient[] = [];
  const client = (config: Parameters<typeof createClient>[0] & object) => {
    const c = createClient({ minConnections: 0, timeoutMs: 15_000, ...f.tlsOptions(), ...config });
    clients.push(c);
    return c;
  };

  before(async () => {
    f = await startSecureServer(backend, certs, {
      authCacheMs: 100,
      allowInsecurePassword: false,
      maxTransactionsPerPrincipal: 3,
      maxPreparedStatements: 50,
    });
    writerName = await makeUser(f, 'writer', f.writerRole);
    const w2 = await makeUser(f, 'writer2', f.writerRole);
    const r = await makeUser(f, 'reader', f.readerRole);
    passwordUser = await makeUser(f, 'pw', f.writerRole, 'first password');
    writer = client({ url: f.server.grpcUrl, apiKey: (await f.auth.createApiKey({ user: writerName })).key });
    writer2 = client({ url: f.server.grpcUrl, apiKey: (await f.auth.createApiKey({ user: w2 })).key });
    reader = client({ url: f.server.grpcUrl, apiKey: (await f.auth.createApiKey({ user: r })).key });
    const roKey = (await f.auth.createApiKey({ user: writerName, readOnly: true })).key;
    ro = client({ url: f.server.grpcUrl, apiKey: roKey });
    roHttp = client({ url: f.server.httpUrl!, apiKey: roKey });
    secret = `secret_${f.id}`;
    await f.adminSql(`CREATE TABLE ${secret} (x int); INSERT INTO ${secret} VALUES (42)`);
    await f.adminSql(`GRANT UPDATE ON ${f.table} TO ${f.writerRole}`);
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await f?.adminSql(`DROP TABLE IF EXISTS ${secret}`).catch(() => {});
    await f?.close();
  });

  const rows = async (where = 'true') => Number((await f.adminSql(`SELECT count(*)::int AS n FROM ${f.table} WHERE ${where}`))[0].n);

  test('identity: no statement, function or setting reaches another role, the server login, or the server tables', {
    skip: pg ? false : 'PGlite is one superuser session (docs/security.md)',
  }, async () => {
    const serverTables = ['heliosdb.users', 'heliosdb.api_keys', 'heliosdb.sessions', 'heliosdb.idempotency_keys', 'heliosdb.server_key'];
    const escapes = [
      'RESET ROLE',
      'SET ROLE NONE',
      `SET ROLE ${f.readerRole}`,
      'SET ROLE postgres',
      `SET ROLE ${f.loginRole}`,
      'SET SESSION AUTHORIZATION postgres',
      `SET SESSION AUTHORIZATION ${f.loginRole}`,
      'RESET SESSION AUTHORIZATION',
      "SELECT set_config('role', 'none', false)",
      "SELECT set_config('role', 'postgres', false)",
      `SELECT set_config('session_authorization', '${f.loginRole}', false)`,
      "DO $$ BEGIN EXECUTE 'RESET ROLE'; END $$",
      "DO $$ BEGIN EXECUTE 'SET ROLE postgres'; END $$",
      `DO $$ BEGIN PERFORM set_config('role', '${f.loginRole}', false); END $$`,
      'DISCARD ALL',
    ];
    for (const attempt of escapes) {
      // The escape itself fails or gains nothing: every read of what the principal may not read
      // fails after it, in the same call (a script) and in the next call.
      for (const target of [secret, ...serverTables]) {
        await failure(writer.query(`${attempt}; SELECT * FROM ${target}`), `${attempt} then ${target}`);
        await writer.execute(attempt).catch(() => {});
        await failure(writer.query(`SELECT * FROM ${target}`), `${target} after ${attempt}`);
      }
      await failure(
        writer.execute(
          `${attempt}; INSERT INTO heliosdb.sessions (token_hash, user_name, expires_at) VALUES ('forged', '${writerName}', now() + interval '1 day')`,
        ),
        `${attempt}: forge a session`,
      );
    }
    // A temporary function or a procedure that changes the role gains nothing either.
    await writer
      .execute(
        `CREATE FUNCTION pg_temp.up() RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM set_config('role', 'postgres', true); RETURN 1; END $$`,
      )
      .catch(() => {});
    await failure(writer.query(`SELECT pg_temp.up(); SELECT * FROM ${secret}`), 'temp function');
    await failure(
      writer.execute(
        `CREATE PROCEDURE pg_temp.p() LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'SET ROLE postgres'; PERFORM count(*) FROM ${secret}; END $$; CALL pg_temp.p()`,
      ),
      'procedure',
    );
    // The statements run as the user's role, under the user's own login role.
    const who = await writer.queryOne<{ cu: string; su: string }>('SELECT current_user AS cu, session_user AS su');
    assert.equal(who.cu, f.writerRole);
    assert.notEqual(who.su, f.loginRole, 'not the server login');
    assert.match(who.su, /^hdb_[0-9a-f]{8}_writer_/);
    const [member] = await f.adminSql(
      `SELECT array_agg(r.rolname::text ORDER BY r.rolname) AS roles FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1`,
      [who.su],
    );
    assert.deepEqual(member.roles, [f.writerRole], 'the login role is a member of the user role only');
    // And legitimate work goes on.
    const before = await rows();
    await writer.execute(`INSERT INTO ${f.table} VALUES (1, 'after escapes')`);
    assert.equal(await rows(), before + 1);
    assert.equal(
      Number((await f.adminSql(`SELECT count(*)::int AS n FROM heliosdb.sessions WHERE token_hash = 'forged'`))[0].n),
      0,
      'no session was forged',
    );
  });

  test("identity: a principal sees neither other principals' statements nor can it end their backends", {
    skip: pg ? false : 'PGlite is one superuser session',
  }, async () => {
    const marker = `marker_${f.id}_literal`;
    const running = writer2.query(`SELECT pg_sleep(1.5), '${marker}' AS m`);
    await new Promise((r) => setTimeout(r, 400));
    const seen = await writer.query<{ query: string; pid: number }>(
      `SELECT pid, query FROM pg_stat_activity WHERE query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`,
      [marker.slice(0, 10)],
    );
    assert.equal(seen.rowCount, 0, 'no query text of another principal (its literal) is visible');
    const all = await writer.query<{ query: string }>(
      `SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND usename IS NOT NULL`,
    );
    assert.ok(
      all.rows.every((r) => r.query === '<insufficient privilege>' || !r.query.includes(marker)),
      'others show <insufficient privilege>',
    );
    const [target] = await f.adminSql(`SELECT pid FROM pg_stat_activity WHERE query LIKE $1 AND pid <> pg_backend_pid()`, [`%${marker}%`]);
    assert.ok(target, 'the other principal is running');
    const term = await writer.query(`SELECT pg_terminate_backend(${target.pid}) AS t`).then(
      (r) => r.rows[0],
      (e: unknown) => e,
    );
    assert.ok(term instanceof PermissionDeniedError || (term as { t?: boolean }).t === false, 'cannot end its backend');
    await failure(writer.query(`SELECT pg_cancel_backend(${target.pid})`), 'cannot cancel it either');
    const [server] = await f.adminSql(`SELECT pid FROM pg_stat_activity WHERE usename = $1 LIMIT 1`, [f.loginRole]);
    if (server) await failure(writer.query(`SELECT pg_terminate_backend(${server.pid})`), "the server's own connections are out of reach");
    await running; // the other principal's statement finished normally
  });

  test('read-only keys write by no route', async () => {
    const before = await rows();
    const insert = `INSERT INTO ${f.table} VALUES (99, 'ro')`;
    if (pg)
      await f.adminSql(
        `CREATE OR REPLACE FUNCTION public.writes_${f.id}() RETURNS int LANGUAGE sql AS $$ INSERT INTO ${f.table} VALUES (98, 'fn') RETURNING 1 $$; GRANT EXECUTE ON FUNCTION public.writes_${f.id}() TO PUBLIC`,
      );
    await f.adminSql(
      `CREATE OR REPLACE PROCEDURE public.proc_${f.id}() LANGUAGE plpgsql AS $$ BEGIN COMMIT; INSERT INTO ${f.table} VALUES (97, 'proc'); END $$`,
    );
    await f.adminSql(`CREATE SEQUENCE IF NOT EXISTS seq_${f.id}; GRANT USAGE ON SEQUENCE seq_${f.id} TO ${f.writerRole}`);
    for (const c of [ro, roHttp]) {
      const attacks: [string, () => Promise<unknown>][] = [
        ['plain insert', () => c.execute(insert)],
        ['set read-write first', () => c.execute(`SET transaction_read_only = off; ${insert}`)],
        ['set_config first', () => c.query(`SELECT set_config('transaction_read_only', 'off', false); ${insert}`)],
        ['default off then commit', () => c.execute(`SET default_transaction_read_only = off; COMMIT; ${insert}`)],
        ['commit and chain', () => c.execute(`COMMIT AND CHAIN; SET transaction_read_only = off; ${insert}`)],
        ['rollback and begin', () => c.execute(`ROLLBACK; BEGIN READ WRITE; ${insert}; COMMIT`)],
        ['session characteristics', () => c.execute(`SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; ${insert}`)],
        ['prepare transaction', () => c.execute(`PREPARE TRANSACTION 'x_${f.id}'; ${insert}`)],
        ['batch: set then insert', () => c.batch([{ sql: 'SET transaction_read_only = off' }, { sql: insert }], { atomic: false })],
        [
          'batch: commit then insert',
          () => c.batch([{ sql: 'COMMIT' }, { sql: 'SET default_transaction_read_only = off' }, { sql: insert }], { atomic: false }),
        ],
        ['DO with set_config', () => c.execute(`DO $$ BEGIN PERFORM set_config('transaction_read_only', 'off', false); ${insert}; END $$`)],
        ['DO with COMMIT', () => c.execute(`DO $$ BEGIN COMMIT; ${insert}; END $$`)],
        ['procedure that commits', () => c.execute(`CALL public.proc_${f.id}()`)],
        ['writable CTE', () => c.query(`WITH x AS (${insert} RETURNING 1) SELECT * FROM x`)],
        ['EXPLAIN ANALYZE', () => c.query(`EXPLAIN ANALYZE ${insert}`)],
        ['SELECT INTO', () => c.execute(`SELECT * INTO t_${f.id} FROM ${f.table}`)],
        ['nextval', () => c.query(`SELECT nextval('seq_${f.id}')`)],
        ['prepared insert', async () => await (await c.prepare(`INSERT INTO ${f.table} VALUES ($1, 'prep')`)).execute([96])],
        ['cursor for update', () => c.transaction(async (tx) => await (await tx.cursor(`SELECT * FROM ${f.table} FOR UPDATE`)).fetch(1))],
        ['copy from', () => c.copyFrom(`COPY ${f.table} FROM STDIN`, '95\tcopy\n')],
        ['transaction: commit in SQL', () => c.transaction(async (tx) => await tx.execute(`COMMIT; ${insert}`))],
        ['transaction: set then insert', () => c.transaction(async (tx) => await tx.execute(`SET transaction_read_only = off; ${insert}`))],
        [
          'transaction: chain',
          () =>
            c.transaction(async (tx) => {
              await tx.execute('COMMIT AND CHAIN').catch(() => {});
              return await tx.execute(insert);
            }),
        ],
        [
          'reserved session: set then insert',
          async () => {
            await using s = await c.reserve();
            await s.execute('SET default_transaction_read_only = off').catch(() => {});
            return await s.execute(insert);
          },
        ],
        [
          'reserved session: begin',
          async () => {
            await using s = await c.reserve();
            return await s.execute(`BEGIN READ WRITE; ${insert}; COMMIT`);
          },
        ],
        ...(pg
          ? ([['a SELECT of a writing function', () => c.query(`SELECT public.writes_${f.id}()`)]] as [string, () => Promise<unknown>][])
          : []),
      ];
      for (const [what, attack] of attacks) {
        const r = await attack().then(
          (v) => v,
          (e: unknown) => e,
        );
        if (!(r instanceof Error)) {
          // A non-atomic batch answers per statement: each must have failed.
          const results = (r as { results?: { ok: boolean }[] }).results;
          assert.ok(
            results?.every((x) => !x.ok),
            `${what}: refused`,
          );
        }
        assert.equal(await rows(), before, `${what}: nothing was written`);
      }
      // Reads still work, also as the session's first statement after all that.
      assert.ok((await c.query(`SELECT * FROM ${f.table}`)).rowCount >= 0);
      assert.equal((await c.queryOne<{ n: number }>('SELECT 1 AS n')).n, 1);
    }
    // The same user's read-write key writes: the key alone made the difference.
    await writer.execute(insert);
    assert.equal(await rows(), before + 1);
    await f.adminSql(`DROP PROCEDURE IF EXISTS public.proc_${f.id}(); DROP SEQUENCE IF EXISTS seq_${f.id}`);
    if (pg) await f.adminSql(`DROP FUNCTION IF EXISTS public.writes_${f.id}()`);
  });

  test("read-only keys: a transaction's commit leaves nothing behind (large objects, notifications)", async () => {
    const objects = async () => Number((await f.adminSql('SELECT count(*)::int AS n FROM pg_largeobject_metadata'))[0].n);
    const channel = `ro_${f.id}`;
    const heard: string[] = [];
    const listener = await writer.listen(channel, (n) => heard.push(n.payload));
    const lo0 = await objects();
    for (const c of [ro, roHttp]) {
      // PostgreSQL 15 lets large-object functions write in a READ ONLY transaction; PGlite refuses them.
      await c.transaction(async (tx) => tx.query("SELECT lo_from_bytea(0, 'read-only')").catch(() => undefined)).catch(() => undefined);
      await c
        .transaction(async (tx) => tx.query("SELECT lo_from_bytea(0, 'read-only')").catch(() => undefined), { readOnly: true })
        .catch(() => undefined);
      await c.transaction(async (tx) => {
        await tx.query(`SELECT pg_notify('${channel}', 'forged by a read-only key')`);
        await tx.execute(`NOTIFY ${channel}, 'forged again'`).catch(() => undefined);
      });
      // Claimed reads and auto-commit calls: refused or rolled back.
      await c.query("SELECT lo_from_bytea(0, 'read-only')").catch(() => undefined);
      await c.query(`SELECT pg_notify('${channel}', 'auto-commit')`).catch(() => undefined);
    }
    // The writer's own notification arrives, so a forged one would have too.
    await writer.execute(`SELECT pg_notify('${channel}', 'real')`);
    assert.ok(await waitFor(() => heard.includes('real'), 10_000), 'the real notification arrived');
    assert.deepEqual(heard, ['real'], 'no notification of a read-only key was delivered');
    assert.equal(await objects(), lo0, 'no large object was created');
    // A failed statement still makes commit() fail, as for any transaction.
    await assert.rejects(
      ro.transaction(async (tx) => {
        await tx.query('SELECT 1/0').catch(() => undefined);
      }),
      /rolled back/,
    );
    await listener.unlisten();
  });

  test("read-only keys: a DO block reads none of the server's tables", async () => {
    for (const table of ['heliosdb.users', 'heliosdb.api_keys']) {
      const e = await ro
        .execute(`DO $$ BEGIN EXECUTE 'RESET ROLE'; RAISE EXCEPTION 'leak: %', (SELECT count(*) FROM ${table}); END $$`)
        .then(
          () => undefined,
          (err: Error) => err,
        );
      assert.ok(e instanceof Error, 'refused');
      assert.doesNotMatch(e.message, /leak:/, `${table}: ${e.message}`);
      assert.ok(e instanceof PermissionDeniedError, `${table}: ${e.name}: ${e.message}`);
    }
  });

  test('isolation: nothing a call leaves on its connection reaches the next call, of another principal or its own', async () => {
    const orders = `orders_${f.id}`;
    await f.adminSql(
      `CREATE TABLE ${orders} (id serial PRIMARY KEY, who text); GRANT SELECT, INSERT ON ${orders} TO ${f.writerRole}, ${f.readerRole}; GRANT USAGE ON SEQUENCE ${orders}_id_seq TO ${f.writerRole}`,
    );
    try {
      // A temporary table that shadows the real one, granted to everyone, on (every) connection.
      for (let i = 0; i < 8; i++) {
        await writer.execute(
          `CREATE TEMP TABLE ${orders} (id int, who text); GRANT ALL ON ${orders} TO PUBLIC; INSERT INTO ${orders} VALUES (-1, 'trap')`,
        );
      }
      for (const c of [writer2, writer]) {
        const r = await c.queryOne<{ id: number }>(`INSERT INTO ${orders} (who) VALUES ('legit') RETURNING id`);
        assert.ok(r.id > 0, 'the insert reached the real table, not a temporary one left behind');
      }
      assert.equal(Number((await f.adminSql(`SELECT count(*)::int AS n FROM ${orders} WHERE who = 'legit'`))[0].n), 2);
      // A session advisory lock is released with its call (the connection is cleared right after
      // the answer is sent, so another connection may find it held for that round trip).
      await writer.query('SELECT pg_advisory_lock(770077)');
      for (const c of [writer2, writer]) {
        const free = async () => (await c.queryOne<{ ok: boolean }>('SELECT pg_try_advisory_lock(770077) AS ok')).ok;
        let ok = await free();
        for (let i = 0; !ok && i < 50; i++) ok = await new Promise((r) => setTimeout(r, 20)).then(free);
        assert.equal(ok, true, 'the lock was not kept');
      }
      // Settings, search_path, prepared statements and cursors do not outlive their call.
      await writer.execute(
        "SET search_path = pg_catalog; SET statement_timeout = '31s'; SET DateStyle = 'German'; SET application_name = 'trap'",
      );
      for (const c of [writer2, writer]) {
        const s = await c.queryOne<{ sp: string; ds: string; an: string; st: string }>(
          "SELECT current_setting('search_path') AS sp, current_setting('DateStyle') AS ds, current_setting('application_name') AS an, current_setting('statement_timeout') AS st",
        );
        assert.notEqual(s.sp, 'pg_catalog');
        assert.equal(s.ds, 'ISO, MDY');
        assert.notEqual(s.an, 'trap');
        assert.notEqual(s.st, '31s');
      }
      await writer.execute(`PREPARE trap_${f.id} AS SELECT 1`);
      await failure(writer.execute(`EXECUTE trap_${f.id}`), 'a prepared statement of an earlier call');
      await writer.execute(`BEGIN; DECLARE trap_c CURSOR WITH HOLD FOR SELECT 1; COMMIT`);
      await failure(writer.query('FETCH trap_c'), 'a cursor of an earlier call');
      // LISTEN in SQL text has no stream: refused, and nothing listens afterwards.
      await failure(writer.execute('LISTEN trap'), 'LISTEN');
      // A reserved session is where session state lives, until it is released. (On the embedded
      // engine it holds the one session: other calls wait until it is released.)
      const s = await writer.reserve();
      await s.execute(`CREATE TEMP TABLE kept_${f.id} (x int); SELECT pg_advisory_lock(770078)`);
      if (pg)
        assert.equal(
          (await writer2.queryOne<{ ok: boolean }>('SELECT pg_try_advisory_lock(770078) AS ok')).ok,
          false,
          'held by the reserved session',
        );
      assert.equal((await s.queryOne<{ n: number }>(`SELECT count(*)::int AS n FROM kept_${f.id}`)).n, 0, 'kept in the reserved session');
      await s.release();
      assert.equal(
        (await writer2.queryOne<{ ok: boolean }>('SELECT pg_try_advisory_lock(770078) AS ok')).ok,
        true,
        'released with the session',
      );
    } finally {
      await f.adminSql(`DROP TABLE IF EXISTS ${orders}`);
    }
  });

  test('credential changes: a new password ends the sessions; a deleted user and a revoked key are refused', async () => {
    const { server } = f;
    const url = server.grpcUrl;
    const pw = client({ url, user: passwordUser, password: 'first password' });
    assert.equal((await pw.queryOne<{ n: number }>('SELECT 1 AS n')).n, 1);
    await f.auth.createUser({ name: passwordUser, role: f.writerRole, password: 'second password', replace: true });
    await new Promise((r) => setTimeout(r, 300)); // the server's token cache (authCacheMs 100)
    // The old session token is refused (the client logs in again with its old password: refused).
    await failure(pw.query('SELECT 1'), 'the session of the old password');
    const pw2 = client({ url, user: passwordUser, password: 'second password' });
    assert.equal((await pw2.queryOne<{ n: number }>('SELECT 1 AS n')).n, 1);
    // A revoked key and a deleted user.
    const doomed = await makeUser(f, 'doomed', f.writerRole);
    const { id, key } = await f.auth.createApiKey({ user: doomed });
    const dc = client({ url, apiKey: key });
    assert.equal((await dc.queryOne<{ n: number }>('SELECT 1 AS n')).n, 1);
    await f.auth.revokeApiKey(id);
    await new Promise((r) => setTimeout(r, 300));
    await assert.rejects(dc.query('SELECT 1'), AuthenticationError);
    const { key: key2 } = await f.auth.createApiKey({ user: doomed });
    const dc2 = client({ url, apiKey: key2 });
    assert.equal((await dc2.queryOne<{ n: number }>('SELECT 1 AS n')).n, 1);
    await f.auth.deleteUser(doomed);
    await new Promise((r) => setTimeout(r, 300));
    await assert.rejects(dc2.query('SELECT 1'), AuthenticationError);
    if (pg) {
      const [left] = await f.adminSql(`SELECT count(*)::int AS n FROM pg_roles WHERE rolname LIKE $1`, [`hdb_%_doomed_${f.id}`]);
      assert.equal(left.n, 0, 'its login role is gone');
    }
  });

  test('limits per principal: open transactions and connections below the pool, per user; prepared statements bounded', async () => {
    if (!pg) {
      // One session: transactions queue for it, and no principal can hold more than it.
      const big = 'x'.repeat(100_000);
      for (let i = 0; i < 80; i++)
        assert.equal((await (await writer.prepare(`SELECT $1::int + ${i} AS n, '${big}' AS pad`)).query([1])).rows[0].n, 1 + i);
      return;
    }
    const txs = [];
    for (let i = 0; i < 3; i++) txs.push(await writer.begin());
    const over = await failure(writer.begin(), 'a fourth transaction');
    assert.equal(over.reason, 'TOO_MANY_TRANSACTIONS');
    // Another principal is not starved.
    await reader.transaction(async (tx) => tx.query('SELECT 1'));
    for (const tx of txs) await tx.rollback();
    await (await writer.begin()).rollback();
    // A user's read-only key counts with its read-write key: together they hold the limit.
    const mixed = [await writer.begin(), await writer.begin(), await ro.begin()];
    assert.equal((await failure(ro.begin(), 'a fourth transaction from the read-only key')).reason, 'TOO_MANY_TRANSACTIONS');
    for (const tx of mixed) await tx.rollback();
    // Connections: one user's long statements (both keys) hold at most half of the pool (10 of
    // 20); the rest wait, and another user is served at once.
    const order: string[] = [];
    const sleepers = Array.from({ length: 14 }, (_, i) =>
      (i % 2 ? ro : writer).query('SELECT pg_sleep(2)').then(() => order.push('sleeper')),
    );
    let peak = 0;
    const watch = (async () => {
      while (order.length < 14) {
        const n = (
          await f.adminSql(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(2)' AND state = 'active'`)
        )[0].n as number;
        peak = Math.max(peak, n);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    await reader.query('SELECT 1').then(() => order.push('reader'));
    await Promise.all(sleepers);
    await watch;
    assert.equal(order[0], 'reader', 'the other user was served before any long statement ended');
    assert.ok(peak <= 10, `at most half the pool ran the user's statements at once (${peak})`);
    assert.ok(peak >= 2, `they did run concurrently (${peak})`);
    // Prepared statements: many large ones, and the server keeps at most its bound; each still runs.
    const big = 'x'.repeat(100_000);
    for (let i = 0; i < 80; i++) {
      const p = await writer.prepare(`SELECT $1::int + ${i} AS n, '${big}' AS pad`);
      assert.equal((await p.query([1])).rows[0].n, 1 + i);
    }
  });

  test('the embedded engine answers while a statement runs, and a passed deadline answers at once', {
    skip: pg ? 'PostgreSQL cancels statements itself' : false,
  }, async () => {
    const sleeping = writer.query('SELECT pg_sleep(3)');
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    assert.equal(await writer.healthCheck(), true);
    assert.ok(Date.now() - t0 < 1000, `a health check answered in ${Date.now() - t0} ms during pg_sleep(3)`);
    const t1 = Date.now();
    await assert.rejects(writer2.query('SELECT 1', [], { timeoutMs: 500 }), TimeoutError);
    const waited = Date.now() - t1;
    assert.ok(waited < 1500, `the queued call's deadline answered at once (${waited} ms)`);
    await sleeping;
  });
});
