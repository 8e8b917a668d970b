/**
 * What a caller is told about a write agrees with the database, when the answer is lost: writes
 * the client takes for reads (a data-changing WITH that its text makes look harmless, a SELECT of
 * a function that writes), with and without idempotency keys, through a proxy that loses the
 * answer to a chosen attempt (test/helpers/marker-tap.ts); a transaction made read-only from
 * inside (its commit cannot be recorded with its key); and an auto-commit script that commits
 * part of itself before a retryable error (test/fault-database-answers.test.ts loses answers
 * between the server and PostgreSQL). Every write is counted in the table by its marker: a
 * success is there exactly once (and its RETURNING id is the stored one), an
 * AmbiguousResultError at most once, any other failure not at all. PostgreSQL only (the
 * embedded engine answers in the same process, where no answer is lost on the way).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test, type TestContext } from 'node:test';
import pg from 'pg';
import { AmbiguousResultError, type ConnectionConfig, createClient, type HeliosDBClient } from '@heliosdb/client';
import { backends, postgresSkipReason } from './helpers/backends.js';
import { MarkerTap, type TapFault } from './helpers/marker-tap.js';
import { startTestServer, type TestServer, uniqueName } from './helpers/server.js';

const postgres = backends.find((b) => b.name === 'postgresql');

/**
 * The faults cycled through: the whole answer lost, the answer cut after it started, the
 * connection reset under the request. Each loses the answer for certain (a reset some ms later
 * may come after it).
 */
const faults: TapFault[] = [
  { kind: 'lose', resetAfterMs: 30 },
  { kind: 'cut', bytes: 9 },
  { kind: 'reset', afterMs: 0 },
  { kind: 'cut', bytes: 12 },
];

type Outcome = 'ok' | 'ambiguous' | 'failed';

/** Counts of one run of {@link loseAnswers}. */
interface Tally {
  iterations: number;
  ok: number;
  ambiguous: number;
  failed: number;
  /** Rows found, over all markers. */
  rows: number;
  /** Faults the tap applied. */
  fired: number;
  failures: string[];
}

