/**
 * PostgreSQL ends the server's backends (`pg_terminate_backend` from an administrator's
 * connection, aimed at this server's connections only by their application_name) while
 * transactions commit and keyed auto-commit writes run, in a loop: what each caller is told must
 * agree with the table. Each write carries a marker; afterwards a commit() or write that resolved
 * has its row exactly once (with the id it returned), an AmbiguousResultError at most once, any
 * other failure none. COMMIT is slowed by a deferred trigger (and, for a superuser, commit_delay)
 * so that kills land inside it. Then calls that never reached the database, because the
 * server's connection was already dead, must be sent again rather than fail. PostgreSQL only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import type pg from 'pg';
import { AmbiguousResultError, createClient, type HeliosDBClient, type Transaction } from '@heliosdb/client';
import { backends, postgresSkipReason } from './helpers/backends.js';
import { startTestServer, type TestServer, uniqueName, waitFor } from './helpers/server.js';

const postgres = backends.find((b) => b.name === 'postgresql');
const POOL = 6;

type Outcome = 'ok' | 'ambiguous' | 'failed';

/** One write and what its caller was told. */
interface Attempt {
  marker: string;
  outcome: Outcome;
  /** Where it failed (begin, insert, commit, write), or '' for a success. */
  stage: string;
  /** The ids the call returned (successes). */
  ids: number[];
  error?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An error's kind for the report: class, code and the start of its message. */
function kindOf(e: unknown): string {
  const x = e as { constructor?: { name?: string }; code?: string; message?: string };
  return `${x?.constructor?.name ?? typeof e} ${x?.code ?? ''} ${(x?.message ?? String(e)).replace(/"[^"]*"/g, '…').slice(0, 90)}`;
}

if (!postgres) {
  test('backends terminated during COMMIT [postgresql]', { skip: postgresSkipReason }, () => {});
} else {
  describe('backends terminated during COMMIT [postgresql]', { timeout: 90_000 }, () => {
    const app = uniqueName('fault-kill');
    let ts: TestServer;
    let admin: pg.Client;
    let table: string;
    let slow: string;
    /** `INSERT ... RETURNING id` of one marker, with commit_delay set for it when the server's login may. */
    let insertSql: string;
    const clients: HeliosDBClient[] = [];

    const client = (idempotencyKeys: boolean) => {
      const c = createClient({
        url: ts.server.grpcUrl,
        minConnections: 2,
        timeoutMs: 10_000,
        circuitBreaker: false,
        retry: { maxAttempts: 8, baseDelayMs: 20, maxDelayMs: 200, budget: false, idempotencyKeys },
      });
      clients.push(c);
      return c;
    };

    /** Terminates every backend of this server about every `periodMs` until `until`; returns how many it ended. */
    async function killer(until: number, periodMs: number): Promise<number> {
      let killed = 0;
      while (Date.now() < until) {
        await sleep(periodMs * (0.67 + Math.random() * 0.66));
        const r = await admin.query(
          'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
          [app],
        );
        killed += r.rows[0].n as number;
      }
      return killed;
    }

    /** Checks every attempt against the table; returns counts by outcome and by stage and error kind. */
    async function check(
      t: TestContext,
      label: string,
      attempts: Attempt[],
    ): Promise<{ byOutcome: Record<Outcome, number>; byKind: Record<string, number>; rows: number }> {
      const stored = new Map<string, number[]>();
      for (const r of (
        await admin.query(`SELECT v, array_agg(id ORDER BY id) AS ids FROM ${table} WHERE v LIKE $1 GROUP BY v`, [`${label}-%`])
      ).rows) {
        stored.set(r.v as string, (r.ids as unknown[]).map(Number));
      }
      const byOutcome: Record<Outcome, number> = { ok: 0, ambiguous: 0, failed: 0 };
      const byKind: Record<string, number> = {};
      let rows = 0;
      for (const a of attempts) {
        const ids = stored.get(a.marker) ?? [];
        rows += ids.length;
        byOutcome[a.outcome]++;
        if (a.outcome !== 'ok')
          byKind[`${a.stage}: ${a.outcome === 'ambiguous' ? 'ambiguous' : a.error}`] =
            (byKind[`${a.stage}: ${a.outcome === 'ambiguous' ? 'ambiguous' : a.error}`] ?? 0) + 1;
        const what = `${a.marker}: ${a.outcome}${a.stage ? ` at ${a.stage}` : ''}${a.error ? ` (${a.error})` : ''}, ${ids.length} row(s)`;
        if (a.outcome === 'ok') {
          assert.deepEqual(ids, a.ids, `${what}: a reported success is there exactly once, with the id it returned`);
        } else if (a.outcome === 'ambiguous') {
          assert.ok(ids.length <= 1, `${what}: applied at most once`);
        } else {
          assert.equal(ids.length, 0, `${what}: a definite failure is absent`);
        }
      }
      t.diagnostic(`${label}: ${attempts.length} writes, ${JSON.stringify(byOutcome)}, ${rows} rows`);
      for (const [k, n] of Object.entries(byKind).sort((x, y) => y[1] - x[1])) t.diagnostic(`  ${n} × ${k}`);
      return { byOutcome, byKind, rows };
    }

    /** The server is back to normal: no transaction left open, its pool whole and idle. */
    async function settled(): Promise<void> {
      const ok = await waitFor(() => {
        const s = ts.server.poolStats();
        return ts.server.openTransactions() === 0 && s.waiting === 0 && s.idle === s.total;
      }, 10_000);
      assert.ok(ok, `the server settles: ${ts.server.openTransactions()} open transactions, pool ${JSON.stringify(ts.server.poolStats())}`);
    }

    before(async () => {
      ts = await startTestServer(postgres, { httpPort: -1, poolSize: POOL, databaseApplicationName: app });
      admin = ts.admin!;
      table = uniqueName('kill');
      slow = `${table}_slow`;
      await admin.query(`CREATE TABLE ${table} (id serial PRIMARY KEY, v text NOT NULL)`);
      // COMMIT runs the deferred trigger: a kill during it lands inside COMMIT.
      await admin.query(
        `CREATE FUNCTION ${slow}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.002); RETURN NULL; END $$`,
      );
      await admin.query(
        `CREATE CONSTRAINT TRIGGER ${slow} AFTER INSERT ON ${table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ${slow}()`,
      );
      // commit_delay waits inside the commit itself, after the point of no return (superusers only).
      const superuser = (await admin.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user')).rows[0]?.rolsuper === true;
      insertSql = superuser
        ? `INSERT INTO ${table} (v) SELECT $1 FROM (SELECT set_config('commit_delay', '2000', true)) d RETURNING id`
        : `INSERT INTO ${table} (v) VALUES ($1) RETURNING id`;
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await admin?.query(`DROP TABLE IF EXISTS ${table} CASCADE`);
      await admin?.query(`DROP FUNCTION IF EXISTS ${slow}()`);
      await ts?.close();
    });

    test('transactions committing in a loop while their backends are terminated: no commit() that committed is reported as failed', async (t) => {
      const keyed = client(true);
      const unkeyed = client(false);
      const until = Date.now() + 7000;
      const attempts: Attempt[] = [];
      let seq = 0;
      const worker = async (c: HeliosDBClient, kind: string) => {
        while (Date.now() < until) {
          const marker = `tx-${kind}-${seq++}`;
          let stage = 'begin';
          let tx: Transaction | undefined;
          try {
            tx = await c.begin();
            stage = 'insert';
            const ids = (await tx.query<{ id: number }>(insertSql, [marker])).rows.map((r) => r.id);
            stage = 'commit';
            await tx.commit();
            attempts.push({ marker, outcome: 'ok', stage: '', ids });
          } catch (e) {
            attempts.push({
              marker,
              outcome: e instanceof AmbiguousResultError ? 'ambiguous' : 'failed',
              stage,
              ids: [],
              error: kindOf(e),
            });
            if (tx && !tx.finished) await tx.rollback().catch(() => {});
          }
        }
      };
      const [killed] = await Promise.all([
        killer(until, 300),
        worker(keyed, 'k'),
        worker(keyed, 'k'),
        worker(keyed, 'k'),
        worker(keyed, 'k'),
        worker(unkeyed, 'u'),
        worker(unkeyed, 'u'),
      ]);
      t.diagnostic(
        `${killed} backends terminated; client retries: keyed ${keyed.pool.getStats().retries}, unkeyed ${unkeyed.pool.getStats().retries}`,
      );
      const r = await check(t, 'tx', attempts);
      assert.ok(killed >= 10, `the backends were terminated (${killed})`);
      const atCommit = attempts.filter((a) => a.stage === 'commit').length;
      assert.ok(atCommit >= 1, `some kills landed during commit() (${atCommit})`);
      assert.ok(r.byOutcome.ok >= 50, `transactions went on committing between the kills (${r.byOutcome.ok})`);
      await settled();
    });

    test('keyed auto-commit writes in a loop while their backends are terminated: each success is there once, no failure was applied', async (t) => {
      const keyed = client(true);
      const unkeyed = client(false);
      const until = Date.now() + 7000;
      const attempts: Attempt[] = [];
      let seq = 0;
      const worker = async (c: HeliosDBClient, kind: string) => {
        while (Date.now() < until) {
          const marker = `w-${kind}-${seq++}`;
          try {
            const ids = (await c.query<{ id: number }>(insertSql, [marker])).rows.map((r) => r.id);
            attempts.push({ marker, outcome: 'ok', stage: '', ids });
          } catch (e) {
            attempts.push({
              marker,
              outcome: e instanceof AmbiguousResultError ? 'ambiguous' : 'failed',
              stage: 'write',
              ids: [],
              error: kindOf(e),
            });
          }
        }
      };
      const [killed] = await Promise.all([
        killer(until, 300),
        worker(keyed, 'k'),
        worker(keyed, 'k'),
        worker(keyed, 'k'),
        worker(keyed, 'k'),
        worker(unkeyed, 'u'),
        worker(unkeyed, 'u'),
      ]);
      t.diagnostic(
        `${killed} backends terminated; client retries: keyed ${keyed.pool.getStats().retries}, unkeyed ${unkeyed.pool.getStats().retries}`,
      );
      const r = await check(t, 'w', attempts);
      assert.ok(killed >= 10, `the backends were terminated (${killed})`);
      assert.ok(keyed.pool.getStats().retries >= 1, 'keyed writes cut off by a kill were sent again');
      assert.ok(r.byOutcome.ok >= 100, `writes went on between the kills (${r.byOutcome.ok})`);
      await settled();
    });

    test("the server's idle connections terminated, then at once reads, keyed writes and transactions: each write applied once", async (t) => {
      const c = client(true);
      let killed = 0;
      const failures: string[] = [];
      const attempts: Attempt[] = [];
      // Each round: POOL keyed writes, POOL reads, two BEGIN + ROLLBACK.
      for (let round = 0; round < 20; round++) {
        // Fill the pool, so that every connection the next calls get is one that was just killed.
        await Promise.all(Array.from({ length: POOL * 2 }, () => c.query('SELECT pg_sleep(0.005)')));
        const r = await admin.query(
          `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'idle'`,
          [app],
        );
        killed += r.rows[0].n as number;
        const markers = Array.from({ length: POOL }, (_, i) => `idle-${round}-${i}`);
        const results = await Promise.allSettled([
          ...markers.map((m) => c.query<{ id: number }>(`INSERT INTO ${table} (v) VALUES ($1) RETURNING id`, [m])),
          ...Array.from({ length: POOL }, (_, i) => c.query('SELECT $1::int AS i', [i])),
          ...Array.from({ length: 2 }, async () => {
            const tx = await c.begin();
            await tx.rollback();
          }),
        ]);
        results.forEach((x, i) => {
          if (x.status === 'rejected') failures.push(kindOf(x.reason));
          if (i < markers.length) {
            attempts.push(
              x.status === 'fulfilled'
                ? { marker: markers[i]!, outcome: 'ok', stage: '', ids: (x.value as { rows: { id: number }[] }).rows.map((row) => row.id) }
                : {
                    marker: markers[i]!,
                    outcome: x.reason instanceof AmbiguousResultError ? 'ambiguous' : 'failed',
                    stage: 'write',
                    ids: [],
                    error: kindOf(x.reason),
                  },
            );
          }
        });
      }
      t.diagnostic(`${killed} idle backends terminated over 20 rounds; ${c.pool.getStats().retries} client retries`);
      await check(t, 'idle', attempts);
      assert.ok(killed >= 20 * POOL - 5, `the idle backends were terminated (${killed})`);
      await settled();
      await t.test('every call succeeded', () => {
        assert.deepEqual(failures, [], `of ${20 * (2 * POOL + 2)} calls`);
      });
    });

    test('reads, keyed writes and BEGIN under kills every ~150 ms: each write applied once', async (t) => {
      const c = client(true);
      const until = Date.now() + 4000;
      const attempts: Attempt[] = [];
      const failures: Record<string, number> = {};
      let calls = 0;
      let seq = 0;
      const worker = async () => {
        while (Date.now() < until) {
          const n = seq++;
          const kind = ['read', 'write', 'begin'][n % 3]!;
          const marker = `load-${n}`;
          calls++;
          try {
            if (kind === 'read') await c.query('SELECT $1::text AS m', [marker]);
            else if (kind === 'begin') await (await c.begin()).rollback();
            else
              attempts.push({
                marker,
                outcome: 'ok',
                stage: '',
                ids: (await c.query<{ id: number }>(`INSERT INTO ${table} (v) VALUES ($1) RETURNING id`, [marker])).rows.map((r) => r.id),
              });
          } catch (e) {
            failures[`${kind}: ${kindOf(e)}`] = (failures[`${kind}: ${kindOf(e)}`] ?? 0) + 1;
            if (kind === 'write')
              attempts.push({
                marker,
                outcome: e instanceof AmbiguousResultError ? 'ambiguous' : 'failed',
                stage: 'write',
                ids: [],
                error: kindOf(e),
              });
          }
        }
      };
      const [killed] = await Promise.all([killer(until, 150), ...Array.from({ length: POOL }, worker)]);
      t.diagnostic(`${killed} backends terminated; ${calls} calls; ${c.pool.getStats().retries} client retries`);
      await check(t, 'load', attempts);
      assert.ok(killed >= 10, `the backends were terminated (${killed})`);
      await settled();
      await t.test('no call failed', () => {
        assert.deepEqual(failures, {}, `of ${calls} calls`);
      });
    });
  });
}
