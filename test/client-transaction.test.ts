/**
 * Client transactions against a real server on both backends: begin / commit / rollback, isolation
 * levels and options, `client.transaction` with its retries (a money transfer under SERIALIZABLE
 * with many concurrent transactions), savepoints and nested transactions, finished and expired
 * transactions, disposal, channel pinning, and server-side cursors with WHERE CURRENT OF.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  createClient,
  Cursor,
  type HeliosDBClient,
  HeliosDBError,
  IsolationLevel,
  QueryError,
  SerializationFailureError,
  Transaction,
  TransactionError,
  transactionRetryDefaults,
  UniqueViolationError,
} from '@heliosdb/client';
import { retryDelayMs } from '../src/client/transaction-retry.js';
import { describeEachBackend } from './helpers/backends.js';
import { rejects } from './helpers/assert-error.js';
import { startTestServer, type TestServer, waitFor } from './helpers/server.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeEachBackend('client transactions', (backend) => {
  let ts: TestServer;
  let client: HeliosDBClient;
  const t = `ct_${randomBytes(4).toString('hex')}`;
  const pg = backend.name === 'postgresql';

  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
    client = createClient({ url: ts.server.grpcUrl, minConnections: 2, applicationName: 'client-transaction-test' });
    await client.execute(`CREATE TABLE ${t} (id int PRIMARY KEY, v text)`);
    await client.execute(`CREATE TABLE ${t}_acc (id int PRIMARY KEY, balance int NOT NULL CHECK (balance >= 0))`);
  });

  after(async () => {
    await client?.execute(`DROP TABLE IF EXISTS ${t}; DROP TABLE IF EXISTS ${t}_acc`).catch(() => {});
    await client?.close();
    await ts?.close();
  });

  async function ids(): Promise<number[]> {
    return (await client.query<{ id: number }>(`SELECT id FROM ${t} ORDER BY id`)).rows.map((r) => r.id);
  }

  async function reset(): Promise<void> {
    await client.execute(`DELETE FROM ${t}`);
  }

  test('begin, commit and rollback; id, options and state', async () => {
    await reset();
    const before = client.stats();
    const tx = await client.begin({ isolationLevel: IsolationLevel.RepeatableRead });
    try {
      assert.ok(tx instanceof Transaction);
      assert.ok(tx.id.length > 0);
      assert.equal(tx.isolationLevel, 'REPEATABLE READ');
      assert.equal(tx.readOnly, false);
      assert.equal(tx.state, 'open');
      assert.ok(tx.idleTimeoutMs > 0);
      assert.equal(client.stats().openTransactions, before.openTransactions + 1);
      await tx.execute(`INSERT INTO ${t} VALUES (1, 'a')`);
      assert.deepEqual(await tx.queryOne(`SELECT v FROM ${t} WHERE id = $1`, [1]), { v: 'a' });
      assert.deepEqual((await tx.sql<{ v: string }>`SELECT ${'a'}::text AS v`).rows, [{ v: 'a' }]);
      assert.equal(await tx.queryMaybeOne(`SELECT v FROM ${t} WHERE id = 2`), null);
      await tx.commit();
    } finally {
      await tx[Symbol.asyncDispose]();
    }
    assert.equal(tx.state, 'committed');
    assert.ok(tx.finished);

    await using tx2 = await client.begin();
    await tx2.execute(`INSERT INTO ${t} VALUES (2, 'b')`);
    await tx2.rollback();
    assert.equal(tx2.state, 'rolledBack');
    assert.deepEqual(await ids(), [1]);

    const after = client.stats();
    assert.equal(after.openTransactions, before.openTransactions);
    assert.equal(after.transactionsBegun, before.transactionsBegun + 2);
    assert.equal(after.transactionsCommitted, before.transactionsCommitted + 1);
    assert.equal(after.transactionsRolledBack, before.transactionsRolledBack + 1);
    assert.equal(ts.server.openTransactions(), 0);
  });

  test('isolation levels, READ ONLY and DEFERRABLE reach the database', async () => {
    const levels: [IsolationLevel, string][] = [
      [IsolationLevel.ReadUncommitted, 'read uncommitted'], // PostgreSQL runs it as READ COMMITTED
      [IsolationLevel.ReadCommitted, 'read committed'],
      [IsolationLevel.RepeatableRead, 'repeatable read'],
      [IsolationLevel.Serializable, 'serializable'],
    ];
    for (const [level, shown] of levels) {
      const got = await client.transaction(async (tx) => Object.values(await tx.queryOne('SHOW transaction_isolation')), {
        isolationLevel: level,
      });
      assert.deepEqual(got, [shown], level);
    }
    await using ro = await client.begin({ isolationLevel: IsolationLevel.Serializable, readOnly: true, deferrable: true });
    {
      assert.equal(ro.readOnly, true);
      assert.equal(ro.deferrable, true);
      assert.deepEqual(Object.values(await ro.queryOne('SHOW transaction_read_only')), ['on']);
      const err = await rejects(ro.execute(`INSERT INTO ${t} VALUES (99, 'x')`), QueryError);
      assert.equal(err.sqlstate, '25006', 'read_only_sql_transaction');
      await ro.rollback();
    }
    await rejects(client.begin({ isolationLevel: 'CHAOS' as IsolationLevel }), TypeError);
    assert.equal(ts.server.openTransactions(), 0);
  });

  test('client.transaction commits what the callback did and returns its result', async () => {
    await reset();
    const r = await client.transaction(async (tx) => {
      await tx.execute(`INSERT INTO ${t} VALUES (1, 'a'), (2, 'b')`);
      return (await tx.query(`SELECT * FROM ${t}`)).rowCount;
    });
    assert.equal(r, 2);
    assert.deepEqual(await ids(), [1, 2]);
  });

  test('client.transaction rolls back when the callback throws, and does not retry other errors', async () => {
    await reset();
    let runs = 0;
    const retriesBefore = client.stats().transactionRetries;
    await rejects(
      client.transaction(async (tx) => {
        runs++;
        await tx.execute(`INSERT INTO ${t} VALUES (1, 'a')`);
        await tx.execute(`INSERT INTO ${t} VALUES (1, 'dup')`);
      }),
      UniqueViolationError,
    );
    const custom = new Error('mine');
    await assert.rejects(
      client.transaction(async (tx) => {
        await tx.execute(`INSERT INTO ${t} VALUES (5, 'a')`);
        throw custom;
      }),
      (e) => e === custom,
    );
    assert.equal(runs, 1);
    assert.equal(client.stats().transactionRetries, retriesBefore);
    assert.deepEqual(await ids(), []);
    assert.equal(ts.server.openTransactions(), 0);
  });

  test('a money transfer under SERIALIZABLE with many concurrent transactions keeps the total', async (tc) => {
    const accounts = 4;
    const start = 1000;
    await client.execute(`DELETE FROM ${t}_acc`);
    await client.executeMany(
      `INSERT INTO ${t}_acc VALUES ($1, $2)`,
      Array.from({ length: accounts }, (_, i) => [i + 1, start]),
    );
    const retriesBefore = client.stats().transactionRetries;
    const seen: unknown[] = [];
    const transfers = 40;
    const results = await Promise.all(
      Array.from({ length: transfers }, (_, i) => {
        const from = (i % accounts) + 1;
        const to = ((i + 1 + (i % 3)) % accounts) + 1;
        const amount = 1 + (i % 7);
        return client.transaction(
          async (tx) => {
            const { balance } = await tx.queryOne<{ balance: number }>(`SELECT balance FROM ${t}_acc WHERE id = $1`, [from]);
            if (balance < amount) return false;
            // Rows are locked in id order, so that the transfers conflict (40001) without deadlocking.
            const debit = () => tx.execute(`UPDATE ${t}_acc SET balance = $1 WHERE id = $2`, [balance - amount, from]);
            const credit = () => tx.execute(`UPDATE ${t}_acc SET balance = balance + $1 WHERE id = $2`, [amount, to]);
            if (from < to) {
              await debit();
              await credit();
            } else {
              await credit();
              await debit();
            }
            return true;
          },
          {
            isolationLevel: IsolationLevel.Serializable,
            maxRetries: 50,
            retryBaseDelayMs: 5,
            retryMaxDelayMs: 100,
            onRetry: (e) => seen.push(e),
          },
        );
      }),
    );
    assert.equal(results.filter(Boolean).length, transfers, 'every transfer committed');
    const total = await client.queryOne<{ total: bigint }>(`SELECT sum(balance) AS total FROM ${t}_acc`);
    assert.equal(total.total, BigInt(accounts * start), 'the total is unchanged');
    const retries = client.stats().transactionRetries - retriesBefore;
    assert.equal(retries, seen.length, 'every retry is counted');
    assert.ok(seen.every((e) => e instanceof SerializationFailureError || (e as HeliosDBError).code === 'DEADLOCK_DETECTED'));
    if (pg) assert.ok(retries > 0, `concurrent SERIALIZABLE transfers on PostgreSQL conflict and are retried (retries: ${retries})`);
    tc.diagnostic(`${transfers} concurrent transfers needed ${retries} retries`);
    assert.equal(ts.server.openTransactions(), 0);
  });

  test('a serialization failure re-runs the whole callback (deterministic conflict)', {
    skip: !pg && 'PGlite has one session: a concurrent writer cannot run while a transaction is open',
  }, async () => {
    await reset();
    await client.execute(`INSERT INTO ${t} VALUES (1, 'start')`);
    const retriesBefore = client.stats().transactionRetries;
    let runs = 0;
    const result = await client.transaction(
      async (tx) => {
        runs++;
        const row = await tx.queryOne<{ v: string }>(`SELECT v FROM ${t} WHERE id = 1`);
        // Another client changes the row after this transaction's snapshot, the first time only.
        if (runs === 1) await client.execute(`UPDATE ${t} SET v = 'outside' WHERE id = 1`);
        await tx.execute(`UPDATE ${t} SET v = $1 WHERE id = 1`, [`${row.v}+tx`]);
        return row.v;
      },
      { isolationLevel: IsolationLevel.RepeatableRead },
    );
    assert.equal(runs, 2);
    assert.equal(result, 'outside', 'the retry saw the other write');
    assert.equal(client.stats().transactionRetries, retriesBefore + 1);
    assert.deepEqual(await client.queryOne(`SELECT v FROM ${t} WHERE id = 1`), { v: 'outside+tx' });

    // maxRetries: 0 gives the conflict to the caller.
    await rejects(
      client.transaction(
        async (tx) => {
          await tx.queryOne(`SELECT v FROM ${t} WHERE id = 1`);
          await client.execute(`UPDATE ${t} SET v = 'again' WHERE id = 1`);
          await tx.execute(`UPDATE ${t} SET v = 'lost' WHERE id = 1`);
        },
        { isolationLevel: IsolationLevel.RepeatableRead, maxRetries: 0 },
      ),
      SerializationFailureError,
    );
    assert.deepEqual(await client.queryOne(`SELECT v FROM ${t} WHERE id = 1`), { v: 'again' });
  });

  test('savepoint rollback keeps the earlier work, and the transaction goes on', async () => {
    await reset();
    await using tx = await client.begin();
    {
      await tx.execute(`INSERT INTO ${t} VALUES (1, 'kept')`);
      const sp = await tx.savepoint();
      assert.ok(sp.name.length > 0);
      await tx.execute(`INSERT INTO ${t} VALUES (2, 'undone')`);
      await sp.rollback();
      await tx.execute(`INSERT INTO ${t} VALUES (3, 'after')`);
      await sp.release();
      await rejects(sp.rollback(), TransactionError);

      // A failed statement is undone by a named savepoint, and the transaction stays usable.
      const named = await tx.savepoint('before_dup');
      assert.equal(named.name, 'before_dup');
      await rejects(tx.execute(`INSERT INTO ${t} VALUES (1, 'dup')`), UniqueViolationError);
      await named.rollback();
      await tx.execute(`INSERT INTO ${t} VALUES (4, 'after failure')`);
      await tx.commit();
    }
    assert.deepEqual(await ids(), [1, 3, 4]);
  });

  test('nested tx.transaction(fn) undoes only its own work when it throws', async () => {
    await reset();
    await client.transaction(async (tx) => {
      await tx.execute(`INSERT INTO ${t} VALUES (1, 'outer')`);
      await assert.rejects(
        tx.transaction(async (inner) => {
          assert.equal(inner, tx);
          await inner.execute(`INSERT INTO ${t} VALUES (2, 'inner')`);
          throw new Error('inner fails');
        }),
        /inner fails/,
      );
      const kept = await tx.transaction(async (inner) => {
        await inner.execute(`INSERT INTO ${t} VALUES (3, 'inner ok')`);
        return 'ok';
      });
      assert.equal(kept, 'ok');
    });
    assert.deepEqual(await ids(), [1, 3]);
  });

  test('a finished transaction throws TRANSACTION_FINISHED without a round trip', async () => {
    const tx = await client.begin();
    await tx.commit();
    const calls = () => Object.values(client.metrics.snapshot()).reduce((n, m) => n + m.count, 0);
    const before = calls();
    const uses: [string, () => unknown][] = [
      ['query', () => tx.query('SELECT 1')],
      ['execute', () => tx.execute('SELECT 1')],
      ['queryOne', () => tx.queryOne('SELECT 1')],
      ['sql', () => tx.sql`SELECT ${1}`],
      ['stream', () => tx.stream('SELECT 1')],
      ['prepare', () => tx.prepare('SELECT 1')],
      ['batch', () => tx.batch([{ sql: 'SELECT 1' }])],
      ['executeMany', () => tx.executeMany('SELECT $1', [[1]])],
      ['cursor', () => tx.cursor('SELECT 1')],
      ['savepoint', () => tx.savepoint()],
      ['commit', () => tx.commit()],
      ['rollback after commit', () => tx.rollback()],
    ];
    for (const [what, use] of uses) {
      const err = await rejects(async () => use(), TransactionError);
      assert.equal(err.code, 'TRANSACTION_FINISHED', what);
      assert.match(err.message, /committed/, what);
    }
    assert.equal(calls(), before, 'no call reached the server');

    const rolled = await client.begin();
    await rolled.rollback();
    await rolled.rollback(); // a no-op
    assert.equal((await rejects(rolled.query('SELECT 1'), TransactionError)).code, 'TRANSACTION_FINISHED');
  });

  test('a failed statement makes COMMIT fail and finishes the transaction', async () => {
    await reset();
    await using tx = await client.begin();
    await rejects(tx.execute('SELECT 1/0'), QueryError);
    const aborted = await rejects(tx.query('SELECT 1'), TransactionError);
    assert.equal(aborted.code, 'TRANSACTION_ABORTED');
    await rejects(tx.commit(), TransactionError);
    assert.ok(tx.finished);
    await tx.rollback(); // nothing left to do
    assert.equal(ts.server.openTransactions(), 0);
  });

  test('await using rolls back a transaction left open, and close() rolls back open transactions', async () => {
    await reset();
    {
      await using tx = await client.begin();
      await tx.execute(`INSERT INTO ${t} VALUES (1, 'disposed')`);
    }
    assert.deepEqual(await ids(), []);

    const other = createClient({ url: ts.server.grpcUrl, minConnections: 1 });
    const tx = await other.begin();
    await tx.execute(`INSERT INTO ${t} VALUES (2, 'closed')`);
    await other.close();
    assert.equal(tx.state, 'rolledBack');
    assert.ok(await waitFor(() => ts.server.openTransactions() === 0));
    assert.deepEqual(await ids(), []);
  });

  test('a transaction pins one connection while it is open', async () => {
    const c = createClient({ url: ts.server.grpcUrl, minConnections: 3 });
    try {
      await c.query('SELECT 1');
      assert.equal(c.pool.getStats().activeConnections, 0);
      const tx = await c.begin();
      assert.equal(c.pool.getStats().activeConnections, 1, 'the pinned connection counts as active while idle');
      await Promise.all(Array.from({ length: 10 }, (_, i) => tx.query('SELECT $1::int AS i', [i])));
      await tx.commit();
      assert.equal(c.pool.getStats().activeConnections, 0, 'unpinned after commit');
    } finally {
      await c.close();
    }
  });

  test('cursors: fetch in pages, iterate, close, and UPDATE ... WHERE CURRENT OF', async () => {
    await reset();
    await client.executeMany(
      `INSERT INTO ${t} VALUES ($1, $2)`,
      Array.from({ length: 25 }, (_, i) => [i + 1, 'new']),
    );
    await client.transaction(async (tx) => {
      const cur = await tx.cursor<{ id: number }>(`SELECT id FROM ${t} WHERE id > $1 ORDER BY id`, [5]);
      assert.ok(cur instanceof Cursor);
      assert.match(cur.name, /^heliosdb_cursor_/);
      assert.deepEqual(await cur.fetch(3), [{ id: 6 }, { id: 7 }, { id: 8 }]);
      assert.deepEqual(
        (await cur.fetch(2)).map((r) => r.id),
        [9, 10],
      );
      await cur.close();
      assert.ok(cur.closed);
      assert.equal((await rejects(cur.fetch(1), HeliosDBError)).code, 'CURSOR_CLOSED');

      const seen: number[] = [];
      for await (const row of await tx.cursor<{ id: number }>(`SELECT id FROM ${t} ORDER BY id`, [], { fetchSize: 4 })) seen.push(row.id);
      assert.deepEqual(
        seen,
        Array.from({ length: 25 }, (_, i) => i + 1),
      );

      // Interleave with other statements: mark every even row through the cursor position.
      await using upd = await tx.cursor<{ id: number }>(`SELECT id FROM ${t} FOR UPDATE`, [], { name: 'marker' });
      assert.equal(upd.name, 'marker');
      for (;;) {
        const [row] = await upd.fetch(1);
        if (!row) break;
        if (row.id % 2 === 0) await tx.execute(`UPDATE ${t} SET v = 'even' WHERE CURRENT OF ${upd.name}`);
      }
    });
    const even = (await client.query<{ id: number }>(`SELECT id FROM ${t} WHERE v = 'even' ORDER BY id`)).rows.map((r) => r.id);
    assert.deepEqual(
      even,
      Array.from({ length: 12 }, (_, i) => (i + 1) * 2),
    );
    await assert.rejects(() => client.transaction((tx) => tx.cursor('SELECT 1', [], { name: 'bad name' })), TypeError);
  });
});

describeEachBackend('client transactions past the idle timeout', (backend) => {
  let ts: TestServer;
  let client: HeliosDBClient;

  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1, transactionIdleTimeoutMs: 300 });
    client = createClient({ url: ts.server.grpcUrl, minConnections: 1 });
  });

  after(async () => {
    await client?.close();
    await ts?.close();
  });

  test('the next call of an expired transaction fails with TRANSACTION_EXPIRED, then TRANSACTION_FINISHED', async () => {
    const tx = await client.begin();
    assert.equal(tx.idleTimeoutMs, 300);
    await tx.query('SELECT 1');
    await sleep(700);
    const err = await rejects(tx.query('SELECT 1'), TransactionError);
    assert.equal(err.reason, 'TRANSACTION_EXPIRED');
    assert.equal(err.code, 'TRANSACTION_EXPIRED');
    assert.equal(tx.state, 'expired');
    assert.equal((await rejects(tx.query('SELECT 1'), TransactionError)).code, 'TRANSACTION_FINISHED');
    await tx.rollback(); // already rolled back by the server: a no-op
    assert.equal(client.stats().openTransactions, 0);
    assert.equal(ts.server.openTransactions(), 0);
  });

  test('committing an expired transaction fails with TRANSACTION_EXPIRED', async () => {
    const tx = await client.begin();
    await sleep(700);
    const err = await rejects(tx.commit(), TransactionError);
    assert.equal(err.reason, 'TRANSACTION_EXPIRED');
    assert.equal(tx.state, 'expired');
  });
});

describe('client transactions: retry backoff (no server)', () => {
  test('exponential with jitter, capped, never below the server hint', () => {
    for (let retry = 1; retry <= 10; retry++) {
      const ceiling = Math.min(1000, 20 * 2 ** (retry - 1));
      assert.equal(
        retryDelayMs(retry, 20, 1000, undefined, () => 0),
        Math.round(ceiling / 2),
      );
      assert.equal(
        retryDelayMs(retry, 20, 1000, undefined, () => 1),
        ceiling,
      );
      const d = retryDelayMs(retry, 20, 1000, undefined);
      assert.ok(d >= ceiling / 2 - 1 && d <= ceiling, `${retry}: ${d}`);
    }
    assert.equal(
      retryDelayMs(1, 20, 1000, 500, () => 0),
      500,
      'retryAfterMs wins when longer',
    );
    assert.deepEqual(transactionRetryDefaults, { maxRetries: 3, retryBaseDelayMs: 20, retryMaxDelayMs: 1000 });
  });
});

describe('client transactions: argument checks', () => {
  test('maxRetries must be a non-negative integer', async () => {
    const c = createClient({ url: 'grpc://127.0.0.1:1', minConnections: 0 });
    try {
      await rejects(
        c.transaction(async () => 1, { maxRetries: -1 }),
        RangeError,
      );
      await rejects(c.transaction({ isolationLevel: IsolationLevel.Serializable } as never), TypeError);
    } finally {
      await c.close();
    }
  });
});
