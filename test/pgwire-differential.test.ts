/**
 * The same SQL through heliosdb's PostgreSQL port (PostgreSQL backend) and straight to the same
 * PostgreSQL database: the rows, the column names and types, the command tags and the SQLSTATEs
 * are equal, over the simple and the extended protocol.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { backends, postgresSkipReason } from './helpers/backends.js';
import { freshServer } from './helpers/fresh.js';

const statements: [string, unknown[]?][] = [
  ['SELECT 1 AS one, $1::text AS two', ['2']],
  ['SELECT * FROM pgw_diff ORDER BY id'],
  ['SELECT id, v, n, t FROM pgw_diff WHERE id = $1', [2]],
  [
    "SELECT '2026-01-02 03:04:05+00'::timestamptz AS ts, interval '1 day 2 hours' AS iv, 1.5::numeric AS n, '{1,2}'::int[] AS a, 'x'::bytea AS b, NULL AS nothing",
  ],
  ['SELECT count(*), sum(n), max(v) FROM pgw_diff'],
  ['INSERT INTO pgw_diff VALUES (1, $1, 1, now())', ['duplicate']],
  ['SELECT * FROM no_such_table'],
  ['SELECT 1/0'],
  ['SELEC 1'],
  ['SELECT $1::int', ['not a number']],
  ['UPDATE pgw_diff SET n = n + 0 WHERE id > 1'],
  ['SHOW server_version_num'],
  ['SELECT current_setting($1)', ['DateStyle']],
  ['SELECT generate_series(1, 500) AS g'],
  ['WITH d AS (DELETE FROM pgw_diff WHERE false RETURNING *) SELECT count(*) FROM d'],
  ["SELECT jsonb_build_object('a', 1, 'b', ARRAY[1,2]) AS j"],
];

interface Outcome {
  rows?: unknown[];
  fields?: { name: string; dataTypeID: number }[];
  command?: string;
  rowCount?: number | null;
  sqlstate?: string;
}

async function outcome(c: pg.Client, sql: string, values?: unknown[]): Promise<Outcome> {
  try {
    const r = await c.query(sql, values);
    return {
      rows: r.rows,
      fields: r.fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID })),
      command: r.command,
      rowCount: r.rowCount,
    };
  } catch (e) {
    return { sqlstate: (e as { code?: string }).code };
  }
}

const postgresql = backends.find((b) => b.name === 'postgresql');

test('pg port: the same SQL through the pg port and straight to PostgreSQL gives the same rows and SQLSTATEs', {
  skip: postgresql ? false : postgresSkipReason,
}, async (t) => {
  const f = await freshServer(t, postgresql!, { server: { httpPort: -1 } });
  await f.admin!.query(
    "CREATE TABLE pgw_diff (id int PRIMARY KEY, v text, n int, t timestamptz); INSERT INTO pgw_diff SELECT g, 'v' || g, g * 3, '2026-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 20) g",
  );
  // The administrator's own connection to the server's database, as the port's anonymous client logs in.
  const direct = f.admin!;
  const viaPort = new pg.Client({ host: '127.0.0.1', port: f.server.pgPort!, user: 'postgres', database: 'postgres' });
  await viaPort.connect();
  try {
    for (const [sql, values] of statements) {
      // Both protocols: without values node-postgres sends a simple Query.
      for (const v of values ? [values] : [undefined, []]) {
        const a = await outcome(direct, sql, v);
        const b = await outcome(viaPort, sql, v);
        assert.deepEqual(b, a, `${sql} ${JSON.stringify(v)}`);
      }
    }
    // A transaction block and its failure, the same on both.
    for (const c of [direct, viaPort]) await c.query('BEGIN');
    const e1 = await outcome(direct, 'SELECT 1/0');
    const e2 = await outcome(viaPort, 'SELECT 1/0');
    assert.deepEqual(e2, e1);
    assert.deepEqual(await outcome(viaPort, 'SELECT 1'), await outcome(direct, 'SELECT 1'));
    for (const c of [direct, viaPort]) await c.query('ROLLBACK');
  } finally {
    await viaPort.end();
  }
});
