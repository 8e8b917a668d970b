/**
 * The bank: 8 accounts, concurrent transfers for a few seconds through two real server processes
 * on one PostgreSQL database, while the proxies in front of them reset connections and one
 * server is SIGKILLed and restarted. Half the transfers are SERIALIZABLE transactions
 * (`client.transaction`, re-run on serialization failures), half single auto-commit statements
 * retried under their idempotency key. Afterwards: the total never changed, no balance is
 * negative, every balance equals its ledger, every transfer the client saw succeed is in the
 * ledger exactly once, every transfer that failed definitely is not, and no transfer is there
 * twice. PostgreSQL only.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { AmbiguousResultError, createClient, type HeliosDBClient, IsolationLevel } from '@heliosdb/client';
import { backends, postgresSkipReason } from './helpers/backends.js';
import type { FaultProxy } from './helpers/fault-proxy.js';
import type { ServerProcess } from './helpers/processes.js';
import { type ServerPair, startServerPair } from './helpers/server-pair.js';
import { uniqueName } from './helpers/server.js';

const postgres = backends.find((b) => b.name === 'postgresql');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const ACCOUNTS = 8;
const START = 1000;
const RUN_MS = 5000;
const WORKERS = 12;

type Outcome = 'ok' | 'failed' | 'ambiguous' | 'refused';

if (!postgres) {
  test('bank transfers under faults [postgresql]', { skip: postgresSkipReason }, () => {});
} else {
  describe('bank transfers under faults [postgresql]', { timeout: 90_000 }, () => {
    const databaseUrl = postgres.databaseUrl!;
    let pair: ServerPair | undefined;
    let a: ServerProcess;
    let pa: FaultProxy;
    let pb: FaultProxy;
    let admin: pg.Client;
    let client: HeliosDBClient;
    let accounts: string;
    let ledger: string;

    before(async () => {
      pair = await startServerPair(databaseUrl);
      ({ a, pa, pb, admin } = pair);
      accounts = uniqueName('accounts');
      ledger = uniqueName('ledger');
      await admin.query(`CREATE TABLE ${accounts} (id int PRIMARY KEY, balance int NOT NULL)`);
      // No unique constraint on transfer_id: a transfer applied twice would show.
      await admin.query(
        `CREATE TABLE ${ledger} (transfer_id text NOT NULL, from_id int NOT NULL, to_id int NOT NULL, amount int NOT NULL)`,
      );
      await admin.query(`INSERT INTO ${accounts} SELECT g, ${START} FROM generate_series(1, ${ACCOUNTS}) g`);
      client = createClient({
        urls: [pa.grpcUrl, pb.grpcUrl],
        minConnections: 4,
        timeoutMs: 5000,
        keepaliveIntervalMs: 1000,
        keepaliveTimeoutMs: 1000,
        retry: { maxAttempts: 6 },
        circuitBreaker: { failureThreshold: 3, openMs: 300, maxOpenMs: 1000 },
      });
    });
    after(async () => {
      await client?.close();
      await admin?.query(`DROP TABLE IF EXISTS ${accounts}, ${ledger}`);
      await pair?.close();
    });

    async function transferInTransaction(id: string, from: number, to: number, amount: number): Promise<Outcome> {
      return client.transaction(
        async (tx) => {
          const { balance } = await tx.queryOne<{ balance: number }>(`SELECT balance FROM ${accounts} WHERE id = $1`, [from]);
          if (balance < amount) return 'refused' as const;
          await tx.execute(`UPDATE ${accounts} SET balance = balance - $1 WHERE id = $2`, [amount, from]);
          await tx.execute(`UPDATE ${accounts} SET balance = balance + $1 WHERE id = $2`, [amount, to]);
          await tx.execute(`INSERT INTO ${ledger} VALUES ($1, $2, $3, $4)`, [id, from, to, amount]);
          return 'ok' as const;
        },
        { isolationLevel: IsolationLevel.Serializable, maxRetries: 10 },
      );
    }

    async function transferInOneStatement(id: string, from: number, to: number, amount: number): Promise<Outcome> {
      const r = await client.execute(
        `WITH d AS (UPDATE ${accounts} SET balance = balance - $3 WHERE id = $1 AND balance >= $3 RETURNING id),
              c AS (UPDATE ${accounts} SET balance = balance + $3 WHERE id = $2 AND EXISTS (SELECT 1 FROM d) RETURNING id)
         INSERT INTO ${ledger} SELECT $4, $1, $2, $3 FROM c`,
        [from, to, amount, id],
      );
      return r.rowCount === 1 ? 'ok' : 'refused';
    }

    test('the total never changes, no balance goes negative, and every transfer seen to succeed is in the ledger exactly once', async (t) => {
      const outcomes = new Map<string, Outcome>();
      const errors = new Map<string, number>();
      const stopAt = Date.now() + RUN_MS;
      const worker = async (w: number) => {
        for (let i = 0; Date.now() < stopAt; i++) {
          const id = randomUUID();
          const from = 1 + Math.floor(Math.random() * ACCOUNTS);
          const to = 1 + ((from + Math.floor(Math.random() * (ACCOUNTS - 1))) % ACCOUNTS);
          const amount = 1 + Math.floor(Math.random() * 100);
          try {
            outcomes.set(
              id,
              await ((w + i) % 2 === 0 ? transferInTransaction(id, from, to, amount) : transferInOneStatement(id, from, to, amount)),
            );
          } catch (e) {
            outcomes.set(id, e instanceof AmbiguousResultError ? 'ambiguous' : 'failed');
            const name = `${(e as Error).constructor.name}:${(e as { code?: string }).code}`;
            errors.set(name, (errors.get(name) ?? 0) + 1);
            await sleep(20);
          }
        }
      };
      const chaos = (async () => {
        const t0 = Date.now();
        let killed = false;
        let restarted: Promise<void> | undefined;
        while (Date.now() < stopAt) {
          await sleep(400);
          (Math.random() < 0.5 ? pa : pb).resetAll();
          if (!killed && Date.now() - t0 > 1500) {
            killed = true;
            await a.kill();
            restarted = a.start();
          }
        }
        await restarted;
      })();
      await Promise.all([...Array.from({ length: WORKERS }, (_, w) => worker(w)), chaos]);

      const { rows: balances } = await admin.query(`SELECT id, balance FROM ${accounts} ORDER BY id`);
      const total = balances.reduce((s, r) => s + r.balance, 0);
      assert.equal(total, ACCOUNTS * START, 'the total never changed');
      assert.ok(
        balances.every((r) => r.balance >= 0),
        `no balance is negative: ${JSON.stringify(balances)}`,
      );
      const { rows: flows } = await admin.query(
        `SELECT a.id, ${START} - coalesce((SELECT sum(amount) FROM ${ledger} WHERE from_id = a.id), 0) + coalesce((SELECT sum(amount) FROM ${ledger} WHERE to_id = a.id), 0) AS expected, a.balance
           FROM ${accounts} a ORDER BY a.id`,
      );
      for (const f of flows) assert.equal(Number(f.expected), f.balance, `account ${f.id}: balance equals its ledger`);
      const { rows: counted } = await admin.query(`SELECT transfer_id, count(*)::int AS n FROM ${ledger} GROUP BY transfer_id`);
      const inLedger = new Map(counted.map((r) => [r.transfer_id as string, r.n as number]));
      assert.ok(
        [...inLedger.values()].every((n) => n === 1),
        'no transfer is in the ledger twice',
      );
      const tally: Record<Outcome, number> = { ok: 0, failed: 0, ambiguous: 0, refused: 0 };
      let ambiguousApplied = 0;
      for (const [id, o] of outcomes) {
        tally[o]++;
        if (o === 'ok') assert.equal(inLedger.get(id), 1, `transfer ${id} succeeded: it is in the ledger once`);
        if (o === 'failed' || o === 'refused')
          assert.equal(inLedger.get(id), undefined, `transfer ${id} failed definitely (${o}): it is not in the ledger`);
        if (o === 'ambiguous' && inLedger.has(id)) ambiguousApplied++;
      }
      for (const id of inLedger.keys()) assert.ok(outcomes.has(id), 'every ledger entry is a transfer the client made');
      const s = client.pool.getStats();
      t.diagnostic(
        `bank: ${outcomes.size} transfers in ${RUN_MS} ms: ${tally.ok} ok, ${tally.refused} refused (insufficient funds), ${tally.failed} failed, ${tally.ambiguous} ambiguous (${ambiguousApplied} of them applied); ` +
          `${s.retries} retries, ${s.retriesThrottled} throttled, ${client.stats().transactionRetries} transaction re-runs; proxy resets ${pa.stats.resets + pb.stats.resets}; errors ${JSON.stringify(Object.fromEntries(errors))}`,
      );
      assert.ok(tally.ok >= 20, `enough transfers went through (${tally.ok})`);
    });
  });
}