if (!postgres) {
  test('outcomes of writes whose answers are lost [postgresql]', { skip: postgresSkipReason }, () => {});
} else {
  describe('outcomes of writes whose answers are lost [postgresql]', { timeout: 60_000 }, () => {
    let ts: TestServer;
    let admin: pg.Client;
    let tap: MarkerTap;
    let table: string;
    let writer: string;
    const clients: HeliosDBClient[] = [];

    /** One connection through the tap, no keepalive pings (the tap would see them as answers), quick retries, no budget. */
    const client = (config: ConnectionConfig = {}) => {
      const c = createClient({
        url: tap.grpcUrl,
        minConnections: 1,
        maxConnections: 1,
        keepaliveIntervalMs: 0,
        timeoutMs: 10_000,
        circuitBreaker: false,
        ...config,
        retry: {
          maxAttempts: 6,
          baseDelayMs: 10,
          maxDelayMs: 50,
          budget: false,
          ...(typeof config.retry === 'object' ? config.retry : {}),
        },
      });
      clients.push(c);
      return c;
    };
    const rowsOf = async (marker: string) =>
      (await admin.query(`SELECT id FROM ${table} WHERE v = $1`, [marker])).rows.map((r) => Number(r.id));

    /**
     * Runs `call` `iterations` times, each with a fresh marker and the tap armed with a plan
     * (cycling through `plans`, each fault slot filled from `faults` in turn), and checks each
     * marker's rows against what the call said.
     */
    async function loseAnswers(
      t: TestContext,
      label: string,
      iterations: number,
      plans: ('fault' | null)[][],
      call: (marker: string) => Promise<number[]>,
    ): Promise<Tally> {
      const tally: Tally = { iterations, ok: 0, ambiguous: 0, failed: 0, rows: 0, fired: 0, failures: [] };
      const firedBefore = tap.stats.fired;
      let f = 0;
      for (let i = 0; i < iterations; i++) {
        const marker = `${label}-${i}-${randomBytes(6).toString('hex')}`;
        const plan = plans[i % plans.length]!.map((slot) => (slot ? faults[f++ % faults.length]! : null));
        tap.arm(marker, plan);
        let outcome: Outcome;
        let ids: number[] = [];
        let error: unknown;
        try {
          ids = await call(marker);
          outcome = 'ok';
        } catch (e) {
          error = e;
          outcome = e instanceof AmbiguousResultError ? 'ambiguous' : 'failed';
        }
        const pending = tap.pending;
        tap.disarm();
        const stored = await rowsOf(marker);
        tally[outcome]++;
        tally.rows += stored.length;
        const what = `${label} #${i} (plan ${JSON.stringify(plan)}): ${outcome}${error ? ` (${String(error)})` : ''}, ${stored.length} row(s)`;
        assert.equal(pending, false, `${what}: the planned fault fired`);
        if (outcome === 'ok') {
          assert.equal(stored.length, 1, `${what}: a reported success is there exactly once`);
          assert.deepEqual(ids, stored, `${what}: the answer is the first execution's (its RETURNING id), not a second run's`);
        } else if (outcome === 'ambiguous') {
          assert.ok(stored.length <= 1, `${what}: an ambiguous write is applied at most once`);
        } else {
          tally.failures.push(String(error));
          assert.equal(stored.length, 0, `${what}: a definite failure is absent`);
        }
      }
      tally.fired = tap.stats.fired - firedBefore;
      t.diagnostic(`${label}: ${JSON.stringify(tally)}`);
      return tally;
    }

    before(async () => {
      ts = await startTestServer(postgres, { httpPort: -1, poolSize: 4 });
      admin = ts.admin!;
      table = uniqueName('outcome');
      writer = `${table}_writer`;
      await admin.query(`CREATE TABLE ${table} (id serial PRIMARY KEY, v text NOT NULL, note text)`);
      await admin.query(
        `CREATE FUNCTION ${writer}(m text) RETURNS int LANGUAGE sql VOLATILE AS $$ INSERT INTO ${table} (v, note) VALUES (m, 'fn') RETURNING id $$`,
      );
      tap = await MarkerTap.start(Number(new URL(ts.server.grpcUrl.replace(/^grpc:/, 'http:')).port));
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await tap?.close();
      await admin?.query(`DROP TABLE IF EXISTS ${table} CASCADE`);
      await admin?.query(`DROP FUNCTION IF EXISTS ${writer}(text)`);
      await ts?.close();
    });

    test("a data-changing WITH whose text hides its INSERT behind '--' in a literal: every lost answer is settled by its key, once", async (t) => {
      const c = client();
      await c.query('SELECT 1');
      const sql = `WITH s AS (SELECT '--' AS sep) INSERT INTO ${table} (v, note) SELECT $1, s.sep FROM s RETURNING id`;
      // The first attempt's answer lost; or the first and its retry's.
      const r = await loseAnswers(t, 'with-insert', 50, [['fault'], ['fault', 'fault']], async (m) =>
        (await c.query<{ id: number }>(sql, [m])).rows.map((x) => x.id),
      );
      assert.equal(r.ok, 50, `every call succeeded, settled by its key (${r.failures.join('; ')})`);
      assert.equal(r.rows, 50, 'each applied once');
      assert.equal(r.fired, 75);
      assert.ok(c.pool.getStats().retries >= 75, `each lost answer was asked for again (${c.pool.getStats().retries} retries)`);
    });

    test('SELECT of a function that writes: the read claim never writes, and the keyed write it becomes applies once however its answers are lost', async (t) => {
      const c = client();
      await c.query('SELECT 1');
      const sql = `SELECT ${writer}($1) AS id`;
      // Request 1 is the read claim (refused, NOT_A_READ), request 2 the keyed write it becomes.
      const probe = `select-writer-probe-${randomBytes(4).toString('hex')}`;
      tap.arm(probe, []);
      await c.query(sql, [probe]);
      assert.equal(tap.seen, 2, 'without a fault it takes two requests: the read claim, then the write');
      tap.disarm();
      assert.equal((await rowsOf(probe)).length, 1);
      const plans: ('fault' | null)[][] = [['fault'], [null, 'fault'], [null, 'fault', 'fault'], ['fault', null, 'fault']];
      const r = await loseAnswers(t, 'select-writer', 50, plans, async (m) =>
        (await c.query<{ id: number }>(sql, [m])).rows.map((x) => x.id),
      );
      assert.equal(r.ok, 50, `every call succeeded (${r.failures.join('; ')})`);
      assert.equal(r.rows, 50, 'each applied once: a read sent again never wrote');
    });

    test('the same through a prepared statement and an atomic batch', async (t) => {
      const c = client();
      await c.query('SELECT 1');
      const sql = `SELECT ${writer}($1) AS id`;
      const ps = await c.prepare<{ id: number }>(sql);
      const plans: ('fault' | null)[][] = [['fault'], [null, 'fault'], [null, 'fault', 'fault']];
      const p = await loseAnswers(t, 'prepared-writer', 24, plans, async (m) => (await ps.query([m])).rows.map((x) => x.id));
      assert.equal(p.ok, 24, `every prepared call succeeded (${p.failures.join('; ')})`);
      const b = await loseAnswers(t, 'batch-writer', 24, plans, async (m) => {
        const res = await c.batch<{ id: number }>([{ sql, params: [m] }, { sql: 'SELECT 1 AS one' }], { returnRows: true });
        const first = res.results[0]!;
        return first.ok ? first.result.rows.map((x) => x.id) : [];
      });
      assert.equal(b.ok, 24, `every batch succeeded (${b.failures.join('; ')})`);
      assert.equal(p.rows + b.rows, 48);
    });

    test('without idempotency keys a lost answer is AmbiguousResultError, never a second run', async (t) => {
      const c = client({ retry: { idempotencyKeys: false } });
      await c.query('SELECT 1');
      const withInsert = `WITH s AS (SELECT '--' AS sep) INSERT INTO ${table} (v, note) SELECT $1, s.sep FROM s RETURNING id`;
      const w = await loseAnswers(t, 'with-insert-unkeyed', 20, [['fault']], async (m) =>
        (await c.query<{ id: number }>(withInsert, [m])).rows.map((x) => x.id),
      );
      const s = await loseAnswers(t, 'select-writer-unkeyed', 20, [[null, 'fault']], async (m) =>
        (await c.query<{ id: number }>(`SELECT ${writer}($1) AS id`, [m])).rows.map((x) => x.id),
      );
      assert.equal(
        w.ambiguous + s.ambiguous,
        40,
        `each lost answer of a write without a key is ambiguous (ok ${w.ok + s.ok}, failed: ${[...w.failures, ...s.failures].join('; ')})`,
      );
      // A lost read claim is sent again as a read: the NOT_A_READ that follows makes it a write.
      const r = await loseAnswers(t, 'select-writer-unkeyed-claim', 10, [['fault']], async (m) =>
        (await c.query<{ id: number }>(`SELECT ${writer}($1) AS id`, [m])).rows.map((x) => x.id),
      );
      assert.equal(r.ok, 10, `a lost read claim is sent again, then written once (${r.failures.join('; ')})`);
    });

    test('a transaction made read-only from inside: commit() resolves only when the row is committed', async (t) => {
      const report: string[] = [];
      for (const keys of [true, false]) {
        const c = createClient({ url: ts.server.grpcUrl, timeoutMs: 5000, retry: { idempotencyKeys: keys } });
        clients.push(c);
        const tricks = [
          `SELECT set_config('transaction_read_only', 'on', true)`,
          `SELECT set_config('transaction_read_only', 'on', false)`,
          `DO $$ BEGIN PERFORM set_config('transaction_read_only', 'on', true); END $$`,
          'SET TRANSACTION READ ONLY',
          'SET LOCAL transaction_read_only = on',
          'SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY',
          `SELECT set_config('default_transaction_read_only', 'on', false)`,
        ];
        for (const [i, trick] of tricks.entries()) {
          const marker = `ro-${keys ? 'keyed' : 'unkeyed'}-${i}-${randomBytes(4).toString('hex')}`;
          const tx = await c.begin();
          await tx.execute(`INSERT INTO ${table} (v) VALUES ($1)`, [marker]);
          const refused = await tx.execute(trick).then(
            () => '',
            (e: unknown) => String(e),
          );
          const committed = await tx.commit().then(
            () => true,
            (e: unknown) => {
              assert.ok(!(e instanceof AmbiguousResultError), `${trick}: nothing was lost, so the outcome is known (${String(e)})`);
              return false;
            },
          );
          const n = (await rowsOf(marker)).length;
          report.push(
            `${keys ? 'keyed' : 'unkeyed'} ${JSON.stringify(trick)}: ${refused ? 'refused, ' : ''}${committed ? 'committed' : 'rejected'}, ${n} row(s)`,
          );
          assert.equal(
            n,
            committed ? 1 : 0,
            `${trick} (keys ${keys}): commit() ${committed ? 'resolved' : 'rejected'}, and the row count agrees`,
          );
          assert.equal(tx.state, committed ? 'committed' : 'rolledBack');
          // The connection it ran on serves the next writes as before (its settings were reset).
          const next = `${marker}-next`;
          await c.execute(`INSERT INTO ${table} (v) VALUES ($1)`, [next]);
          assert.equal((await rowsOf(next)).length, 1);
        }
      }
      for (const line of report) t.diagnostic(line);
    });

    test('an auto-commit script that commits part of itself, then fails with a retryable error, is not sent again', async () => {
      const c = createClient({ url: ts.server.grpcUrl, timeoutMs: 5000, retry: { baseDelayMs: 10, maxDelayMs: 50, budget: false } });
      clients.push(c);
      const locked = `${table}_locked`;
      await admin.query(`CREATE TABLE ${locked} (id int)`);
      const locker = new pg.Client({ connectionString: postgres.databaseUrl });
      await locker.connect();
      try {
        await locker.query(`BEGIN; LOCK TABLE ${locked} IN ACCESS EXCLUSIVE MODE`);
        const marker = `script-${randomBytes(4).toString('hex')}`;
        const err = await c
          .execute(`BEGIN; INSERT INTO ${table} (v) VALUES ('${marker}'); COMMIT; SET lock_timeout = '50ms'; SELECT * FROM ${locked}`)
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        assert.ok(err instanceof Error, 'the lock timeout fails the call');
        const n = (await rowsOf(marker)).length;
        assert.ok(
          n <= 1,
          `the script's committed INSERT is applied at most once, not once per attempt (${n} rows; the caller got ${String(err)})`,
        );
        assert.equal(n, 1, "the INSERT before the script's own COMMIT stays committed, once");
        // A script that commits itself: its failure says that what it committed stays committed.
        assert.ok(
          err instanceof AmbiguousResultError || /what it committed before this error stays committed/.test(String(err)),
          `the error says so (${String(err)})`,
        );
      } finally {
        await locker.query('ROLLBACK').catch(() => {});
        await locker.end();
        await admin.query(`DROP TABLE IF EXISTS ${locked}`);
      }
    });
  });
}
