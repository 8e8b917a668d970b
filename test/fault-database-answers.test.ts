/**
 * Answers lost between the server and PostgreSQL: a fault proxy (test/helpers/fault-proxy.ts) in
 * front of the database swallows PostgreSQL's answer to the statement the server just sent (it
 * ran, and committed when it was auto-commit) and then resets that connection. What the caller
 * is told must agree with the table: a success there exactly once, an AmbiguousResultError at
 * most once, any other failure not at all. Keyed writes and commits are settled by their keys;
 * a write without a key must not be sent again. PostgreSQL only.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { AmbiguousResultError, createClient, type HeliosDBClient } from '@heliosdb/client';
import { type HeliosServer, startServer } from '../src/server/server.js';
import { backends, postgresSkipReason } from './helpers/backends.js';
import { FaultProxy } from './helpers/fault-proxy.js';
import { uniqueName, waitFor } from './helpers/server.js';

const postgres = backends.find((b) => b.name === 'postgresql');

type Outcome = 'ok' | 'ambiguous' | 'failed';

if (!postgres) {
  test('outcomes of writes whose answers are lost between the server and PostgreSQL [postgresql]', { skip: postgresSkipReason }, () => {});
} else {
  describe('outcomes of writes whose answers are lost between the server and PostgreSQL [postgresql]', { timeout: 30_000 }, () => {
    let dbProxy: FaultProxy;
    let server: HeliosServer;
    let admin: pg.Client;
    let table: string;
    let procedure: string;
    const clients: HeliosDBClient[] = [];

    const count = async (marker: string) =>
      Number((await admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE v = $1`, [marker])).rows[0].n);
    /**
     * Loses PostgreSQL's answer to the next statement the server sends (it ran, and committed
     * when it was auto-commit), then resets that connection; returns what the caller was told.
     */
    async function loseDatabaseAnswer(run: () => Promise<unknown>, warm?: HeliosDBClient): Promise<{ outcome: Outcome; error: string }> {
      // A database connection already open (not one being opened, whose login would be lost instead).
      if (warm) await warm.query('SELECT 1');
      // Nothing else in flight (each connection idle, or held by an open transaction): the next
      // bytes from PostgreSQL answer `run`'s statement.
      const quiet = () => server.poolStats().idle + server.openTransactions() === server.poolStats().total;
      assert.ok(
        await waitFor(quiet),
        `the server is quiet: ${JSON.stringify(server.poolStats())}, ${server.openTransactions()} transactions`,
      );
      dbProxy.loseNextResponse(100);
      try {
        await run();
        return { outcome: 'ok', error: '' };
      } catch (e) {
        return { outcome: e instanceof AmbiguousResultError ? 'ambiguous' : 'failed', error: String(e) };
      } finally {
        dbProxy.heal();
      }
    }
    const agrees = (what: string, r: { outcome: Outcome; error: string }, n: number) => {
      const said = `${what}: ${r.outcome}${r.error ? ` (${r.error})` : ''}, ${n} row(s)`;
      if (r.outcome === 'ok') assert.equal(n, 1, `${said}: a reported success is there exactly once`);
      else if (r.outcome === 'ambiguous') assert.ok(n <= 1, `${said}: applied at most once`);
      else assert.equal(n, 0, `${said}: a definite failure is absent`);
      return said;
    };

    before(async () => {
      const url = new URL(postgres.databaseUrl!.replace(/^postgresql:/, 'postgres:'));
      dbProxy = await FaultProxy.start(Number(url.port || 5432), { targetHost: url.hostname });
      url.port = String(dbProxy.port);
      // One database connection for callers, so that the lost answer is the call's.
      server = await startServer({ port: 0, httpPort: -1, logLevel: 'silent', databaseUrl: url.toString(), poolSize: 1 });
      admin = new pg.Client({ connectionString: postgres.databaseUrl });
      await admin.connect();
      table = uniqueName('dblost');
      procedure = `${table}_commits`;
      await admin.query(`CREATE TABLE ${table} (id serial PRIMARY KEY, v text NOT NULL)`);
      await admin.query(
        `CREATE PROCEDURE ${procedure}(m text) LANGUAGE plpgsql AS $$ BEGIN INSERT INTO ${table} (v) VALUES (m); COMMIT; END $$`,
      );
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await server?.close();
      await dbProxy?.close();
      await admin?.query(`DROP TABLE IF EXISTS ${table} CASCADE`);
      await admin?.query(`DROP PROCEDURE IF EXISTS ${procedure}(text)`);
      await admin?.end();
    });
    const client = (idempotencyKeys: boolean) => {
      const c = createClient({
        url: server.grpcUrl,
        timeoutMs: 10_000,
        retry: { idempotencyKeys, baseDelayMs: 10, maxDelayMs: 50, budget: false },
      });
      clients.push(c);
      return c;
    };

    test('a keyed write, and commits with and without a key: settled, or reported ambiguous', async (t) => {
      const keyed = client(true);
      const unkeyed = client(false);
      const marker = () => `db-${randomBytes(5).toString('hex')}`;
      const m1 = marker();
      const w = await loseDatabaseAnswer(() => keyed.execute(`INSERT INTO ${table} (v) VALUES ($1)`, [m1]), keyed);
      t.diagnostic(agrees('keyed INSERT', w, await count(m1)));
      assert.equal(w.outcome, 'ok', 'the key settles it');
      for (const [name, c] of [
        ['keyed commit', keyed],
        ['unkeyed commit', unkeyed],
      ] as const) {
        const m = marker();
        const tx = await c.begin();
        await tx.execute(`INSERT INTO ${table} (v) VALUES ($1)`, [m]);
        const r = await loseDatabaseAnswer(() => tx.commit());
        t.diagnostic(agrees(name, r, await count(m)));
        if (name === 'unkeyed commit')
          assert.equal(r.outcome, 'ambiguous', 'a COMMIT whose answer the database lost is ambiguous without a key');
      }
    });

    test('writes without a key (keys off, a script that commits itself, CALL of a procedure that commits) are never sent again', async (t) => {
      const keyed = client(true);
      const unkeyed = client(false);
      const seen: [string, { outcome: Outcome; error: string }, number][] = [];
      for (const [name, c, sql] of [
        ['keys off: INSERT', unkeyed, `INSERT INTO ${table} (v) VALUES ($1)`],
        ['script with COMMIT', keyed, `BEGIN; INSERT INTO ${table} (v) VALUES ('$1'); COMMIT`],
        ['CALL of a committing procedure', keyed, `CALL ${procedure}($1)`],
      ] as const) {
        const m = `db-${randomBytes(5).toString('hex')}`;
        const r = await loseDatabaseAnswer(() => (sql.includes("'$1'") ? c.execute(sql.replace('$1', m)) : c.execute(sql, [m])), c);
        const n = await count(m);
        seen.push([name, r, n]);
        t.diagnostic(`${name}: ${r.outcome}${r.error ? ` (${r.error})` : ''}, ${n} row(s)`);
      }
      for (const [name, r, n] of seen) agrees(name, r, n);
    });
  });
}
