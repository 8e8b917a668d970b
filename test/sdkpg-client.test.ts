/**
 * The client over `postgres://` straight to PostgreSQL, beyond the shared behaviour suite: the
 * error classes of SQLSTATEs, transactions and savepoints (checked in the database), the
 * serialization-failure retry of `client.transaction`, COPY both ways, LISTEN, cancellation and
 * timeouts (the statement really stops on the server), the retry rules (a lost read is sent again,
 * a write whose answer was lost is not), reserved sessions, transaction control in auto-commit
 * SQL. The entry-level checks (the browser entry, the optional packages) are in
 * test/sdkpg-entry.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import * as lib from '@heliosdb/client';
import { FaultProxy } from './helpers/fault-proxy.js';
import { postgresSkipReason, postgresUrlEnv } from './helpers/backends.js';
import { uniqueName, waitFor } from './helpers/server.js';

const pgUrl = process.env[postgresUrlEnv]?.trim();

if (!pgUrl) {
  test('postgres:// client', { skip: postgresSkipReason }, () => {});
} else {
  describe('postgres:// client [postgresql]', () => {
    const db = new pg.Client({ connectionString: pgUrl });
    const clients: lib.HeliosDBClient[] = [];
    const client = (config: lib.ConnectionConfig = {}) => {
      const c = lib.createClient({ url: pgUrl, ...config });
      clients.push(c);
      return c;
    };
    const count = async (t: string) => Number((await db.query(`SELECT count(*)::int AS n FROM ${t}`)).rows[0].n);
    const table = async (columns: string) => {
      const t = uniqueName('sdkpg');
      await db.query(`CREATE TABLE ${t} (${columns})`);
      return t;
    };
    const tables: string[] = [];
    before(() => db.connect());
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      for (const t of tables.reverse()) await db.query(`DROP TABLE IF EXISTS ${t} CASCADE`);
      await db.end();
    });
    const newTable = async (columns: string) => {
      const t = await table(columns);
      tables.push(t);
      return t;
    };

    test('errors: SQLSTATEs become the same classes and codes as on grpc://', async () => {
      const c = client();
      const parent = await newTable('id int PRIMARY KEY');
      const child = await newTable(`id int PRIMARY KEY, p int REFERENCES ${parent}, n int CHECK (n > 0)`);
      const fk = await c.execute(`INSERT INTO ${child} VALUES (1, 99, 1)`).catch((e) => e);
      assert.ok(fk instanceof lib.ForeignKeyViolationError && fk instanceof lib.ConstraintViolationError && fk instanceof lib.QueryError);
      assert.equal(fk.code, 'FOREIGN_KEY_VIOLATION');
      assert.equal(fk.sqlstate, '23503');
      assert.equal(fk.table, child);
      const bad = await c.prepare('SELEC 1').catch((e) => e);
      assert.ok(bad instanceof lib.QueryError, 'a statement that does not parse fails to prepare');
      assert.equal(bad.sqlstate, '42601');
      const ddl = await c.execute(`CREATE INDEX ON ${child} (n)`);
      assert.equal(ddl.command, 'CREATE INDEX', 'the whole command tag');
      const check = await c.execute(`INSERT INTO ${child} VALUES (1, NULL, 0)`).catch((e) => e);
      assert.ok(check instanceof lib.CheckViolationError);
      assert.equal(check.constraint, `${child}_n_check`);
      const tx = await c.begin();
      await assert.rejects(tx.query('SELECT 1/0'), lib.QueryError);
      const aborted = await tx.query('SELECT 1').catch((e) => e);
      assert.ok(aborted instanceof lib.TransactionError);
      assert.equal(aborted.code, 'TRANSACTION_ABORTED');
      assert.equal(aborted.sqlstate, '25P02');
      await tx.rollback();
      const raised = await c.query("DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '40001'; END $$").catch((e) => e);
      assert.ok(raised instanceof lib.SerializationFailureError && raised instanceof lib.TransactionError);
      assert.equal(raised.retryable, true);
      assert.equal(raised.grpcCode, 10, 'ABORTED, as the server maps 40001');
    });

    test('errors: a missing column fails with its position, a denied table with PermissionDeniedError', async () => {
      const role = uniqueName('sdkpg_role');
      const t = await newTable('id int');
      await db.query(`CREATE ROLE ${role} LOGIN`);
      try {
        const url = new URL(pgUrl);
        url.username = role;
        const c = client({ url: url.toString() });
        const e = await c.query(`SELECT * FROM ${t}`).catch((err) => err);
        assert.ok(e instanceof lib.PermissionDeniedError, String(e));
        assert.equal(e.code, 'PERMISSION_DENIED');
        assert.equal(e.sqlstate, '42501');
        const col = await c.query('SELECT nope_col FROM pg_class').catch((err) => err);
        assert.ok(col instanceof lib.QueryError);
        assert.equal(col.sqlstate, '42703');
        assert.equal(col.position, 8);
        await c.close();
      } finally {
        await db.query(`DROP ROLE ${role}`);
      }
    });

    test('transactions and savepoints: what commits is in the database, what rolls back is not', async () => {
      const c = client();
      const t = await newTable('id int PRIMARY KEY');
      const tx = await c.begin({ isolationLevel: lib.IsolationLevel.Serializable });
      await tx.execute(`INSERT INTO ${t} VALUES (1)`);
      assert.equal(await count(t), 0, 'not visible before commit');
      const sp1 = await tx.savepoint('first');
      await tx.execute(`INSERT INTO ${t} VALUES (2)`);
      const sp2 = await tx.savepoint();
      await tx.execute(`INSERT INTO ${t} VALUES (3)`);
      await sp2.rollback();
      await sp1.release();
      assert.equal((await tx.queryOne<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`)).n, 2, 'the transaction sees its own rows');
      const iso = await tx.queryOne<{ i: string }>('SHOW transaction_isolation');
      assert.equal(iso.i ?? Object.values(iso)[0], 'serializable');
      await tx.commit();
      assert.deepEqual(
        (await db.query(`SELECT id FROM ${t} ORDER BY id`)).rows.map((r) => r.id),
        [1, 2],
      );
      const ro = await c.begin({ readOnly: true });
      const e = await ro.execute(`INSERT INTO ${t} VALUES (9)`).catch((err) => err);
      assert.ok(e instanceof lib.QueryError);
      assert.equal(e.sqlstate, '25006');
      await ro.rollback();
      assert.equal(await count(t), 2);
      assert.equal(c.pool.getStats().inFlight, 0, 'every connection is back in the pool');
    });

    test('client.transaction re-runs the callback after a serialization failure', async () => {
      const c = client();
      const t = await newTable('id int PRIMARY KEY, v int');
      await db.query(`INSERT INTO ${t} VALUES (1, 0)`);
      let attempts = 0;
      await c.transaction(
        async (tx) => {
          attempts++;
          await tx.query(`SELECT v FROM ${t} WHERE id = 1`);
          if (attempts === 1) await db.query(`UPDATE ${t} SET v = v + 10 WHERE id = 1`);
          await tx.execute(`UPDATE ${t} SET v = v + 1 WHERE id = 1`);
        },
        { isolationLevel: lib.IsolationLevel.RepeatableRead },
      );
      assert.equal(attempts, 2, 'the first attempt failed with 40001 and was run again');
      assert.equal((await db.query(`SELECT v FROM ${t}`)).rows[0].v, 11);
    });

    test('COPY FROM STDIN and COPY TO STDOUT, in and out of transactions', async () => {
      const c = client();
      const t = await newTable('id int PRIMARY KEY, name text');
      const csv = Array.from({ length: 1000 }, (_, i) => `${i},name ${i}\n`).join('');
      const r = await c.copyFrom(`COPY ${t} FROM STDIN (FORMAT csv)`, [csv.slice(0, 7001), csv.slice(7001)]);
      assert.equal(r.rowCount, 1000);
      assert.equal(await count(t), 1000, 'the rows are in the table');
      const bad = await c.copyFrom(`COPY ${t} FROM STDIN (FORMAT csv)`, '5000,ok\nnot-a-number,x\n').catch((e) => e);
      assert.ok(bad instanceof lib.QueryError);
      assert.equal(bad.sqlstate, '22P02');
      assert.equal(await count(t), 1000, 'a failed COPY copies nothing');
      const out = c.copyTo(`COPY (SELECT * FROM ${t} ORDER BY id) TO STDOUT (FORMAT csv)`);
      const chunks: Buffer[] = [];
      for await (const chunk of out) chunks.push(Buffer.from(chunk));
      assert.equal(Buffer.concat(chunks).toString(), csv);
      assert.equal(out.result?.rowCount, 1000);
      const tx = await c.begin();
      await tx.copyFrom(`COPY ${t} FROM STDIN`, '2000\tin a transaction\n');
      assert.equal(await count(t), 1000, 'not visible before commit');
      await tx.rollback();
      assert.equal(await count(t), 1000, 'rolled back with its transaction');
      let seen = 0;
      for await (const _ of c.copyTo(`COPY (SELECT generate_series(1, 1000000)) TO STDOUT`)) if (++seen === 2) break;
      assert.equal(seen, 2, 'left early');
      assert.equal((await c.queryOne<{ n: number }>('SELECT 5 AS n')).n, 5, 'the client works after an early exit');
      assert.ok(await waitFor(() => c.pool.getStats().inFlight === 0), 'the connection is free again');
    });

    test('listen: NOTIFY from another session arrives; unlisten stops it', async () => {
      const c = client();
      const channel = `sdkpg_Orders_${process.pid}`;
      const got: lib.Notification[] = [];
      const listener = await c.listen(channel, (n) => got.push(n));
      await db.query('SELECT pg_notify($1, $2)', [channel, 'first']);
      await c.execute('SELECT pg_notify($1, $2)', [channel, 'second']);
      assert.ok(await waitFor(() => got.length === 2), `two notifications (got ${got.length})`);
      assert.deepEqual(
        got.map((n) => [n.channel, n.payload, n.missed]),
        [
          [channel, 'first', false],
          [channel, 'second', false],
        ],
      );
      assert.ok(got[0].processId > 0);
      await listener.unlisten();
      const listening = async () =>
        Number(
          (await db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND query LIKE $1", [`%${channel}%`]))
            .rows[0].n,
        );
      assert.ok(await waitFor(async () => (await listening()) === 0), 'the listening connection is closed');
      await db.query('SELECT pg_notify($1, $2)', [channel, 'third']);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(got.length, 2, 'nothing after unlisten');
    });

    test('listen: a lost listening connection is listened on again, with a missed event; a lost transaction says so', async () => {
      const app = uniqueName('sdkpg_listen');
      const c = client({ applicationName: app });
      const channel = `sdkpg_gap_${process.pid}`;
      const got: lib.Notification[] = [];
      const listener = await c.listen(channel, (n) => got.push(n), { maxReconnectDelayMs: 200 });
      await db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'", [app]);
      assert.ok(await waitFor(() => got.some((n) => n.missed)), 'a missed event after the connection was lost');
      // Listening again: a notification sent now arrives.
      assert.ok(
        await waitFor(async () => {
          await db.query('SELECT pg_notify($1, $2)', [channel, 'after']);
          return got.some((n) => n.payload === 'after');
        }),
        'notifications arrive again',
      );
      await listener.unlisten();
      const tx = await c.begin();
      const pid = (await tx.queryOne<{ pid: number }>('SELECT pg_backend_pid() AS pid')).pid;
      await db.query('SELECT pg_terminate_backend($1)', [pid]);
      const e = await tx.query('SELECT 1').catch((err) => err);
      // PostgreSQL's FATAL admin_shutdown (57P01, retryable as a whole transaction), or, once the
      // client saw the connection close, the transaction's lost connection.
      assert.ok(
        (e instanceof lib.HeliosDBError && e.sqlstate === '57P01' && e.retryable) ||
          (e instanceof lib.ConnectionError && /was lost/.test(e.message)),
        String(e),
      );
      const again = await tx.query('SELECT 1').catch((err) => err);
      assert.ok(again instanceof lib.HeliosDBError);
      assert.match(again.message, /was lost|not open/);
      await tx.rollback().catch(() => {});
      assert.deepEqual(await c.queryOne('SELECT 1 AS n'), { n: 1 }, 'the client works on');
    });

    test('cancel and timeout stop the statement in PostgreSQL (cancel request), not only the call', async () => {
      const app = uniqueName('sdkpg_app');
      const c = client({ applicationName: app });
      const running = async () =>
        Number(
          (await db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'", [app]))
            .rows[0].n,
        );
      const ac = new AbortController();
      const pending = c.query('SELECT pg_sleep(30)', [], { signal: ac.signal });
      assert.ok(await waitFor(async () => (await running()) === 1), 'the statement runs');
      ac.abort();
      const e = await pending.catch((err) => err);
      assert.ok(e instanceof lib.CancelledError, String(e));
      assert.ok(await waitFor(async () => (await running()) === 0), 'and stops running in PostgreSQL');
      const slow = c.query('SELECT pg_sleep(30)', [], { timeoutMs: 200 });
      const te = await slow.catch((err) => err);
      assert.ok(te instanceof lib.TimeoutError, String(te));
      assert.ok(await waitFor(async () => (await running()) === 0), 'a timed-out statement stops too');
      const stream = c.stream('SELECT pg_sleep(30)', [], { signal: AbortSignal.timeout(200) });
      await assert.rejects(async () => {
        for await (const _ of stream);
      }, lib.HeliosDBError);
      assert.ok(await waitFor(async () => (await running()) === 0), 'a stream stops too');
      assert.deepEqual(await c.queryOne('SELECT 1 AS n'), { n: 1 });
    });

    test('retries: a read whose answer was lost is sent again; a write is not (AmbiguousResultError), and ran once', async () => {
      const url = new URL(pgUrl);
      const proxy = await FaultProxy.start(Number(url.port || 5432));
      try {
        url.host = `127.0.0.1:${proxy.port}`;
        const c = client({ url: url.toString(), maxConnections: 1, retry: { baseDelayMs: 10 } });
        const t = await newTable('id serial PRIMARY KEY');
        assert.deepEqual(await c.queryOne('SELECT 1 AS n'), { n: 1 });
        proxy.loseNextResponse(50);
        assert.deepEqual(await c.queryOne('SELECT 2 AS n'), { n: 2 }, 'the read was sent again');
        assert.equal(c.pool.getStats().retries, 1);
        await c.execute(`INSERT INTO ${t} DEFAULT VALUES`);
        proxy.loseNextResponse(50);
        const e = await c.execute(`INSERT INTO ${t} DEFAULT VALUES`).catch((err) => err);
        assert.ok(e instanceof lib.AmbiguousResultError, String(e));
        assert.equal(c.pool.getStats().retries, 1, 'no retry of the write');
        assert.equal(c.pool.getStats().ambiguousResults, 1);
        assert.equal(await count(t), 2, 'the write whose answer was lost ran exactly once');
        // A write first, so the COPY needs no set-up round trip; then its connection is cut mid-call.
        await c.execute(`INSERT INTO ${t} DEFAULT VALUES`);
        proxy.cutAfter(10, 'down');
        const copy = await c.copyFrom(`COPY ${t} (id) FROM STDIN`, '100\n').catch((err) => err);
        proxy.heal();
        assert.ok(copy instanceof lib.AmbiguousResultError, String(copy));
        assert.match(copy.message, /cannot be settled over postgres:\/\//);
        assert.ok([3, 4].includes(await count(t)), 'the COPY whose answer was lost ran at most once');
      } finally {
        await proxy.close();
      }
    });

    test('retries: a call sent as a read that writes is refused on a read-only connection, then runs once as a write', async () => {
      const c = client();
      const seq = uniqueName('sdkpg_seq');
      await db.query(`CREATE SEQUENCE ${seq}`);
      try {
        const r = await c.queryOne<{ v: bigint }>(`SELECT nextval('${seq}') AS v`);
        assert.equal(r.v, 1n);
        assert.equal(Number((await db.query(`SELECT last_value FROM ${seq}`)).rows[0].last_value), 1, 'it ran once');
        assert.deepEqual(await c.queryOne('SHOW transaction_read_only'), { transaction_read_only: 'on' }, 'reads run read-only');
      } finally {
        await db.query(`DROP SEQUENCE ${seq}`);
      }
    });

    test('pool: one connection opens at start, at most maxConnections; serverInfo reports PostgreSQL', async () => {
      const c = client({ minConnections: 10, maxConnections: 3 });
      assert.ok(await waitFor(() => c.pool.getStats().totalConnections === 1), 'one connection at start');
      await Promise.all(Array.from({ length: 12 }, (_, i) => c.query('SELECT pg_sleep(0.02), $1::int AS i', [i])));
      const s = c.pool.getStats();
      assert.equal(s.totalConnections, 3, 'grew to maxConnections and kept them (minConnections)');
      assert.equal(s.created, 3);
      const info = await c.serverInfo();
      const version = (await db.query('SHOW server_version')).rows[0].server_version;
      assert.equal(info.engine, 'postgresql');
      assert.equal(info.version, version, "serverInfo().version is PostgreSQL's server_version");
      assert.match(info.engineVersion, /^PostgreSQL /);
    });

    test('streams read the portal batchRows rows at a time; batches inside a transaction keep it usable', async () => {
      const c = client();
      const sizes: number[] = [];
      for await (const rows of c.stream('SELECT generate_series(1, 50) AS n', [], { batchRows: 7 }).batches()) sizes.push(rows.length);
      assert.deepEqual(sizes, [7, 7, 7, 7, 7, 7, 7, 1]);
      const t = await newTable('id int PRIMARY KEY');
      const tx = await c.begin();
      await tx.execute(`INSERT INTO ${t} VALUES (1)`);
      const e = await tx.batch([{ sql: `INSERT INTO ${t} VALUES (2)` }, { sql: `INSERT INTO ${t} VALUES (1)` }]).catch((err) => err);
      assert.ok(e instanceof lib.UniqueViolationError);
      assert.equal(e.statementIndex, 1);
      const mixed = await tx.batch([{ sql: `INSERT INTO ${t} VALUES (1)` }, { sql: `INSERT INTO ${t} VALUES (3)` }], { atomic: false });
      assert.deepEqual(
        mixed.results.map((r) => r.ok),
        [false, true],
      );
      await tx.executeMany(`INSERT INTO ${t} VALUES ($1)`, [[4], [5]]);
      await tx.commit();
      assert.deepEqual(
        (await db.query(`SELECT id FROM ${t} ORDER BY id`)).rows.map((r) => r.id),
        [1, 3, 4, 5],
        'the atomic batch rolled back to its savepoint; the failed item of the other left the rest',
      );
    });

    test("applicationName, quotes and backslashes included, is the session's application_name", async () => {
      const name = "it's a \\ name";
      const c = client({ applicationName: name });
      assert.deepEqual(await c.queryOne("SELECT current_setting('application_name') AS a"), { a: name });
      assert.deepEqual(await c.execute('SELECT 1').then(() => c.queryOne("SELECT current_setting('application_name') AS a")), { a: name });
    });

    test('auto-commit SQL that leaves a transaction open is rolled back and fails; reserved sessions keep state', async () => {
      const c = client({ maxConnections: 1 });
      const t = await newTable('id int');
      const e = await c.execute(`BEGIN; INSERT INTO ${t} VALUES (1)`).catch((err) => err);
      assert.ok(e instanceof lib.TransactionError, String(e));
      assert.equal(e.code, 'TRANSACTION_CONTROL_OUTSIDE_SESSION');
      assert.equal(await count(t), 0, 'rolled back');
      assert.deepEqual(await c.queryOne('SELECT 1 AS n'), { n: 1 }, 'the connection is usable');
      const s = await c.reserve();
      await s.execute('CREATE TEMP TABLE sdkpg_tmp (v int)');
      await s.execute("SET application_name = 'sdkpg-session'");
      await s.execute('INSERT INTO sdkpg_tmp VALUES (7)');
      assert.deepEqual(await s.queryOne('SELECT v FROM sdkpg_tmp'), { v: 7 });
      assert.deepEqual(await s.queryOne("SELECT current_setting('application_name') AS a"), { a: 'sdkpg-session' });
      await s.release();
      const gone = await c.query('SELECT v FROM sdkpg_tmp').catch((err) => err);
      assert.ok(gone instanceof lib.QueryError, 'the session state went with it');
      assert.equal(gone.sqlstate, '42P01');
    });
  });
}
