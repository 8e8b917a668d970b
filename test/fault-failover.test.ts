/**
 * Several servers in front of one PostgreSQL database (`urls`), as real processes: calls spread
 * over both; when one is SIGKILLed, new work moves to the other (reads retried there, keyed
 * writes applied once), its circuit opens, and the transactions it held fail with an error that
 * says so while those on the other server commit; once it is back its circuit closes and it gets
 * calls again. PostgreSQL only (the servers must share a database).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { ConnectionError, createClient, type HeliosDBClient, type Transaction } from '@heliosdb/client';
import { backends, postgresSkipReason } from './helpers/backends.js';
import type { FaultProxy } from './helpers/fault-proxy.js';
import type { ServerProcess } from './helpers/processes.js';
import { type ServerPair, startServerPair } from './helpers/server-pair.js';
import { uniqueName, waitFor } from './helpers/server.js';

const postgres = backends.find((b) => b.name === 'postgresql');

if (!postgres) {
  test('failover between servers [postgresql]', { skip: postgresSkipReason }, () => {});
} else {
  describe('failover between servers [postgresql]', { timeout: 90_000 }, () => {
    const databaseUrl = postgres.databaseUrl!;
    let pair: ServerPair | undefined;
    let a: ServerProcess;
    let pa: FaultProxy;
    let pb: FaultProxy;
    let admin: pg.Client;
    let client: HeliosDBClient;
    let table: string;

    before(async () => {
      pair = await startServerPair(databaseUrl);
      ({ a, pa, pb, admin } = pair);
      table = uniqueName('failover');
      await admin.query(`CREATE TABLE ${table} (id serial PRIMARY KEY, v text NOT NULL)`);
      client = createClient({
        urls: [pa.grpcUrl, pb.grpcUrl],
        minConnections: 2,
        keepaliveIntervalMs: 1000,
        keepaliveTimeoutMs: 1000,
        timeoutMs: 15_000,
        circuitBreaker: { failureThreshold: 3, openMs: 300, maxOpenMs: 1000 },
      });
    });
    after(async () => {
      await client?.close();
      await admin?.query(`DROP TABLE IF EXISTS ${table}`);
      await pair?.close();
    });

    /** Which server a transaction is on: the proxy that carried its statement. */
    async function serverOf(tx: Transaction): Promise<'a' | 'b'> {
      const before = pa.stats.bytesUp;
      await tx.query('SELECT 1');
      return pa.stats.bytesUp > before ? 'a' : 'b';
    }

    test('calls spread over both servers; when one dies, new work moves to the other and its transactions fail clearly', async (t) => {
      const [ua, ub] = [pa.stats.bytesUp, pb.stats.bytesUp];
      for (let i = 0; i < 40; i++) assert.deepEqual((await client.query('SELECT $1::int AS i', [i])).rows, [{ i }]);
      assert.ok(
        pa.stats.bytesUp - ua > 1000 && pb.stats.bytesUp - ub > 1000,
        `both servers got calls (${pa.stats.bytesUp - ua} / ${pb.stats.bytesUp - ub} bytes)`,
      );
      const stats0 = client.pool.getStats();
      assert.equal(stats0.endpoints.length, 2);
      assert.ok(
        stats0.endpoints.every((e) => e.circuit === 'closed' && e.connections >= 1),
        JSON.stringify(stats0.endpoints),
      );

      // Transactions on both servers.
      const txs: { tx: Transaction; on: 'a' | 'b' }[] = [];
      for (let i = 0; i < 12 && !(txs.some((x) => x.on === 'a') && txs.some((x) => x.on === 'b')); i++) {
        const tx = await client.begin();
        txs.push({ tx, on: await serverOf(tx) });
      }
      const onA = txs.filter((x) => x.on === 'a');
      const onB = txs.filter((x) => x.on === 'b');
      assert.ok(onA.length > 0 && onB.length > 0, 'transactions were begun on both servers');
      for (const { tx } of txs) await tx.execute(`INSERT INTO ${table} (v) VALUES ($1)`, [`tx-${tx.id}`]);

      const t0 = performance.now();
      await a.kill();

      // New work goes to b: reads are retried there; keyed writes apply once.
      for (let i = 0; i < 30; i++) assert.deepEqual((await client.query('SELECT $1::int AS i', [i])).rows, [{ i }]);
      for (let i = 0; i < 10; i++) await client.execute(`INSERT INTO ${table} (v) VALUES ($1)`, [`after-${i}`]);
      const moved = performance.now() - t0;
      const s = client.pool.getStats();
      const [ea, eb] = s.endpoints;
      t.diagnostic(
        `failover: 30 reads and 10 writes done ${moved.toFixed(0)} ms after the kill; ${s.retries} retries; a's circuit ${ea.circuit} (opened ${ea.circuitOpened}x), b's ${eb.circuit}`,
      );
      assert.ok(ea.circuitOpened >= 1, `the dead server's circuit opened (${JSON.stringify(ea)})`);
      assert.equal(eb.circuit, 'closed');
      const rows = (await admin.query(`SELECT v, count(*)::int AS n FROM ${table} WHERE v LIKE 'after-%' GROUP BY v`)).rows;
      assert.equal(rows.length, 10);
      assert.ok(
        rows.every((r) => r.n === 1),
        'every write applied once',
      );

      // Transactions on the dead server fail, saying so; those on the other commit.
      for (const { tx } of onA) {
        const err = await tx.execute('SELECT 1').then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof ConnectionError, `a transaction on the dead server fails with a ConnectionError (${String(err)})`);
        assert.match(err.message, /the server holding this transaction|transaction cannot continue|bound to is closed/);
        await tx.rollback().catch(() => {});
      }
      for (const { tx } of onB) await tx.commit();
      const committed = (await admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE v LIKE 'tx-%'`)).rows[0].n;
      assert.equal(committed, onB.length, 'exactly the transactions on the live server committed');

      // a comes back: its circuit closes and it gets calls again.
      await a.start();
      const t1 = performance.now();
      assert.ok(await waitFor(() => client.pool.getStats().endpoints[0].circuit === 'closed', 15_000), "a's circuit closes");
      t.diagnostic(`failover: a's circuit closed ${(performance.now() - t1).toFixed(0)} ms after its restart`);
      const ua2 = pa.stats.bytesUp;
      for (let i = 0; i < 20; i++) await client.query('SELECT 1');
      assert.ok(pa.stats.bytesUp > ua2, 'a gets calls again');
    });
  });
}
