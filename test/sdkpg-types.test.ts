/**
 * The type mapping over `postgres://` is the grpc:// path's: the same SQL and parameters through a
 * HeliosDB server (grpc://, on PostgreSQL) and straight to the same PostgreSQL (postgres://) give
 * deeply equal rows (bigint for int8, Date for timestamptz, Uint8Array for bytea, parsed JSON,
 * arrays, exact numeric text, ...) and the same field types, in both int8 modes and row modes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createClient, type HeliosDBClient } from '@heliosdb/client';
import { backends, postgresSkipReason, postgresUrlEnv } from './helpers/backends.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const pgUrl = process.env[postgresUrlEnv]?.trim();
const postgres = backends.find((b) => b.name === 'postgresql');

/** Expressions whose results must be identical on both paths. */
const expressions: [string, unknown[]][] = [
  [
    `SELECT 1::int2 AS i2, 2::int4 AS i4, 9223372036854775807::int8 AS i8, (-9223372036854775808)::int8 AS i8min,
            1.5::float4 AS f4, 'NaN'::float8 AS nan, 'Infinity'::float8 AS inf, '-Infinity'::float4 AS ninf,
            12345678901234567890.123456789::numeric AS num, 'NaN'::numeric AS numnan, true AS t, false AS f, NULL::int AS nul`,
    [],
  ],
  [
    `SELECT 'héllo ✓'::text AS t, 'x'::varchar(3) AS vc, 'ab'::char(4) AS bp, 'nm'::name AS nm, '\\x00ff10'::bytea AS b,
            '00000000-0000-0000-0000-00000000002a'::uuid AS u, '{"a":[1,2,{"b":null}]}'::jsonb AS jb, '[1, "x"]'::json AS j,
            '10.1.2.3/32'::inet AS ip, 'a=>1'::text AS h, 42::oid AS o`,
    [],
  ],
  [
    `SELECT '2024-02-29'::date AS d, '0044-03-15 BC'::date AS dbc, 'infinity'::date AS dinf, '13:45:06.123456'::time AS tm,
            '13:45:06+02'::timetz AS tz, '2024-02-29 12:34:56.789123'::timestamp AS ts, '2024-02-29 12:34:56.789+00'::timestamptz AS tstz,
            'infinity'::timestamptz AS tsinf, '-infinity'::timestamp AS tsninf, '1 year 2 mons 3 days 04:05:06.7'::interval AS iv`,
    [],
  ],
  [
    `SELECT ARRAY[1, NULL, 3]::int4[] AS ai, ARRAY['a', 'b,c', '"q"', NULL]::text[] AS at, ARRAY[[1, 2], [3, 4]]::int8[] AS a2,
            ARRAY[true, false]::bool[] AS ab, ARRAY['2024-01-01']::date[] AS ad, ARRAY['\\x01'::bytea] AS abin,
            '{}'::int4[] AS aempty, ARRAY[1.5, 'NaN']::float8[] AS af, ARRAY['{"k":1}'::jsonb] AS aj`,
    [],
  ],
  [
    'SELECT $1::int8 AS big, $2::numeric AS num, $3::timestamptz AS ts, $4::bytea AS bin, $5::jsonb AS doc, $6::int4[] AS ints, $7::text[] AS texts, $8::bool AS flag, $9::float8 AS f, $10::text AS t, $11::int4 AS nul, $12::date AS d, $13::interval AS iv, $14::uuid AS u',
    [
      2n ** 62n + 1n,
      '-0.000000000000000000001',
      new Date(Date.UTC(1969, 11, 31, 23, 59, 59, 999)),
      new Uint8Array([0, 255, 1, 254]),
      { a: [1, 'x', null], b: { c: true } },
      [1, null, -3],
      ['', 'NULL', null, 'a"b\\c'],
      false,
      -0.5,
      'multi\nline\ttext',
      null,
      '1999-12-31',
      '3 days 00:00:01',
      '123e4567-e89b-12d3-a456-426614174000',
    ],
  ],
  ['SELECT n, n::text AS s, n * 1.5 AS x FROM generate_series(1, 50) AS n', []],
];

