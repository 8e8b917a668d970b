/**
 * What an attack pass on executeMany's parameter columns found, on both backends: a leading
 * U+FEFF stays part of the value on every path (and when read back); a lone UTF-16 surrogate is
 * refused rather than stored as U+FFFD; a non-atomic batch whose statements all fail reports each
 * (the server no longer sends the whole rest again after every failure, which took quadratic
 * time: measured, not asserted here); a reserved
 * session's batches outside BEGIN run (they used savepoints outside a transaction block); and
 * long statement texts are not remembered by the server's INSERT planner.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClient, type HeliosDBClient, ParameterError } from '@heliosdb/client';
import { rejects } from './helpers/assert-error.js';
import { describeEachBackend } from './helpers/backends.js';
import { startTestServer, type TestServer, uniqueName } from './helpers/server.js';
import { planCacheSize, planUnnestInsert } from '../src/server/sql/unnest-insert.js';
import { loadSqlParser } from '../src/server/sql/analysis.js';

describeEachBackend('executeMany and batches, hardened', (backend) => {
  let ts: TestServer;
  let client: HeliosDBClient;
  const t = uniqueName('hard');
  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
    client = createClient({ url: ts.server.grpcUrl });
    await client.execute(`CREATE TABLE ${t} (id int PRIMARY KEY, v text); CREATE SEQUENCE ${t}_runs`);
  });
  after(async () => {
    await client?.execute(`DROP TABLE IF EXISTS ${t}; DROP SEQUENCE IF EXISTS ${t}_runs`).catch(() => {});
    await client?.close();
    await ts?.close();
  });

  const bom = '\uFEFF';
  for (const [what, options, sql] of [
    ['one statement per chunk', {}, `INSERT INTO ${t} (id, v) VALUES ($1, $2)`],
    ['set by set (not atomic)', { atomic: false }, `INSERT INTO ${t} (id, v) VALUES ($1, $2)`],
    ['set by set (ON CONFLICT)', {}, `INSERT INTO ${t} (id, v) VALUES ($1, $2) ON CONFLICT DO NOTHING`],
  ] as const) {
    test(`a leading U+FEFF is kept, written and read back: ${what}`, async () => {
      await client.execute(`TRUNCATE ${t}`);
      const values = [`${bom}a`, `${bom}${bom}`, `x${bom}`, bom];
      await client.executeMany(
        sql,
        values.map((v, i) => [i + 1, v]),
        options,
      );
      const stored = await client.query<{ n: bigint }>(`SELECT count(*) AS n FROM ${t} WHERE v LIKE E'\\uFEFF%'`);
      assert.equal(stored.rows[0].n, 3n, 'counted in the database');
      const back = await client.query<{ v: string }>(`SELECT v FROM ${t} ORDER BY id`);
      assert.deepEqual(
        back.rows.map((r) => r.v),
        values,
      );
    });
  }

  test('a lone UTF-16 surrogate is refused and nothing applies', async () => {
    await client.execute(`TRUNCATE ${t}`);
    for (const bad of ['\uD800', 'a\uDC00b']) {
      await rejects(
        client.executeMany(`INSERT INTO ${t} (id, v) VALUES ($1, $2)`, [
          [1, 'fine'],
          [2, bad],
        ]),
        ParameterError,
      );
    }
    // A pair is one code point, and fine.
    await client.executeMany(`INSERT INTO ${t} (id, v) VALUES ($1, $2)`, [
      [1, '🙂'],
      [2, 'ok'],
    ]);
    const n = await client.query<{ n: bigint }>(`SELECT count(*) AS n FROM ${t}`);
    assert.equal(n.rows[0].n, 2n);
  });

  for (const inTx of [false, true]) {
    test(`a non-atomic batch whose statements all fail reports each failure${inTx ? ' (in a transaction)' : ''}`, async () => {
      const n = 400;
      await client.execute(`ALTER SEQUENCE ${t}_runs RESTART`);
      // nextval is not rolled back: the sequence counts how often the statement ran.
      const sql = `SELECT nextval('${t}_runs') / $1::int`;
      const sets = Array.from({ length: n }, () => [0]);
      const r = inTx
        ? await client.transaction((tx) => tx.executeMany(sql, sets, { atomic: false }))
        : await client.executeMany(sql, sets, { atomic: false });
      assert.equal(r.failed, n);
      assert.ok(r.results.every((x, i) => !x.ok && (x.error as { statementIndex?: number }).statementIndex === i));
      const runs = await client.query<{ last_value: bigint }>(`SELECT last_value FROM ${t}_runs`);
      assert.equal(runs.rows[0].last_value, BigInt(n), 'each statement ran once');
    });
  }

  test("a reserved session's batches outside BEGIN run", async () => {
    await client.execute(`TRUNCATE ${t}`);
    await using s = await client.reserve();
    await s.executeMany(`INSERT INTO ${t} (id, v) VALUES ($1, $2)`, [
      [1, 'a'],
      [2, 'b'],
    ]);
    await s.executeMany(
      `INSERT INTO ${t} (id, v) VALUES ($1, $2)`,
      [
        [3, 'c'],
        [3, 'dup'],
      ],
      { atomic: false },
    );
    await s.batch([{ sql: `INSERT INTO ${t} (id, v) VALUES (4, 'd')` }, { sql: `INSERT INTO ${t} (id, v) VALUES (5, 'e')` }]);
    const n = await client.query<{ n: bigint }>(`SELECT count(*) AS n FROM ${t}`);
    assert.equal(n.rows[0].n, 5n);
  });
});

test('the INSERT planner remembers short texts only', async () => {
  await loadSqlParser();
  const before = planCacheSize();
  for (let i = 0; i < 20; i++) planUnnestInsert(`INSERT INTO x (a) VALUES ($1) /* ${'y'.repeat(20_000)} ${i} */`);
  assert.equal(planCacheSize(), before, 'texts over 16 KiB are not remembered');
  planUnnestInsert(`INSERT INTO x (a) VALUES ($1) /* ${Math.random()} */`);
  assert.equal(planCacheSize(), before + 1);
});
