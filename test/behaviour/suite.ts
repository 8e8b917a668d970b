/**
 * The client's behaviour, written once and run in three runtimes: Node over native gRPC
 * (`grpc://`), Node over Connect (`http://`), and bundled inside headless Chromium (`src/web.ts`
 * over `fetch`). It imports nothing from Node (not even `node:assert`: see ./assert.ts) so that it
 * bundles for the browser.
 *
 * Adding a behaviour is one entry in {@link cases}; a case that needs a client method that may not
 * exist yet names it in `requires` and is skipped (with the reason) until it does.
 * @packageDocumentation
 */
import type * as WebEntry from '@heliosdb/client/web';
import * as assert from './assert.js';

/** The entry module under test: `src/index.ts` in Node, `src/web.ts` in the browser (same API). */
export type ClientModule = typeof WebEntry;
/** A client made by the module under test. */
export type Client = ReturnType<ClientModule['createClient']>;
/** Client options. */
export type Config = WebEntry.ConnectionConfig;

/** Where a case runs (`node-pg`: the Node entry over `postgres://`, the PostgreSQL wire protocol). */
export type Runtime = 'node-grpc' | 'node-connect' | 'node-pg' | 'browser';

/** What every case gets. */
export interface SuiteContext {
  /** The entry module: its `createClient`, error classes, `IsolationLevel`, ... */
  readonly lib: ClientModule;
  /** The server URL for this runtime (`grpc://`, `http://` or `postgres://`). */
  readonly url: string;
  readonly runtime: Runtime;
  /** `pglite` or `postgresql`. */
  readonly backend: 'pglite' | 'postgresql';
  /** A client for `url` with `minConnections: 1` and `config` on top; closed after the case. */
  client(config?: Config): Client;
  /** A table (or other object) name unique to this run of this case. */
  name(prefix?: string): string;
  /** Runs `fn` after the case, even when it failed (drop tables here). Last registered runs first. */
  defer(fn: () => unknown): void;
}

/** One behaviour. */
export interface BehaviourCase {
  readonly name: string;
  /** Client methods the case needs; it is skipped while one is missing. */
  readonly requires?: readonly string[];
  /** Runtimes the case applies to; default all. */
  readonly only?: readonly Runtime[];
  run(ctx: SuiteContext): Promise<void>;
}