if (!pgUrl || !postgres) {
  test('postgres:// type mapping equals grpc://', { skip: postgresSkipReason }, () => {});
} else {
  describe('postgres:// type mapping equals grpc:// [postgresql]', () => {
    let server: TestServer;
    const clients: HeliosDBClient[] = [];
    const pair = (config: Record<string, unknown> = {}) => {
      const viaGrpc = createClient({ url: server.server.grpcUrl, ...config });
      const viaPg = createClient({ url: pgUrl, ...config });
      clients.push(viaGrpc, viaPg);
      return { viaGrpc, viaPg };
    };
    before(async () => {
      server = await startTestServer(postgres);
    });
    after(async () => {
      await Promise.all(clients.map((c) => c.close()));
      await server?.close();
    });

    for (const config of [{}, { int8: 'string' }, { rowMode: 'array' }] as const) {
      test(`query, stream and prepared statements give the same values ${JSON.stringify(config)}`, async () => {
        const { viaGrpc, viaPg } = pair(config);
        for (const [sql, params] of expressions) {
          const a = await viaGrpc.query(sql, params);
          const b = await viaPg.query(sql, params);
          assert.ok(a.rows.length > 0 && a.fields.length > 0, sql);
          assert.deepEqual(b.rows, a.rows, sql);
          assert.deepEqual(b.fields, a.fields, `${sql}: fields`);
          assert.equal(b.rowCount, a.rowCount);
          assert.equal(b.command, a.command);
          const streamed: unknown[] = [];
          for await (const row of viaPg.stream(sql, params, { batchRows: 7 })) streamed.push(row);
          assert.deepEqual(streamed, a.rows, `${sql}: streamed`);
          const st = await viaPg.prepare(sql);
          assert.deepEqual((await st.query(params)).rows, a.rows, `${sql}: prepared`);
          assert.deepEqual(st.fields, (await viaGrpc.prepare(sql)).fields, `${sql}: prepared fields`);
        }
      });
    }

    test('a user-defined type is named the same', async () => {
      const { viaGrpc, viaPg } = pair();
      await viaPg.execute("DO $$ BEGIN CREATE TYPE sdkpg_mood AS ENUM ('sad', 'ok'); EXCEPTION WHEN duplicate_object THEN NULL; END $$");
      const sql = "SELECT 'ok'::sdkpg_mood AS m, ARRAY['sad']::sdkpg_mood[] AS ms";
      const a = await viaGrpc.query(sql);
      const b = await viaPg.query(sql);
      assert.deepEqual(b.rows, a.rows);
      assert.deepEqual(b.fields, a.fields);
      assert.equal(b.fields[0].type, 'sdkpg_mood');
      await viaPg.execute('DROP TYPE IF EXISTS sdkpg_mood');
    });

    test('execute and batches report the same counts', async () => {
      const { viaGrpc, viaPg } = pair();
      const t = `sdkpg_counts_${process.pid}`;
      await viaPg.execute(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
      try {
        const a = await viaGrpc.execute(`INSERT INTO ${t} SELECT generate_series(1, 5)`);
        const b = await viaPg.execute(`INSERT INTO ${t} SELECT generate_series(6, 10)`);
        assert.deepEqual([b.command, b.rowCount], [a.command, a.rowCount]);
        const script = `UPDATE ${t} SET id = id + 100 WHERE id <= 2; DELETE FROM ${t} WHERE id = 3`;
        const sa = await viaGrpc.execute(script);
        const sb = await viaPg.execute(script.replace('id <= 2', 'id > 100').replace('id = 3', 'id = 4'));
        assert.deepEqual([sb.command, sb.rowCount], [sa.command, 3], 'a script sums its counts');
        assert.equal(sa.rowCount, 3);
      } finally {
        await viaPg.execute(`DROP TABLE ${t}`);
      }
    });
  });
}
