/**
 * Prepared statements and batches against a real server on both backends: parameter and result
 * types, reuse, a statement surviving a server restart, statements inside transactions, atomic and
 * non-atomic batches, and `executeMany` chunking large work under the message size limit.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import { after, before, describe, test } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import {
  createClient,
  type HeliosDBClient,
  HeliosDBError,
  PreparedStatement,
  QueryError,
  TransactionError,
  UniqueViolationError,
} from '@heliosdb/client';
import { ExecuteBatchRequestSchema } from '../gen/heliosdb/v1/database_pb.js';
import { ValueSchema } from '../gen/heliosdb/v1/value_pb.js';
import { chunkParameterSets, estimateValueBytes } from '../src/client/batch.js';
import { startServer } from '../src/server/server.js';
import { describeEachBackend } from './helpers/backends.js';
import { rejects } from './helpers/assert-error.js';
import { startTestServer, type TestServer } from './helpers/server.js';

describeEachBackend('client prepared statements and batches', (backend) => {
  let ts: TestServer;
  let client: HeliosDBClient;
  const t = `cpb_${randomBytes(4).toString('hex')}`;

  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
    client = createClient({ url: ts.server.grpcUrl, minConnections: 2 });
    await client.execute(`CREATE TABLE ${t} (id int PRIMARY KEY, v text NOT NULL)`);
  });

  after(async () => {
    await client?.execute(`DROP TABLE IF EXISTS ${t}`).catch(() => {});
    await client?.close();
    await ts?.close();
  });

  async function reset(): Promise<void> {
    await client.execute(`DELETE FROM ${t}`);
  }

  async function count(): Promise<bigint> {
    return (await client.queryOne<{ n: bigint }>(`SELECT count(*) AS n FROM ${t}`)).n;
  }

  test('prepare: parameter and result types, reuse, execute, stream, close', async () => {
    await reset();
    const insert = await client.prepare(`INSERT INTO ${t} (id, v) VALUES ($1, $2)`);
    assert.ok(insert instanceof PreparedStatement);
    assert.deepEqual(
      insert.paramTypes.map((p) => p.type),
      ['int4', 'text'],
    );
    assert.deepEqual(insert.fields, []);
    for (let i = 1; i <= 5; i++) assert.equal((await insert.execute([i, `v${i}`])).rowCount, 1);
    await insert.close();
    await insert.close(); // idempotent
    assert.ok(insert.closed);
    assert.equal((await rejects(insert.execute([9, 'x']), HeliosDBError)).code, 'STATEMENT_CLOSED');

    await using find = await client.prepare<{ id: number; v: string }>(`SELECT id, v FROM ${t} WHERE id >= $1 ORDER BY id`);
    assert.deepEqual(
      find.fields.map((f) => [f.name, f.type]),
      [
        ['id', 'int4'],
        ['v', 'text'],
      ],
    );
    assert.equal(find.paramTypes[0].typeOid, 23);
    assert.deepEqual((await find.query([4])).rows, [
      { id: 4, v: 'v4' },
      { id: 5, v: 'v5' },
    ]);
    assert.deepEqual(await find.queryOne([5]), { id: 5, v: 'v5' });
    assert.equal((await rejects(find.queryOne([1]), QueryError)).code, 'ROW_COUNT_MISMATCH');
    assert.deepEqual((await find.query([2], { rowMode: 'array' })).rows[0], [2, 'v2']);
    assert.deepEqual(
      (await find.stream([3]).toArray()).map((r) => r.id),
      [3, 4, 5],
    );
    const err = await rejects(client.prepare(`SELECT nope FROM ${t}`), QueryError);
    assert.equal(err.sqlstate, '42703');
  });

  test('a prepared statement inside a transaction runs there, and ends with it', async () => {
    await reset();
    const tx = await client.begin();
    const insert = await tx.prepare(`INSERT INTO ${t} VALUES ($1, $2)`);
    await insert.execute([1, 'in tx']);
    assert.equal((await tx.queryOne<{ n: bigint }>(`SELECT count(*) AS n FROM ${t}`)).n, 1n);
    await tx.rollback();
    assert.equal(await count(), 0n);
    assert.equal((await rejects(insert.execute([2, 'late']), TransactionError)).code, 'TRANSACTION_FINISHED');
  });

  test('an atomic batch with a failing third statement leaves nothing behind (statementIndex 2)', async () => {
    await reset();
    const err = await rejects(
      client.batch([
        { sql: `INSERT INTO ${t} VALUES ($1, $2)`, params: [1, 'a'] },
        { sql: `INSERT INTO ${t} VALUES ($1, $2)`, params: [2, 'b'] },
        { sql: `INSERT INTO ${t} VALUES ($1, $2)`, params: [1, 'duplicate'] },
        { sql: `INSERT INTO ${t} VALUES ($1, $2)`, params: [3, 'c'] },
      ]),
      UniqueViolationError,
    );
    assert.ok(err instanceof QueryError);
    assert.equal(err.statementIndex, 2);
    assert.equal(err.query, `INSERT INTO ${t} VALUES ($1, $2)`);
    assert.equal(await count(), 0n);

    const ok = await client.batch([
      { sql: `INSERT INTO ${t} VALUES ($1, $2)`, params: [1, 'a'] },
      { sql: `UPDATE ${t} SET v = 'b' WHERE id = 1` },
      { sql: `SELECT id, v FROM ${t}` },
    ]);
    assert.equal(ok.failed, 0);
    assert.equal(ok.results.length, 3);
    assert.deepEqual(
      ok.results.map((r) => (r.ok ? [r.result.command, r.result.rowCount] : r.error.message)),
      [
        ['INSERT', 1],
        ['UPDATE', 1],
        ['SELECT', 1],
      ],
    );
    assert.deepEqual(ok.results[2].result?.rows, [], 'no rows without returnRows');
    const withRows = await client.batch<{ id: number; v: string }>(
      [{ sql: `SELECT id, v FROM ${t}` }, { sql: 'SELECT $1::int AS id, $2::text AS v', params: [7, 'x'] }],
      {
        returnRows: true,
      },
    );
    assert.deepEqual(
      withRows.results.map((r) => r.result?.rows),
      [[{ id: 1, v: 'b' }], [{ id: 7, v: 'x' }]],
    );
    assert.deepEqual((await client.batch([])).results, []);
  });

  test('a non-atomic batch reports each statement and keeps what succeeded', async () => {
    await reset();
    const r = await client.batch(
      [
        { sql: `INSERT INTO ${t} VALUES ($1, $2)`, params: [1, 'a'] },
        { sql: `INSERT INTO ${t} VALUES ($1, $2)`, params: [1, 'duplicate'] },
        { sql: 'SELECT 1 / 0' },
        { sql: `INSERT INTO ${t} VALUES ($1, $2)`, params: [2, 'b'] },
      ],
      { atomic: false },
    );
    assert.equal(r.failed, 2);
    assert.equal(r.rowCount, 2);
    assert.deepEqual(
      r.results.map((x) => x.ok),
      [true, false, false, true],
    );
    assert.ok(r.results[1].error instanceof UniqueViolationError);
    assert.equal(r.results[1].error.statementIndex, 1);
    assert.ok(r.results[2].error instanceof QueryError);
    assert.equal(r.results[2].error.sqlstate, '22012');
    assert.equal(r.results[2].error.query, 'SELECT 1 / 0');
    assert.equal(await count(), 2n);
  });

  test('batches inside a transaction: an atomic failure undoes only the batch', async () => {
    await reset();
    await client.transaction(async (tx) => {
      await tx.execute(`INSERT INTO ${t} VALUES (1, 'before')`);
      const err = await rejects(
        tx.batch([{ sql: `INSERT INTO ${t} VALUES (2, 'x')` }, { sql: `INSERT INTO ${t} VALUES (1, 'dup')` }]),
        UniqueViolationError,
      );
      assert.equal(err.statementIndex, 1);
      const r = await tx.batch([{ sql: `INSERT INTO ${t} VALUES (3, 'y')` }, { sql: `INSERT INTO ${t} VALUES (1, 'dup')` }], {
        atomic: false,
      });
      assert.deepEqual(
        r.results.map((x) => x.ok),
        [true, false],
      );
      await tx.execute(`INSERT INTO ${t} VALUES (4, 'after')`);
    });
    assert.deepEqual(
      (await client.query<{ id: number }>(`SELECT id FROM ${t} ORDER BY id`)).rows.map((r) => r.id),
      [1, 3, 4],
    );
  });

  test('executeMany: one round trip for small work, atomic across chunks, global statement indexes', async () => {
    await reset();
    const sets = Array.from({ length: 1000 }, (_, i) => [i + 1, `v${i + 1}`]);
    const one = await client.executeMany(`INSERT INTO ${t} VALUES ($1, $2)`, sets);
    assert.equal(one.chunks, 1);
    assert.equal(one.rowCount, 1000);
    assert.equal(one.results.length, 1000);
    assert.equal(await count(), 1000n);
    await reset();

    // Forced into chunks of 100: the duplicate in the 8th chunk undoes the chunks before it.
    const bad = sets.map((s) => [...s]);
    bad[750] = [1, 'duplicate of the first'];
    const err = await rejects(client.executeMany(`INSERT INTO ${t} VALUES ($1, $2)`, bad, { maxChunkSize: 100 }), UniqueViolationError);
    assert.equal(err.statementIndex, 750);
    assert.equal(await count(), 0n, 'an atomic executeMany over several chunks applies nothing when one chunk fails');

    const loose = await client.executeMany(`INSERT INTO ${t} VALUES ($1, $2)`, bad, { maxChunkSize: 100, atomic: false });
    assert.equal(loose.chunks, 10);
    assert.equal(loose.failed, 1);
    assert.equal(loose.rowCount, 999);
    const failedAt = loose.results.findIndex((r) => !r.ok);
    assert.equal(failedAt, 750);
    const failure = loose.results[750].error;
    assert.ok(failure instanceof UniqueViolationError);
    assert.equal(failure.statementIndex, 750, 'indexes count from the first parameter set');
    assert.equal(await count(), 999n);

    // Inside a transaction, a failing multi-chunk executeMany is undone and the transaction goes on.
    await reset();
    await client.transaction(async (tx) => {
      await tx.execute(`INSERT INTO ${t} VALUES (5000, 'kept')`);
      await rejects(tx.executeMany(`INSERT INTO ${t} VALUES ($1, $2)`, bad, { maxChunkSize: 300 }), UniqueViolationError);
      const r = await tx.executeMany(`INSERT INTO ${t} VALUES ($1, $2)`, sets.slice(0, 500), { maxChunkSize: 200 });
      assert.equal(r.chunks, 3);
    });
    assert.equal(await count(), 501n);
    assert.equal((await client.executeMany('SELECT $1', [])).chunks, 0);
  });

  test('executeMany splits work larger than the server message limit into chunks', async () => {
    await reset();
    const pad = 'p'.repeat(10_000);
    const sets = Array.from({ length: 2000 }, (_, i) => [i + 1, pad]); // about 20 MB of parameters
    const limit = ts.server.options.maxMessageBytes;
    assert.ok(2000 * 10_000 > limit, 'the work is larger than one message');
    const r = await client.executeMany(`INSERT INTO ${t} VALUES ($1, $2)`, sets);
    assert.ok(r.chunks >= 5, `split into ${r.chunks} chunks of about 4 MiB`);
    assert.equal(r.rowCount, 2000);
    assert.equal(await count(), 2000n);
    // The same work as a single request is refused.
    await reset();
    const tooBig = await rejects(client.batch(sets.map((p) => ({ sql: `INSERT INTO ${t} VALUES ($1, $2)`, params: p }))), HeliosDBError);
    assert.equal(tooBig.grpcCode, Code.ResourceExhausted, tooBig.message);
    assert.equal(await count(), 0n);
  });
});

describeEachBackend('client prepared statements across a server restart', (backend) => {
  test('a statement prepared before a restart runs on the restarted server (it sends its SQL)', async () => {
    let server = await startServer({ port: 0, httpPort: -1, logLevel: 'silent', databaseUrl: backend.databaseUrl });
    const port = server.port;
    const client = createClient({ url: server.grpcUrl, minConnections: 1 });
    try {
      const stmt = await client.prepare<{ n: number }>('SELECT $1::int + 1 AS n');
      assert.equal((await stmt.queryOne([1])).n, 2);
      await server.close();
      server = await startServer({ port, httpPort: -1, logLevel: 'silent', databaseUrl: backend.databaseUrl });
      // The new server has never seen the statement id.
      let result: number | undefined;
      for (let attempt = 0; attempt < 20 && result === undefined; attempt++) {
        try {
          result = (await stmt.queryOne([41])).n;
        } catch (e) {
          // The client's connection may still be reconnecting.
          if (!(e instanceof HeliosDBError) || e.code !== 'CONNECTION_ERROR') throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      assert.equal(result, 42);
      assert.equal((await stmt.query([1])).rows[0].n, 2);
    } finally {
      await client.close();
      await server.close();
    }
  });
});

describe('executeMany chunking (no server)', () => {
  test('chunks respect the byte and count limits, keep order, and estimate sizes from above', () => {
    const sets = Array.from({ length: 1000 }, (_, i) => [i, 'x'.repeat(i % 50), i % 3 === 0 ? null : new Uint8Array(10)]);
    const chunks = [...chunkParameterSets(sets, 4096, 120)];
    let next = 0;
    for (const c of chunks) {
      assert.equal(c.start, next, 'chunks are contiguous');
      assert.ok(c.sets.length >= 1 && c.sets.length <= 120);
      const actual = toBinary(
        ExecuteBatchRequestSchema,
        create(ExecuteBatchRequestSchema, { sql: 'INSERT', parameterSets: c.sets }),
      ).length;
      let estimate = 0;
      for (const set of c.sets) for (const v of set.values) estimate += estimateValueBytes(v);
      assert.ok(estimate >= actual - 10 * c.sets.length, `the estimate (${estimate}) covers the encoded size (${actual})`);
      next += c.sets.length;
    }
    assert.equal(next, 1000);
    assert.ok(chunks.length > 1000 / 120, 'the byte limit split the work further than the count limit');
    assert.deepEqual([...chunkParameterSets([], 10, 10)], []);
    // A single set larger than the limit still goes, alone.
    assert.equal([...chunkParameterSets([['y'.repeat(100)], ['z']], 10, 10)].length, 2);
    assert.ok(
      estimateValueBytes(create(ValueSchema, { kind: { case: 'text', value: 'é€😀' } })) >= new TextEncoder().encode('é€😀').length,
    );
  });
});