/** The outcome of one case. */
export interface CaseResult {
  name: string;
  status: 'passed' | 'failed' | 'skipped';
  /** Why it was skipped, or the failure's message. */
  message?: string;
  /** The failure's stack. */
  stack?: string;
  /** The thrown value itself (only when run in the same realm). */
  error?: unknown;
  durationMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Creates a table and drops it after the case; returns its name. */
async function table(ctx: SuiteContext, c: Client, columns: string, prefix = 't'): Promise<string> {
  const t = ctx.name(prefix);
  await c.execute(`CREATE TABLE ${t} (${columns})`);
  ctx.defer(() => c.execute(`DROP TABLE IF EXISTS ${t}`));
  return t;
}

/** Every behaviour, in order. */
export const cases: readonly BehaviourCase[] = [
  {
    name: 'query: parameters in, the type mapping out',
    async run(ctx) {
      const c = ctx.client();
      const when = new Date('2024-02-29T12:34:56.789Z');
      const bytes = new Uint8Array([0, 1, 127, 128, 254, 255]);
      const doc = { a: 1, b: [true, null, 'x'], c: { d: 'é ✓' } };
      const r = await c.query<Record<string, unknown>>(
        `SELECT $1::int8 AS big, $2::numeric AS num, $3::timestamptz AS ts, $4::bytea AS bin, $5::jsonb AS doc,
                $6::int4[] AS ints, $7::text[] AS texts, $8::bool AS flag, $9::float8 AS f, $10::text AS t, $11::int4 AS nul,
                '-9223372036854775808'::int8 AS min8, 42::int4 AS i4, 'NaN'::float8 AS nan, '{"k":[1,2]}'::json AS j,
                '00000000-0000-0000-0000-00000000002a'::uuid AS id, '2024-02-29'::date AS d`,
        [
          9007199254740993n,
          '12345678901234567890.000000001',
          when,
          bytes,
          doc,
          [1, null, 3],
          ['a', 'b,c', '"q"', null],
          true,
          1.5,
          'héllo ✓',
          null,
        ],
      );
      assert.equal(r.rowCount, 1, 'rowCount');
      assert.equal(r.command, 'SELECT', 'command');
      assert.deepEqual(
        r.fields.map((f) => f.type),
        [
          'int8',
          'numeric',
          'timestamptz',
          'bytea',
          'jsonb',
          '_int4',
          '_text',
          'bool',
          'float8',
          'text',
          'int4',
          'int8',
          'int4',
          'float8',
          'json',
          'uuid',
          'date',
        ],
        'field types',
      );
      const row = r.rows[0];
      assert.equal(typeof row.big, 'bigint', 'int8 is a bigint');
      assert.equal(row.big, 9007199254740993n, 'int8 beyond 2^53 is exact');
      assert.equal(row.min8, -9223372036854775808n, 'int8 minimum');
      assert.equal(row.num, '12345678901234567890.000000001', 'numeric is an exact string');
      assert.instanceOf(row.ts, Date, 'timestamptz is a Date');
      assert.equal((row.ts as Date).getTime(), when.getTime(), 'timestamptz value');
      assert.instanceOf(row.bin, Uint8Array, 'bytea is a Uint8Array');
      assert.deepEqual(row.bin, bytes, 'bytea value');
      assert.deepEqual(row.doc, doc, 'jsonb is parsed');
      assert.deepEqual(row.j, { k: [1, 2] }, 'json is parsed');
      assert.deepEqual(row.ints, [1, null, 3], 'int4[] with a NULL');
      assert.deepEqual(row.texts, ['a', 'b,c', '"q"', null], 'text[] with quoting and a NULL');
      assert.equal(row.flag, true, 'bool');
      assert.equal(row.f, 1.5, 'float8');
      assert.equal(row.t, 'héllo ✓', 'text round-trips UTF-8');
      assert.equal(row.nul, null, 'NULL');
      assert.equal(row.i4, 42, 'int4 is a number');
      assert.ok(Number.isNaN(row.nan), 'float8 NaN is kept');
      assert.equal(row.id, '00000000-0000-0000-0000-00000000002a', 'uuid is a string');
      assert.equal(row.d, '2024-02-29', 'date is a YYYY-MM-DD string');
    },
  },
  {
    name: 'query: rowMode array, int8 as string, queryOne and queryMaybeOne',
    async run(ctx) {
      const c = ctx.client({ int8: 'string', rowMode: 'array' });
      const r = await c.query('SELECT $1::int8 AS a, $2::text AS b', [42n, 'x']);
      assert.deepEqual(r.rows, [['42', 'x']], 'arrays, int8 as string');
      const objects = await c.query<{ a: string }>('SELECT 1::int8 AS a', [], { rowMode: 'object' });
      assert.deepEqual(objects.rows, [{ a: '1' }], 'per-call rowMode');
      const c2 = ctx.client();
      assert.deepEqual(await c2.queryOne('SELECT 7 AS n'), { n: 7 }, 'queryOne');
      assert.equal(await c2.queryMaybeOne('SELECT 1 WHERE false'), null, 'queryMaybeOne of no row');
      const e = await assert.rejects(c2.queryOne('SELECT generate_series(1, 3) AS n'), ctx.lib.QueryError, 'queryOne of three rows');
      assert.equal(e.code, 'ROW_COUNT_MISMATCH');
    },
  },
  {
    name: 'execute: DDL, row counts, and reading back',
    async run(ctx) {
      const c = ctx.client();
      const t = await table(ctx, c, 'id int8 PRIMARY KEY, name text NOT NULL');
      const ins = await c.execute(`INSERT INTO ${t} VALUES ($1, $2), ($3, $4), ($5, $6)`, [1n, 'a', 2n, 'b', 3n, 'c']);
      assert.equal(ins.command, 'INSERT');
      assert.equal(ins.rowCount, 3, 'rows inserted');
      const upd = await c.execute(`UPDATE ${t} SET name = upper(name) WHERE id >= $1`, [2n]);
      assert.equal(upd.rowCount, 2, 'rows updated');
      const r = await c.query<{ id: bigint; name: string }>(`SELECT id, name FROM ${t} ORDER BY id`);
      assert.deepEqual(r.rows, [
        { id: 1n, name: 'a' },
        { id: 2n, name: 'B' },
        { id: 3n, name: 'C' },
      ]);
    },
  },
  {
    name: 'sql template: values become parameters, never SQL',
    async run(ctx) {
      const c = ctx.client();
      const evil = "x'; DROP TABLE users; --";
      const n = 41;
      const r = await c.sql<{
        s: string;
        n: number;
        big: bigint;
      }>`SELECT ${evil}::text AS s, ${n}::int4 + 1 AS n, ${2n ** 60n}::int8 AS big`;
      assert.deepEqual(r.rows, [{ s: evil, n: 42, big: 2n ** 60n }], 'template values');
      assert.deepEqual(
        ctx.lib.sqlTemplate(['SELECT ', ' + ', ''] as unknown as TemplateStringsArray, [1, 2]),
        { text: 'SELECT $1 + $2', values: [1, 2] },
        'sqlTemplate',
      );
    },
  },
  {
    name: 'errors: UniqueViolationError and the constraint hierarchy',
    async run(ctx) {
      const { lib } = ctx;
      const c = ctx.client();
      const t = await table(ctx, c, 'id int PRIMARY KEY, email text UNIQUE, n int NOT NULL DEFAULT 0');
      await c.execute(`INSERT INTO ${t} (id, email) VALUES ($1, $2)`, [1, 'a@example.com']);
      const e = await assert.rejects(
        c.execute(`INSERT INTO ${t} (id, email) VALUES ($1, $2)`, [2, 'a@example.com']),
        lib.UniqueViolationError,
      );
      for (const cls of [lib.ConstraintViolationError, lib.QueryError, lib.HeliosDBError, Error]) assert.instanceOf(e, cls);
      assert.notInstanceOf(e, lib.RetryableError, 'not retryable');
      assert.notInstanceOf(e, lib.ForeignKeyViolationError);
      assert.equal(e.name, 'UniqueViolationError');
      assert.equal(e.code, 'UNIQUE_VIOLATION');
      assert.equal(e.sqlstate, '23505');
      assert.equal(e.constraint, `${t}_email_key`);
      assert.equal(e.table, t);
      assert.equal(e.retryable, false);
      assert.equal(e.params, '[redacted]', 'parameters are redacted by default');
      assert.includes(e.query ?? '', `INSERT INTO ${t}`);
      const nn = await assert.rejects(c.execute(`INSERT INTO ${t} (id, email, n) VALUES (3, 'b', NULL)`), lib.NotNullViolationError);
      assert.equal(nn.sqlstate, '23502');
      assert.equal(nn.column, 'n');
      const logged = ctx.client({ logParameters: true });
      const e2 = await assert.rejects(logged.execute(`INSERT INTO ${t} (id, email) VALUES ($1, $2)`, [1, 'z']), lib.UniqueViolationError);
      assert.deepEqual(e2.params, [1, 'z'], 'logParameters: true keeps the parameters');
    },
  },
  {
    name: 'errors: QueryError with sqlstate and position',
    async run(ctx) {
      const { lib } = ctx;
      const c = ctx.client();
      const sql = 'SELECT 1 FROM heliosdb_no_such_table';
      const e = await assert.rejects(c.query(sql), lib.QueryError);
      assert.notInstanceOf(e, lib.ConstraintViolationError);
      assert.equal(e.constructor, lib.QueryError, 'exactly QueryError');
      assert.equal(e.code, 'QUERY_ERROR');
      assert.equal(e.sqlstate, '42P01', 'undefined_table');
      assert.equal(e.position, 15, '1-based position of the table name');
      assert.equal(e.query, sql);
      assert.includes(e.message, 'heliosdb_no_such_table');
      const syntax = await assert.rejects(c.query('SELEC 1'), lib.QueryError);
      assert.equal(syntax.sqlstate, '42601', 'syntax_error');
      assert.equal(syntax.position, 1);
      const zero = await assert.rejects(c.query('SELECT 1 / $1::int AS x', [0]), lib.QueryError);
      assert.equal(zero.sqlstate, '22012', 'division_by_zero');
      const param = await assert.rejects(c.query('SELECT $1::timestamptz', [new Date(Number.NaN)]), lib.ParameterError, 'an invalid Date');
      assert.equal(param.code, 'INVALID_PARAMETER');
    },
  },
  {
    name: 'cancel: AbortSignal rejects with CancelledError and the client stays usable',
    async run(ctx) {
      const { lib } = ctx;
      const c = ctx.client();
      const ac = new AbortController();
      const pending = c.query('SELECT pg_sleep(0.4)', [], { signal: ac.signal });
      setTimeout(() => ac.abort(), 50);
      const e = await assert.rejects(pending, lib.CancelledError);
      assert.equal(e.code, 'CANCELLED');
      assert.instanceOf(e, lib.HeliosDBError);
      const gone = new AbortController();
      gone.abort();
      await assert.rejects(c.query('SELECT 1', [], { signal: gone.signal }), lib.CancelledError, 'an already-aborted signal');
      await sleep(0); // let the cancelled call finish on the server side of an in-process PGlite
      assert.deepEqual(await c.queryOne('SELECT 1 AS n'), { n: 1 }, 'the client works after a cancel');
    },
  },
  {
    name: 'timeout: timeoutMs (per call and per client) rejects with TimeoutError',
    async run(ctx) {
      const { lib } = ctx;
      const c = ctx.client();
      const e = await assert.rejects(c.query('SELECT pg_sleep(0.4)', [], { timeoutMs: 50 }), lib.TimeoutError);
      assert.equal(e.code, 'TIMEOUT');
      assert.notInstanceOf(e, lib.CancelledError);
      const slow = ctx.client({ timeoutMs: 50 });
      await assert.rejects(slow.execute('SELECT pg_sleep(0.4)'), lib.TimeoutError, 'client-wide timeoutMs');
      assert.deepEqual(await slow.queryOne('SELECT 2 AS n', [], { timeoutMs: 5000 }), { n: 2 }, 'a per-call timeout overrides it');
    },
  },
  {
    name: 'metrics: snapshot counts calls, errors and latency by operation',
    async run(ctx) {
      const { lib } = ctx;
      const c = ctx.client();
      for (let i = 0; i < 3; i++) await c.query('SELECT $1::int AS i', [i]);
      await assert.rejects(c.query('SELEC'), lib.QueryError);
      await c.execute('SELECT 1');
      const m = c.metrics.snapshot();
      assert.ok(m.Query, `a Query entry (got ${Object.keys(m).join(', ')})`);
      assert.equal(m.Query.count, 4, 'Query count');
      assert.equal(m.Query.errors, 1, 'Query errors');
      assert.equal(m.Execute?.count, 1, 'Execute count');
      assert.ok(m.Query.p50 > 0 && m.Query.p50 <= m.Query.p95 && m.Query.p95 <= m.Query.p99, `ordered percentiles ${assert.show(m.Query)}`);
      assert.ok(m.Query.meanMs > 0, 'mean latency');
      c.metrics.reset();
      assert.deepEqual(c.metrics.snapshot(), {}, 'reset');
    },
  },
  {
    name: 'pool: getStats has the PoolStats shape and calls wait for a free slot',
    async run(ctx) {
      void ctx;
      const keys = [
        'acquisitionTimeouts',
        'activeConnections',
        'closed',
        'created',
        'healthCheckFailures',
        'idleConnections',
        'inFlight',
        'poolHits',
        'poolMisses',
        'totalConnections',
        'waiting',
        // pg-pool's names for three of them.
        'totalCount',
        'idleCount',
        'waitingCount',
      ];
      const c = ctx.client({ minConnections: 1, maxConnections: 1, maxStreamsPerConnection: 1, acquisitionTimeoutMs: 150 });
      const s0 = c.pool.getStats();
      // Plus the endpoints with their circuit breakers, and the retry counters (docs/resilience.md).
      const resilience = ['ambiguousResults', 'endpoints', 'retries', 'retriesThrottled'];
      assert.deepEqual(Object.keys(s0).sort(), [...keys, ...resilience].sort(), 'PoolStats keys');
      for (const k of keys) {
        const v = s0[k as keyof typeof s0];
        assert.ok(typeof v === 'number' && Number.isInteger(v) && v >= 0, `${k} is a count`);
      }
      assert.equal(s0.endpoints.length, 1, 'one endpoint');
      assert.equal(s0.endpoints[0].circuit, 'closed', 'its circuit is closed');
      const all = await Promise.all([1, 2, 3].map((i) => c.queryOne<{ i: number }>('SELECT $1::int AS i', [i])));
      assert.deepEqual(all, [{ i: 1 }, { i: 2 }, { i: 3 }], 'queued calls all ran');
      const s1 = c.pool.getStats();
      assert.equal(s1.inFlight, 0, 'nothing in flight after the calls');
      assert.equal(s1.waiting, 0, 'nobody waiting');
      assert.ok(s1.poolHits >= 1, 'at least one call started at once');
      assert.ok(s1.poolMisses >= 1, `calls beyond one in flight had to wait (${assert.show(s1)})`);
    },
  },
  {
    name: 'pool: a call that finds no free slot within acquisitionTimeoutMs fails with ConnectionTimeoutError',
    requires: ['stream'],
    async run(ctx) {
      const { lib } = ctx;
      const c = ctx.client({ minConnections: 1, maxConnections: 1, maxStreamsPerConnection: 1, acquisitionTimeoutMs: 150 });
      // An unread stream holds the only call slot (a slow statement would block an in-process
      // PGlite). It is small, so the server finishes sending it while the client holds the slot.
      const hold = c.stream('SELECT generate_series(1, 20) AS n', [], { batchRows: 1 });
      await hold.fields;
      const t0 = performance.now();
      const e = await assert.rejects(c.query('SELECT 1'), lib.ConnectionTimeoutError, 'acquisition timeout');
      const waited = performance.now() - t0;
      assert.ok(waited >= 140 && waited < 5000, `gave up after acquisitionTimeoutMs (${Math.round(waited)} ms)`);
      assert.instanceOf(e, lib.ConnectionError);
      assert.equal(e.code, 'ACQUISITION_TIMEOUT');
      assert.equal(c.pool.getStats().acquisitionTimeouts, 1, 'acquisitionTimeouts');
      await hold.cancel();
      assert.deepEqual(await c.queryOne('SELECT 1 AS n'), { n: 1 }, 'the slot is free again after the stream is cancelled');
    },
  },
  {
    name: 'interceptors: the ones from config run on every call, outermost first',
    async run(ctx) {
      const seen: string[] = [];
      const c = ctx.client({
        applicationName: 'behaviour-suite',
        interceptors: [
          (next) => async (req) => {
            seen.push(`outer:${req.method.name}`);
            req.header.set('x-heliosdb-application-name', 'set-by-interceptor');
            return next(req);
          },
          (next) => async (req) => {
            seen.push(`inner:${req.header.get('x-heliosdb-application-name')}`);
            return next(req);
          },
        ],
      });
      const row = await c.queryOne<{ app: string }>("SELECT current_setting('application_name') AS app");
      assert.equal(row.app, 'set-by-interceptor', 'the interceptor changed a header the server reads');
      assert.deepEqual(seen, ['outer:Query', 'inner:set-by-interceptor'], 'both ran, in order');
      await c.execute('SELECT 1');
      assert.equal(seen[2], 'outer:Execute', 'every call');
    },
  },
  {
    name: 'server info and health check',
    async run(ctx) {
      const c = ctx.client();
      const info = await c.serverInfo();
      assert.equal(info.engine, ctx.backend, 'engine');
      assert.ok(info.version.length > 0, 'version');
      assert.ok(info.limits.maxUnaryRows > 0, 'limits');
      assert.equal(await c.healthCheck(), true, 'SERVING');
    },
  },
  {
    name: 'protocols: Connect binary, Connect JSON and gRPC-Web give the same results',
    only: ['node-connect', 'browser'],
    async run(ctx) {
      const sql = 'SELECT $1::int8 AS big, $2::bytea AS bin, $3::timestamptz AS ts, $4::text[] AS arr';
      const params = [2n ** 62n, new Uint8Array([1, 2, 3]), new Date(Date.UTC(2020, 0, 2, 3, 4, 5, 6)), ['x', null]];
      const results = [];
      for (const protocol of ['connect', 'connect-json', 'grpc-web'] as const) {
        const c = ctx.client({ protocol });
        results.push((await c.query(sql, params)).rows[0]);
        const e = await assert.rejects(c.query('SELECT 1 FROM heliosdb_no_such_table'), ctx.lib.QueryError, protocol);
        assert.equal(e.position, 15, `${protocol}: error detail survives`);
      }
      assert.deepEqual(results[1], results[0], 'connect-json = connect');
      assert.deepEqual(results[2], results[0], 'grpc-web = connect');
      assert.deepEqual(results[0], { big: 2n ** 62n, bin: new Uint8Array([1, 2, 3]), ts: params[2], arr: ['x', null] });
    },
  },
  {
    name: 'browser: grpc:// URLs and Node-only options fail with a clear HeliosDBError',
    only: ['browser'],
    async run(ctx) {
      const { lib } = ctx;
      const e = assert.throws(() => lib.createClient({ url: 'grpc://127.0.0.1:7700' }), lib.HeliosDBError);
      assert.equal(e.code, 'UNSUPPORTED_IN_BROWSER');
      assert.includes(e.message, 'browser cannot use native gRPC');
      assert.includes(e.message, 'http://host:7701');
      const tls = assert.throws(() => lib.createClient({ url: ctx.url, tls: { ca: 'x' } } as Config), lib.HeliosDBError);
      assert.equal(tls.code, 'UNSUPPORTED_IN_BROWSER');
      assert.includes(tls.message, 'not supported in a browser');
      const bad = assert.throws(() => lib.createClient({ url: 'ftp://x' }), lib.HeliosDBError);
      assert.equal(bad.code, 'INVALID_CONFIG');
    },
  },
  {
    name: 'stream: rows arrive in batches; breaking out cancels the query',
    requires: ['stream'],
    async run(ctx) {
      const c = ctx.client();
      const stream = c.stream<{ n: number }>('SELECT generate_series(1, 5000)::int4 AS n', [], { batchRows: 500 });
      let count = 0;
      let sum = 0;
      for await (const row of stream) {
        count++;
        sum += row.n;
      }
      assert.equal(count, 5000, 'every row');
      assert.equal(sum, (5000 * 5001) / 2, 'the right rows');
      assert.equal(stream.stats?.rowCount, 5000, 'stats after the end');
      const early = c.stream<{ n: number }>('SELECT generate_series(1, 100000)::int4 AS n', [], { batchRows: 100 });
      let seen = 0;
      for await (const _ of early) if (++seen === 150) break;
      assert.equal(seen, 150, 'left the loop early');
      assert.equal(c.stats().openStreams, 0, 'no stream left open');
      assert.equal(c.pool.getStats().inFlight, 0, 'the call slot is free again');
      assert.deepEqual(await c.queryOne('SELECT 3 AS n'), { n: 3 }, 'the client works after an early exit');
    },
  },
  {
    name: 'stream: aborting the signal stops it with CancelledError',
    requires: ['stream'],
    async run(ctx) {
      const c = ctx.client();
      const ac = new AbortController();
      const stream = c.stream<{ n: number }>('SELECT generate_series(1, 1000000)::int4 AS n', [], { signal: ac.signal, batchRows: 200 });
      let rows = 0;
      const e = await assert.rejects(async () => {
        for await (const _ of stream) if (++rows === 300) ac.abort();
      }, ctx.lib.CancelledError);
      assert.equal(e.code, 'CANCELLED');
      assert.ok(rows >= 300 && rows < 1000000, `stopped early (${rows} rows)`);
      assert.equal(c.pool.getStats().inFlight, 0, 'the call slot is free again');
    },
  },
  {
    name: 'transaction: commit, rollback, savepoints and isolation from other clients',
    requires: ['transaction', 'begin'],
    async run(ctx) {
      const { lib } = ctx;
      const c = ctx.client();
      const other = ctx.client();
      const t = await table(ctx, c, 'id int PRIMARY KEY, v text');
      await c.transaction(async (tx) => {
        await tx.execute(`INSERT INTO ${t} VALUES (1, 'one')`);
        // PGlite is one database session: another client's statement would wait for the commit.
        if (ctx.backend === 'postgresql')
          assert.equal((await other.query(`SELECT * FROM ${t}`)).rowCount, 0, 'uncommitted rows are invisible to other clients');
        const sp = await tx.savepoint();
        await tx.execute(`INSERT INTO ${t} VALUES (2, 'two')`);
        await sp.rollback();
        await tx.execute(`INSERT INTO ${t} VALUES (3, 'three')`);
      });
      assert.deepEqual(
        (await other.query(`SELECT id FROM ${t} ORDER BY id`)).rows,
        [{ id: 1 }, { id: 3 }],
        'committed, without the rolled-back savepoint',
      );
      const tx = await c.begin({ isolationLevel: lib.IsolationLevel.RepeatableRead });
      await tx.execute(`DELETE FROM ${t}`);
      await tx.rollback();
      assert.equal(tx.state, 'rolledBack');
      assert.equal((await c.query(`SELECT * FROM ${t}`)).rowCount, 2, 'rollback kept the rows');
      const e = await assert.rejects(
        c.transaction(async (inner) => {
          await inner.execute(`INSERT INTO ${t} VALUES (4, 'four')`);
          await inner.execute(`INSERT INTO ${t} VALUES (1, 'dup')`);
        }),
        lib.UniqueViolationError,
        'a failing callback rejects with its error',
      );
      assert.equal(e.sqlstate, '23505');
      assert.equal((await c.query(`SELECT * FROM ${t}`)).rowCount, 2, 'and nothing of it was committed');
      assert.equal(c.stats().openTransactions, 0, 'no transaction left open');
    },
  },
  {
    name: 'prepared statement: prepare once, run many times',
    requires: ['prepare'],
    async run(ctx) {
      const c = ctx.client();
      const st = await c.prepare<{ sq: bigint }>('SELECT $1::int8 * $1::int8 AS sq');
      for (const n of [2n, 3n, 3000000000n]) assert.deepEqual((await st.query([n])).rows, [{ sq: n * n }], `square of ${n}`);
      await st.close();
      assert.equal(st.closed, true);
    },
  },
  {
    name: 'batch: atomic batches apply all or nothing; statementIndex names the failure',
    requires: ['batch'],
    async run(ctx) {
      const { lib } = ctx;
      const c = ctx.client();
      const t = await table(ctx, c, 'id int PRIMARY KEY');
      const ok = await c.batch([{ sql: `INSERT INTO ${t} VALUES ($1)`, params: [1] }, { sql: `INSERT INTO ${t} VALUES (2), (3)` }]);
      assert.equal(ok.rowCount, 3, 'rows affected');
      const e = await assert.rejects(
        c.batch([{ sql: `INSERT INTO ${t} VALUES (4)` }, { sql: `INSERT INTO ${t} VALUES (1)` }]),
        lib.UniqueViolationError,
      );
      assert.equal(e.statementIndex, 1, 'the failing statement');
      assert.equal((await c.query(`SELECT * FROM ${t}`)).rowCount, 3, 'nothing of the failed batch applied');
      const mixed = await c.batch([{ sql: `INSERT INTO ${t} VALUES (5)` }, { sql: `INSERT INTO ${t} VALUES (1)` }], { atomic: false });
      assert.deepEqual(
        mixed.results.map((r) => r.ok),
        [true, false],
        'non-atomic outcomes',
      );
      assert.instanceOf(mixed.results[1].error, lib.UniqueViolationError);
      const many = await c.executeMany(`INSERT INTO ${t} VALUES ($1)`, [[10], [11], [12]]);
      assert.equal(many.rowCount, 3, 'executeMany');
    },
  },
];

let counter = 0;

function randomTag(): string {
  const b = new Uint8Array(4);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Why `c` does not apply to `runtime` or to the module, or undefined when it runs. */
export function skipReason(c: BehaviourCase, runtime: Runtime, lib: ClientModule): string | undefined {
  if (c.only && !c.only.includes(runtime)) return `only for ${c.only.join(', ')}`;
  const proto = lib.HeliosDBClient.prototype as unknown as Record<string, unknown>;
  const missing = (c.requires ?? []).filter((m) => typeof proto[m] !== 'function');
  if (missing.length) return `the client has no ${missing.join(', ')}() yet`;
  return undefined;
}

/** Runs one case with a fresh context; never throws (the outcome says what happened). */
export async function runCase(
  c: BehaviourCase,
  env: { lib: ClientModule; url: string; runtime: Runtime; backend: 'pglite' | 'postgresql' },
): Promise<CaseResult> {
  const t0 = performance.now();
  const skip = skipReason(c, env.runtime, env.lib);
  if (skip) return { name: c.name, status: 'skipped', message: skip, durationMs: 0 };
  const clients: Client[] = [];
  const deferred: (() => unknown)[] = [];
  const tag = `${env.runtime.replace(/-/g, '_')}_${randomTag()}`;
  const ctx: SuiteContext = {
    ...env,
    client(config = {}) {
      const client = env.lib.createClient({ url: env.url, minConnections: 1, ...config });
      clients.push(client);
      return client;
    },
    name(prefix = 't') {
      return `${prefix}_${tag}_${++counter}`;
    },
    defer(fn) {
      deferred.push(fn);
    },
  };
  let result: CaseResult;
  try {
    await c.run(ctx);
    result = { name: c.name, status: 'passed', durationMs: 0 };
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    result = { name: c.name, status: 'failed', message: `${err.name}: ${err.message}`, stack: err.stack, error: e, durationMs: 0 };
  }
  for (const fn of deferred.reverse()) {
    try {
      await fn();
    } catch {
      // Cleanup is best effort.
    }
  }
  await Promise.all(clients.map((cl) => cl.close().catch(() => {})));
  result.durationMs = performance.now() - t0;
  return result;
}

/** Runs every case in order. */
export async function runAll(env: {
  lib: ClientModule;
  url: string;
  runtime: Runtime;
  backend: 'pglite' | 'postgresql';
}): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  for (const c of cases) out.push(await runCase(c, env));
  return out;
}
