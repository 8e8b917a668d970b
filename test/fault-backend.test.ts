/**
 * PostgreSQL backends killed under the server (`pg_terminate_backend`) while it works: reads
 * carry on (retried), keyed writes apply once, a transaction whose backend died fails and is
 * cleaned up, and afterwards the server's database pool is back at its size with no leaked
 * session: what the server, the client and PostgreSQL itself report agrees. PostgreSQL only.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { AmbiguousResultError, createClient, type HeliosDBClient } from '@heliosdb/client';
import { backends, postgresSkipReason } from './helpers/backends.js';
import { startTestServer, type TestServer, uniqueName, waitFor } from './helpers/server.js';

const postgres = backends.find((b) => b.name === 'postgresql');
const POOL = 4;

if (!postgres) {
  test('PostgreSQL backends terminated under the server [postgresql]', { skip: postgresSkipReason }, () => {});
} else {
  describe('PostgreSQL backends terminated under the server [postgresql]', { timeout: 60_000 }, () => {
    const app = `fault-backend-${process.pid}`;
    let ts: TestServer;
    let admin: pg.Client;
    let client: HeliosDBClient;
    let table: string;

    const backendsOfApp = async () =>
      Number((await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [app])).rows[0].n);
    /** Uses every database connection of the server, so that each carries the client's application name. */
    const saturate = () => Promise.all(Array.from({ length: POOL * 4 }, () => client.query('SELECT pg_sleep(0.05)')));

    before(async () => {
      ts = await startTestServer(postgres, { httpPort: -1, poolSize: POOL, databaseApplicationName: app });
      admin = ts.admin!;
      table = uniqueName('term');
      await admin.query(`CREATE TABLE ${table} (id serial PRIMARY KEY, v text NOT NULL)`);
      client = createClient({ url: ts.server.grpcUrl, applicationName: app, minConnections: 2, timeoutMs: 10_000 });
    });
    after(async () => {
      await client?.close();
      await admin?.query(`DROP TABLE IF EXISTS ${table}`);
      await ts?.close();
    });

    test('a deadline reaches the server and cancels the statement in PostgreSQL; a write cut off by it is reported ambiguous', async (t) => {
      const marker = `deadline_marker_${process.pid}`;
      const t0 = performance.now();
      const err = await client.execute(`INSERT INTO ${table} (v) SELECT '${marker}' FROM pg_sleep(5)`, [], { timeoutMs: 500 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      const ms = performance.now() - t0;
      assert.ok(err instanceof AmbiguousResultError, `the client cannot know whether it committed: AmbiguousResultError (${String(err)})`);
      assert.ok(ms < 1500, `it failed at the deadline (${ms.toFixed(0)} ms)`);
      const running = async () =>
        Number(
          (
            await admin.query(
              `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%${marker}%' AND state = 'active' AND pid <> pg_backend_pid()`,
            )
          ).rows[0].n,
        );
      assert.ok(await waitFor(async () => (await running()) === 0, 3000), 'the statement no longer runs in PostgreSQL');
      assert.equal(
        Number((await admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE v = $1`, [marker])).rows[0].n),
        0,
        'and was not applied',
      );
      t.diagnostic(`deadline: the write failed after ${ms.toFixed(0)} ms (deadline 500 ms) and was cancelled in PostgreSQL`);
    });

    test('after its backends are killed the server recovers, and its pool returns to its size with no leaked session', async (t) => {
      await saturate();
      const baseline = ts.server.poolStats().total;
      assert.equal(baseline, POOL);
      assert.equal(await backendsOfApp(), POOL, "PostgreSQL sees the server's connections");

      const tx = await client.begin();
      await tx.execute(`INSERT INTO ${table} (v) VALUES ('in-tx')`);
      // Statements in flight when their backends die: reads are sent again, keyed writes too.
      const slowReads = Promise.allSettled(Array.from({ length: 2 }, () => client.query('SELECT pg_sleep(0.4), 1 AS one')));
      const slowWrites = Promise.allSettled(
        Array.from({ length: 1 }, (_, i) =>
          client.query(`INSERT INTO ${table} (v) SELECT $1 FROM pg_sleep(0.4) RETURNING id`, [`slow${i}`]),
        ),
      );
      await new Promise((r) => setTimeout(r, 150));
      const killed = (
        await admin.query('SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1', [app])
      ).rows[0].n;
      assert.ok(killed >= 1, `backends terminated (${killed})`);
      for (const r of await slowReads)
        assert.equal(r.status, 'fulfilled', `a read in flight was sent again (${String((r as PromiseRejectedResult).reason)})`);
      for (const r of await slowWrites) {
        assert.equal(r.status, 'fulfilled', `a keyed write in flight was sent again (${String((r as PromiseRejectedResult).reason)})`);
      }
      assert.equal(
        Number((await admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE v = 'slow0'`)).rows[0].n),
        1,
        'and applied once',
      );

      // Work carries on: reads (retried where needed) and keyed writes (once each).
      const reads = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => client.query('SELECT $1::int AS i', [i])));
      const writes = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => client.execute(`INSERT INTO ${table} (v) VALUES ($1)`, [`w${i}`])),
      );
      const failedReads = reads.filter((r) => r.status === 'rejected');
      assert.equal(
        failedReads.length,
        0,
        `every read succeeded (${failedReads.map((r) => String((r as PromiseRejectedResult).reason)).join('; ')})`,
      );
      for (let i = 0; i < 10; i++) {
        const n = Number((await admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE v = $1`, [`w${i}`])).rows[0].n);
        const w = writes[i];
        if (w.status === 'fulfilled') assert.equal(n, 1, `write ${i} succeeded: applied once`);
        else
          assert.ok(
            w.reason instanceof AmbiguousResultError ? n <= 1 : n === 0,
            `write ${i} failed (${String(w.reason)}): applied ${n} times`,
          );
      }

      // The transaction lost its backend: it fails, and is gone on both sides.
      const err = await tx.execute('SELECT 1').then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof Error, 'the transaction whose backend was killed fails');
      await tx.rollback().catch(() => {});
      assert.equal(tx.finished, true);
      assert.equal(
        Number((await admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE v = 'in-tx'`)).rows[0].n),
        0,
        'its insert is gone',
      );

      // Back to the baseline, and everyone agrees.
      await saturate();
      assert.ok(
        await waitFor(async () => {
          const s = ts.server.poolStats();
          return s.total === baseline && s.idle === s.total && s.waiting === 0 && (await backendsOfApp()) === s.total;
        }, 10_000),
        `the pool is back at ${baseline}: server ${JSON.stringify(ts.server.poolStats())}, PostgreSQL ${await backendsOfApp()}`,
      );
      assert.equal(ts.server.openTransactions(), 0, 'no transaction session left on the server');
      assert.equal(client.stats().openTransactions, 0, 'none on the client');
      const cs = client.pool.getStats();
      assert.equal(cs.inFlight, 0);
      assert.equal(cs.totalConnections, 2, 'the client pool is at its minimum');
      assert.equal(cs.endpoints[0].circuit, 'closed', 'a database failure does not open the circuit of a live server');
      t.diagnostic(
        `backends: ${killed} terminated; ${cs.retries} client retries; server pool back to ${ts.server.poolStats().total}, PostgreSQL shows ${await backendsOfApp()}`,
      );
    });
  });
}
