/**
 * executeMany runs a single-row `INSERT ... VALUES ($1..$k)` as one statement per chunk (unnest
 * of one array per column) on both backends: every value arrives as sent (NULLs, quotes,
 * backslashes, JSON, bytes, time stamps), a statement-level trigger fires once per chunk, array
 * columns and ON CONFLICT keep the per-set path, and a failure mid-chunk applies nothing and
 * names the failing parameter set, in auto-commit and inside a transaction.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { createClient, type HeliosDBClient, QueryError, UniqueViolationError } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { rejects } from './helpers/assert-error.js';
import { startTestServer, type TestServer } from './helpers/server.js';

describeEachBackend('executeMany as one statement per chunk', (backend) => {
  let ts: TestServer;
  let client: HeliosDBClient;
  const t = `sessions_em_${randomBytes(4).toString('hex')}`;
  const insert = `INSERT INTO ${t} (id, name, score, at, doc, flag, data) VALUES ($1, $2, $3, $4, $5, $6, $7)`;

  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
    client = createClient({ url: ts.server.grpcUrl });
    await client.execute(
      `CREATE TABLE ${t} (id int PRIMARY KEY, name text, score float8, at timestamptz, doc jsonb, flag bool, data bytea, tags int[]);
       CREATE TABLE ${t}_stmts (n int NOT NULL);
       CREATE FUNCTION ${t}_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO ${t}_stmts VALUES (1); RETURN NULL; END $$;
       CREATE TRIGGER ${t}_each AFTER INSERT ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${t}_count();`,
    );
  });

  after(async () => {
    await client
      ?.execute(`DROP TABLE IF EXISTS ${t}; DROP TABLE IF EXISTS ${t}_stmts; DROP FUNCTION IF EXISTS ${t}_count()`)
      .catch(() => {});
    await client?.close();
    await ts?.close();
  });

  const reset = () => client.execute(`TRUNCATE ${t}; TRUNCATE ${t}_stmts`);
  const rows = async () => Number((await client.query<{ n: bigint }>(`SELECT count(*) AS n FROM ${t}`)).rows[0].n);
  const statements = async () => Number((await client.query<{ n: bigint }>(`SELECT count(*) AS n FROM ${t}_stmts`)).rows[0].n);

  const odd = ['', 'plain', 'quote " inside', 'back\\slash', '{1,2}', 'NULL', 'comma, and (parens)', 'ünïcødé ✓', '  spaced  '];
  const sets = Array.from({ length: 1000 }, (_, i) => [
    i + 1,
    i % 10 === 0 ? null : odd[i % odd.length],
    i % 7 === 0 ? null : i / 4,
    i % 5 === 0 ? null : new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
    i % 3 === 0 ? null : JSON.stringify({ i, s: odd[i % odd.length] }),
    i % 4 === 0 ? null : i % 2 === 0,
    i % 6 === 0 ? null : Uint8Array.from([i & 0xff, 0, 0x5c, 0x22]),
  ]);

  test('one chunk is one statement; every value arrives as sent', async () => {
    await reset();
    const r = await client.executeMany(insert, sets);
    assert.equal(r.chunks, 1);
    assert.equal(r.rowCount, 1000);
    assert.equal(r.results.length, 1000);
    assert.ok(r.results.every((x) => x.ok && x.result.rowCount === 1));
    assert.equal(await rows(), 1000);
    assert.equal(await statements(), 1, 'the statement trigger fired once: one INSERT for the chunk');
    const back = await client.query<Record<string, unknown>>(
      `SELECT id, name, score, at, doc::text AS doc, flag, data FROM ${t} ORDER BY id`,
    );
    for (let i = 0; i < sets.length; i++) {
      const [id, name, score, at, doc, flag, data] = sets[i];
      const row = back.rows[i];
      assert.equal(row.id, id);
      assert.equal(row.name, name, `name of ${id}`);
      assert.equal(row.score, score);
      assert.deepEqual(row.at, at);
      assert.deepEqual(row.doc === null ? null : JSON.parse(row.doc as string), doc === null ? null : JSON.parse(doc as string));
      assert.equal(row.flag, flag);
      assert.deepEqual(
        row.data === null ? null : Buffer.from(row.data as Uint8Array),
        data === null ? null : Buffer.from(data as Uint8Array),
      );
    }
  });

  test('several chunks: one statement each, atomic together', async () => {
    await reset();
    const r = await client.executeMany(insert, sets, { maxChunkSize: 100 });
    assert.equal(r.chunks, 10);
    assert.equal(await rows(), 1000);
    assert.equal(await statements(), 10);
  });

  test('columns in another order than the parameters', async () => {
    await reset();
    await client.executeMany(`INSERT INTO ${t} (name, id) VALUES ($2, $1)`, [
      [1, 'one'],
      [2, null],
    ]);
    assert.deepEqual((await client.query(`SELECT id, name FROM ${t} ORDER BY id`)).rows, [
      { id: 1, name: 'one' },
      { id: 2, name: null },
    ]);
    assert.equal(await statements(), 1);
  });

  test('a BEFORE trigger that skips rows: exact total, per-set counts 0', async () => {
    await reset();
    await client.execute(
      `CREATE FUNCTION ${t}_skip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id % 2 = 1 THEN RETURN NULL; END IF; RETURN NEW; END $$;
       CREATE TRIGGER ${t}_odd BEFORE INSERT ON ${t} FOR EACH ROW EXECUTE FUNCTION ${t}_skip();`,
    );
    try {
      const r = await client.executeMany(`INSERT INTO ${t} (id) VALUES ($1)`, [[1], [2], [3], [4]]);
      assert.equal(r.rowCount, 2);
      assert.ok(r.results.every((x) => x.ok && x.result.rowCount === 0));
      assert.equal(await rows(), 2);
      assert.equal(await statements(), 1);
    } finally {
      await client.execute(`DROP TRIGGER ${t}_odd ON ${t}; DROP FUNCTION ${t}_skip()`);
    }
  });

  test('array columns and ON CONFLICT keep the per-set path', async () => {
    await reset();
    await client.executeMany(`INSERT INTO ${t} (id, tags) VALUES ($1, $2)`, [
      [1, [1, 2]],
      [2, null],
      [3, []],
    ]);
    assert.deepEqual((await client.query(`SELECT id, tags FROM ${t} ORDER BY id`)).rows, [
      { id: 1, tags: [1, 2] },
      { id: 2, tags: null },
      { id: 3, tags: [] },
    ]);
    assert.equal(await statements(), 3, 'an array parameter: one statement per set');
    await client.execute(`TRUNCATE ${t}_stmts`);
    const r = await client.executeMany(`INSERT INTO ${t} (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = excluded.name`, [
      [1, 'a'],
      [1, 'b'],
    ]);
    assert.equal(r.rowCount, 2);
    assert.equal((await client.query(`SELECT name FROM ${t} WHERE id = 1`)).rows[0].name, 'b', 'the same key twice in one chunk works');
    assert.equal(await statements(), 2);
  });

  test('a failure mid-chunk applies nothing and names the parameter set', async () => {
    await reset();
    const bad = sets.map((s) => [...s]);
    bad[750] = [1, 'duplicate'];
    const dup = await rejects(
      client.executeMany(
        insert,
        bad.map((s) => s.concat(Array(7 - s.length).fill(null))),
      ),
      UniqueViolationError,
    );
    assert.equal(dup.statementIndex, 750);
    assert.equal(await rows(), 0);
    const typo = sets.map((s) => [...s]);
    typo[3][2] = 'not a number';
    const e = await rejects(client.executeMany(insert, typo), QueryError);
    assert.equal(e.statementIndex, 3);
    assert.equal(e.sqlstate, '22P02');
    assert.equal(await rows(), 0);

    // Inside a transaction: the failed chunk is undone, the transaction goes on.
    await client.transaction(async (tx) => {
      await tx.execute(`INSERT INTO ${t} (id) VALUES (5000)`);
      const inner = await rejects(
        tx.executeMany(
          insert,
          bad.map((s) => s.concat(Array(7 - s.length).fill(null))),
        ),
        UniqueViolationError,
      );
      assert.equal(inner.statementIndex, 750);
      const ok = await tx.executeMany(insert, sets.slice(0, 500), { maxChunkSize: 200 });
      assert.equal(ok.chunks, 3);
    });
    assert.equal(await rows(), 501);

    // Non-atomic: per-set outcomes, as before.
    await reset();
    const loose = await client.executeMany(
      insert,
      bad.map((s) => s.concat(Array(7 - s.length).fill(null))),
      { atomic: false },
    );
    assert.equal(loose.failed, 1);
    assert.equal(
      loose.results.findIndex((x) => !x.ok),
      750,
    );
    assert.equal(await rows(), 999);
  });
});
