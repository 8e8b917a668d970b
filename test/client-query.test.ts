/**
 * The Node client against a real server on both backends: the type mapping, every error class
 * from a real database condition, cancellation and deadlines, application_name, result shapes,
 * the sql template, hooks and metrics.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  CancelledError,
  CheckViolationError,
  ConstraintViolationError,
  createClient,
  ForeignKeyViolationError,
  type HeliosDBClient,
  HeliosDBError,
  NotNullViolationError,
  ParameterError,
  PermissionDeniedError,
  type QueryEvent,
  QueryError,
  RetryableError,
  TimeoutError,
  UniqueViolationError,
} from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { rejects } from './helpers/assert-error.js';
import { startTestServer, type TestServer, waitFor } from './helpers/server.js';

describeEachBackend('client queries', (backend) => {
  let ts: TestServer;
  let client: HeliosDBClient;
  const t = `cq_${randomBytes(4).toString('hex')}`;
  const events: QueryEvent[] = [];

  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
    client = createClient({
      url: ts.server.grpcUrl,
      minConnections: 2,
      applicationName: 'client-query-test',
      onQuery: (e) => events.push(e),
    });
    await client.execute(`CREATE TABLE ${t}_parent (id int PRIMARY KEY)`);
    await client.execute(
      `CREATE TABLE ${t} (id int8 PRIMARY KEY, name text NOT NULL, parent int REFERENCES ${t}_parent(id), score int CHECK (score >= 0))`,
    );
    await client.execute(`INSERT INTO ${t}_parent VALUES (1)`);
  });

  after(async () => {
    await client?.execute(`DROP TABLE IF EXISTS ${t}; DROP TABLE IF EXISTS ${t}_parent`).catch(() => {});
    await client?.close();
    await ts?.close();
  });

  test('the type mapping round-trips through parameters and results', async () => {
    const big = 2n ** 53n + 7n;
    const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const when = new Date('2024-02-29T12:34:56.789Z');
    const r = await client.query(
      `SELECT $1::int8 AS big, $2::numeric AS num, $3::bytea AS bytes, $4::timestamptz AS ts, $5::text AS txt,
              $6::int4[] AS arr, $7::jsonb AS doc, $8::bool AS flag, $9::float8 AS f, $10::date AS d,
              $11::float8 AS nan, $12::text[] AS texts, NULL::int AS nothing, '-infinity'::timestamptz AS ninf,
              '1 year 2 mons -3 days 04:05:06.789'::interval AS iv, $13::uuid AS id`,
      [
        big,
        '123456789012345678901234567890.123456789',
        allBytes,
        when,
        'héllo ✓ 😀',
        [1, null, 3],
        { a: [1, 'two', null], b: { c: true } },
        true,
        -1.5e300,
        '2024-02-29',
        Number.NaN,
        ['a,b', 'c"d', null, ''],
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      ],
    );
    const row = r.rows[0];
    assert.equal(row.big, big);
    assert.equal(row.num, '123456789012345678901234567890.123456789');
    assert.deepEqual(row.bytes, allBytes);
    assert.ok(row.bytes instanceof Uint8Array);
    assert.ok(row.ts instanceof Date);
    assert.equal((row.ts as Date).toISOString(), when.toISOString());
    assert.equal(row.txt, 'héllo ✓ 😀');
    assert.deepEqual(row.arr, [1, null, 3]);
    assert.deepEqual(row.doc, { a: [1, 'two', null], b: { c: true } });
    assert.equal(row.flag, true);
    assert.equal(row.f, -1.5e300);
    assert.equal(row.d, '2024-02-29');
    assert.ok(Number.isNaN(row.nan));
    assert.deepEqual(row.texts, ['a,b', 'c"d', null, '']);
    assert.equal(row.nothing, null);
    assert.equal(row.ninf, '-infinity');
    assert.deepEqual(row.iv, { months: 14, days: -3, micros: 14706789000n });
    assert.equal(row.id, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
    assert.deepEqual(
      r.fields.map((f) => f.type),
      [
        'int8',
        'numeric',
        'bytea',
        'timestamptz',
        'text',
        '_int4',
        'jsonb',
        'bool',
        'float8',
        'date',
        'float8',
        '_text',
        'int4',
        'timestamptz',
        'interval',
        'uuid',
      ],
    );
  });

  test('int8 modes: bigint by default, string exact, number throws beyond 2^53', async () => {
    const sql = 'SELECT 9007199254740993::int8 AS v, 42::int8 AS small';
    assert.deepEqual((await client.query(sql)).rows[0], { v: 9007199254740993n, small: 42n });
    const asString = createClient({ url: ts.server.grpcUrl, minConnections: 1, int8: 'string' });
    const asNumber = createClient({ url: ts.server.grpcUrl, minConnections: 1, int8: 'number' });
    try {
      assert.deepEqual((await asString.query(sql)).rows[0], { v: '9007199254740993', small: '42' });
      assert.deepEqual((await asNumber.query('SELECT 42::int8 AS small')).rows[0], { small: 42 });
      await rejects(asNumber.query(sql), ParameterError);
    } finally {
      await asString.close();
      await asNumber.close();
    }
  });

  test('result shapes: rowMode array, rowCount, command, timings, queryOne, queryMaybeOne', async () => {
    const r = await client.query('SELECT g, g * 2 AS twice FROM generate_series(1, 3) g', [], { rowMode: 'array' });
    assert.deepEqual(r.rows, [
      [1, 2],
      [2, 4],
      [3, 6],
    ]);
    assert.equal(r.rowCount, 3);
    assert.equal(r.command, 'SELECT');
    assert.ok(r.executionTimeMs > 0 && r.roundTripMs >= r.executionTimeMs, `${r.executionTimeMs} <= ${r.roundTripMs}`);
    const ins = await client.execute(`INSERT INTO ${t} (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
    assert.deepEqual([ins.command, ins.rowCount], ['INSERT', 3]);
    const upd = await client.query(`UPDATE ${t} SET name = upper(name) WHERE id >= $1`, [2]);
    assert.deepEqual([upd.command, upd.rowCount, upd.rows.length], ['UPDATE', 2, 0]);
    assert.deepEqual(await client.queryOne(`SELECT name FROM ${t} WHERE id = $1`, [2]), { name: 'B' });
    assert.equal(await client.queryMaybeOne(`SELECT name FROM ${t} WHERE id = $1`, [99]), null);
    const many = await rejects(client.queryOne(`SELECT name FROM ${t}`), QueryError);
    assert.equal(many.code, 'ROW_COUNT_MISMATCH');
    await rejects(client.queryOne(`SELECT name FROM ${t} WHERE id = 99`), QueryError);
    await client.execute(`DELETE FROM ${t}`);
  });

  test('the sql template sends values as parameters, never as SQL text', async () => {
    const hostile = "'; DROP TABLE " + t + '; --';
    await client.sql`INSERT INTO ${t} (id, name) VALUES (${10n}, ${hostile})`.catch((e) => {
      // Identifiers cannot be parameters: the template above interpolates the table name, which fails.
      assert.ok(e instanceof QueryError);
    });
    const id = 11n;
    await client.execute(`INSERT INTO ${t} (id, name) VALUES ($1, $2)`, [id, hostile]);
    const r = await client.sql`SELECT name FROM ${'x'}::text AS dummy, (SELECT name FROM pg_catalog.pg_class LIMIT 0) s`.catch((e) => e);
    assert.ok(r instanceof QueryError || Array.isArray(r.rows));
    const back = await client.sql`SELECT ${hostile}::text AS v, ${id}::int8 AS id`;
    assert.deepEqual(back.rows[0], { v: hostile, id });
    assert.equal((await client.queryOne<{ n: bigint }>(`SELECT count(*) AS n FROM ${t} WHERE name = $1`, [hostile])).n, 1n);
    await client.execute(`DELETE FROM ${t}`);
  });

  test('every error class comes from a real database condition', async () => {
    const syntax = await rejects(client.query('SELEC 1'), QueryError);
    assert.equal(syntax.sqlstate, '42601');
    assert.equal(syntax.position, 1);
    assert.equal(syntax.query, 'SELEC 1');
    assert.ok(syntax instanceof HeliosDBError && !(syntax instanceof ConstraintViolationError));

    await client.execute(`INSERT INTO ${t} (id, name, parent, score) VALUES (1, 'a', 1, 1)`);
    const uniq = await rejects(client.execute(`INSERT INTO ${t} (id, name) VALUES ($1, $2)`, [1n, 'dup']), UniqueViolationError);
    assert.equal(uniq.constraint, `${t}_pkey`);
    assert.equal(uniq.table, t);
    assert.equal(uniq.params, '[redacted]');
    assert.ok(uniq instanceof ConstraintViolationError && uniq instanceof QueryError);
    const fk = await rejects(client.execute(`INSERT INTO ${t} (id, name, parent) VALUES (2, 'x', 999)`), ForeignKeyViolationError);
    assert.equal(fk.constraint, `${t}_parent_fkey`);
    const nn = await rejects(client.execute(`INSERT INTO ${t} (id, name) VALUES (3, NULL)`), NotNullViolationError);
    assert.equal(nn.column, 'name');
    const chk = await rejects(client.execute(`INSERT INTO ${t} (id, name, score) VALUES (4, 'x', -1)`), CheckViolationError);
    assert.equal(chk.constraint, `${t}_score_check`);
    const badType = await rejects(client.query('SELECT $1::int AS n', ['not a number']), QueryError);
    assert.equal(badType.sqlstate, '22P02');
    const badCount = await rejects(client.query('SELECT $1::int, $2::int', [1]), QueryError);
    assert.ok(badCount.message.length > 0);

    const role = `${t}_noperm`;
    await client.execute(`CREATE ROLE ${role} NOLOGIN`);
    try {
      const denied = await rejects(client.query(`SET LOCAL ROLE ${role}; SELECT * FROM ${t}`), PermissionDeniedError);
      assert.equal(denied.sqlstate, '42501');
      assert.equal((await client.queryOne<{ u: string }>('SELECT current_user AS u')).u, 'postgres', 'the role did not leak into the pool');
    } finally {
      await client.execute(`DROP ROLE ${role}`);
    }
    await client.execute(`DELETE FROM ${t}`);
  });

  test('a bad parameter fails before anything is sent', async () => {
    const before = client.metrics.snapshot().Query?.count ?? 0;
    await rejects(client.query('SELECT $1', [new Date('nope')]), ParameterError);
    await rejects(client.query('SELECT $1', [() => 1]), ParameterError);
    assert.equal(client.metrics.snapshot().Query?.count ?? 0, before);
  });

  test('RetryableError matches retryable errors through instanceof', async () => {
    const e = new HeliosDBError('x', 'UNAVAILABLE', { retryable: true, retryAfterMs: 50 });
    assert.ok(e instanceof RetryableError);
    assert.equal(e.retryAfterMs, 50);
    assert.ok(!(new QueryError('y') instanceof RetryableError));
    assert.ok(new RetryableError('z') instanceof RetryableError);
  });

  test('application_name reaches the database session', async () => {
    const r = await client.queryOne<{ name: string }>("SELECT current_setting('application_name') AS name");
    assert.equal(r.name, 'client-query-test');
    if (ts.admin) {
      // While a call runs; afterwards the connection is back to the server's own name.
      const running = client.query('SELECT pg_sleep(0.5)');
      const seenRunning = await waitFor(
        async () =>
          (await ts.admin!.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'client-query-test'")).rows[0]
            .n >= 1,
      );
      await running;
      assert.ok(seenRunning, 'visible in pg_stat_activity while the call runs');
    }
  });

  test('timeoutMs and AbortSignal cancel the statement on the server', async () => {
    if (backend.name === 'pglite') {
      // PGlite runs statements synchronously inside the server: a running statement cannot be
      // interrupted. A call cancelled before it reaches the database is still cancelled.
      const ac = new AbortController();
      ac.abort();
      await rejects(client.query('SELECT 1', [], { signal: ac.signal }), CancelledError);
      await rejects(client.query('SELECT 1', [], { timeoutMs: 0.001 }), TimeoutError);
      return;
    }
    const t0 = Date.now();
    const timeout = await rejects(client.query('SELECT pg_sleep(30)', [], { timeoutMs: 300 }), TimeoutError);
    assert.ok(Date.now() - t0 < 10_000, 'the deadline fired');
    assert.ok(timeout.message.length > 0);
    const ac = new AbortController();
    // Settled by the test's own pg_cancel_backend at the end; handled from the start so its
    // rejection can arrive at any time.
    const p = client.query('SELECT pg_sleep(30) AS marker_abort_test').then(
      () => undefined,
      (e: unknown) => e,
    );
    const p2 = client.query('SELECT pg_sleep(30) AS marker_abort_signal', [], { signal: ac.signal });
    setTimeout(() => ac.abort(), 300);
    await rejects(p2, CancelledError);
    // The aborted statement is gone from the database.
    let active = 1;
    for (let i = 0; i < 50 && active > 0; i++) {
      const r = await ts.admin!.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND (query LIKE '%marker_abort_signal%' OR query LIKE '%pg_sleep(30)%') AND query NOT LIKE '%pg_stat_activity%' AND query NOT LIKE '%marker_abort_test%'",
      );
      active = r.rows[0].n;
      if (active > 0) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(active, 0, 'no cancelled pg_sleep remains active');
    // The other, un-aborted call is still running; cancel it too so the test ends quickly.
    await ts.admin!.query(
      "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%marker_abort_test%' AND query NOT LIKE '%pg_stat_activity%'",
    );
    assert.ok((await p) instanceof HeliosDBError, 'the other call ended with an SDK error once cancelled');
  });

  test('onQuery sees every statement, without parameter values unless asked', async () => {
    events.length = 0;
    await client.query('SELECT $1::text AS secret', ['hunter2']);
    await client.query('SELEC').catch(() => {});
    const ok = events.find((e) => e.sql === 'SELECT $1::text AS secret');
    assert.ok(ok, 'event for the query');
    assert.equal(ok.params, undefined);
    assert.equal(ok.rowCount, 1);
    assert.ok(ok.durationMs >= 0);
    const failed = events.find((e) => e.sql === 'SELEC');
    assert.ok(failed?.error instanceof QueryError);
    const logged: QueryEvent[] = [];
    const verbose = createClient({ url: ts.server.grpcUrl, minConnections: 1, logParameters: true, onQuery: (e) => logged.push(e) });
    try {
      const err = await rejects(verbose.query('SELECT $1::int', ['x']), QueryError);
      assert.deepEqual(err.params, ['x']);
      assert.deepEqual(logged[0].params, ['x']);
    } finally {
      await verbose.close();
    }
  });

  test('metrics: counters and latency percentiles by operation', async () => {
    const m = client.metrics.snapshot();
    assert.ok(m.Query.count > 5);
    assert.ok(m.Query.errors > 0);
    assert.ok(m.Query.p50 > 0 && m.Query.p50 <= m.Query.p95 && m.Query.p95 <= m.Query.p99);
    assert.ok(m.Execute.count > 0);
  });

  test('server info and health check', async () => {
    const info = await client.serverInfo();
    assert.equal(info.engine, backend.name);
    assert.match(info.engineVersion, /PostgreSQL/);
    assert.ok(info.limits.maxUnaryRows > 0);
    assert.equal(await client.healthCheck(), true);
  });
});

test('the client reads HELIOSDB_URL and friends from the environment', async () => {
  const { resolveConfig } = await import('../src/client/config.js');
  const saved = { ...process.env };
  try {
    process.env.HELIOSDB_URL = 'grpc://db.example:7777';
    process.env.HELIOSDB_APPLICATION_NAME = 'from-env';
    process.env.HELIOSDB_MAX_CONNECTIONS = '7';
    const c = resolveConfig({ minConnections: 1 });
    assert.equal(c.url, 'grpc://db.example:7777');
    assert.equal(c.applicationName, 'from-env');
    assert.equal(c.maxConnections, 7);
    assert.equal(c.minConnections, 1);
    assert.equal(resolveConfig({ url: 'grpc://explicit:1' }).url, 'grpc://explicit:1', 'explicit options win');
    assert.equal(resolveConfig({ poolRecycleSeconds: 5 }).maxLifetimeSeconds, 5);
    process.env.HELIOSDB_MAX_CONNECTIONS = 'lots';
    assert.throws(() => resolveConfig({}), /HELIOSDB_MAX_CONNECTIONS/);
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});
