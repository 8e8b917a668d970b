/**
 * The embedded PGlite engine in its worker thread, through ordinary pg connections: the protocol
 * (simple and extended, errors, transactions, notifications, COPY TO STDOUT), copyFrom, the
 * COPY FROM STDIN refusal, one connection at a time with a fresh session each, the main event
 * loop running during a long statement, and the worker's crash and restart.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { from as copyFromStdin, to as copyToStdout } from 'pg-copy-streams';
import Cursor from 'pg-cursor';
import pino from 'pino';
import { type EngineExit, type PgliteEngine, startPgliteEngine } from '../src/server/pglite/engine.js';

const log = pino({ level: 'silent' });
const encode = (s: string): Uint8Array => new TextEncoder().encode(s);

type Conn = pg.Client & { _txStatus?: string };

/** Opens the engine's connection; its connection errors are recorded, never thrown. */
async function open(engine: PgliteEngine, config: pg.ClientConfig = {}): Promise<Conn & { errors: Error[] }> {
  const client = (await engine.connect(config)) as Conn & { errors: Error[] };
  client.errors = [];
  client.on('error', (e) => client.errors.push(e));
  return client;
}

async function count(client: pg.Client, table = 't'): Promise<number> {
  return Number((await client.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n);
}

/** Counts 10 ms interval ticks and the longest gap between two while `fn` runs. */
async function ticksDuring(fn: () => Promise<unknown>): Promise<{ ticks: number; maxGapMs: number }> {
  let ticks = 0;
  let last = performance.now();
  let maxGapMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    ticks++;
  }, 10);
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  return { ticks, maxGapMs: Math.max(maxGapMs, performance.now() - last) };
}

describe('embedded engine in a worker thread', () => {
  let engine: PgliteEngine;
  let client: Conn & { errors: Error[] };
  const exits: EngineExit[] = [];

  before(async () => {
    engine = await startPgliteEngine({ log });
    engine.on('exit', (e) => exits.push(e));
    client = await open(engine, { application_name: 'engine-test', options: '-c DateStyle=SQL,DMY -c extra_float_digits=3' });
    await client.query('CREATE TABLE t (a int PRIMARY KEY, b text)');
  });
  after(async () => {
    await client?.end().catch(() => {});
    await engine?.close();
  });

  test('queries with parameters, and the start-up settings applied', async () => {
    const r = await client.query('SELECT $1::int + 1 AS n, $2::text AS s', [41, 'héllo']);
    assert.deepEqual(r.rows, [{ n: 42, s: 'héllo' }]);
    const s = await client.query(
      "SELECT current_setting('application_name') AS app, current_setting('DateStyle') AS ds, current_setting('extra_float_digits') AS efd",
    );
    assert.deepEqual(s.rows, [{ app: 'engine-test', ds: 'SQL, DMY', efd: '3' }]);
    assert.equal(client._txStatus, 'I');
  });

  test('an error, then a good query on the same connection', async () => {
    await assert.rejects(client.query('SELECT * FROM no_such_table'), (e: pg.DatabaseError) => e.code === '42P01');
    await assert.rejects(client.query('SELECT $1::int', ['x']), (e: pg.DatabaseError) => e.code === '22P02');
    assert.deepEqual((await client.query('SELECT 7 AS n')).rows, [{ n: 7 }]);
  });

  test('a named prepared statement is parsed once and reused', async () => {
    const q = { name: 'engine-test-ins', text: 'INSERT INTO t (a, b) VALUES ($1, $2)' };
    await client.query({ ...q, values: [1, 'one'] });
    await client.query({ ...q, values: [2, 'two'] });
    const prepared = await client.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'engine-test-ins'");
    assert.equal(prepared.rows[0].n, 1);
    assert.deepEqual((await client.query('SELECT a, b FROM t ORDER BY a')).rows, [
      { a: 1, b: 'one' },
      { a: 2, b: 'two' },
    ]);
    await client.query('DELETE FROM t');
  });

  test('transaction blocks: ROLLBACK discards, COMMIT keeps, a failed block is E', async () => {
    await client.query('BEGIN');
    assert.equal(client._txStatus, 'T');
    await client.query("INSERT INTO t VALUES (10, 'x')");
    await client.query('ROLLBACK');
    assert.equal(await count(client), 0);
    await client.query('BEGIN');
    await client.query("INSERT INTO t VALUES (11, 'y')");
    await assert.rejects(client.query("INSERT INTO t VALUES (11, 'dup')"), (e: pg.DatabaseError) => e.code === '23505');
    assert.equal(client._txStatus, 'E');
    await client.query('ROLLBACK');
    await client.query('BEGIN');
    await client.query("INSERT INTO t VALUES (12, 'z')");
    await client.query('COMMIT');
    assert.equal(client._txStatus, 'I');
    assert.deepEqual((await client.query('SELECT a FROM t')).rows, [{ a: 12 }]);
    await client.query('DELETE FROM t');
  });

  test('notifications reach client.on("notification")', async () => {
    await client.query('LISTEN engine_test');
    const got = new Promise<pg.Notification>((resolve) => client.once('notification', resolve));
    await client.query("NOTIFY engine_test, 'hello'");
    const n = await got;
    assert.equal(n.channel, 'engine_test');
    assert.equal(n.payload, 'hello');
    await client.query('UNLISTEN engine_test');
  });

  test('COPY TO STDOUT through pg-copy-streams', async () => {
    await client.query("INSERT INTO t SELECT g, 'r' || g FROM generate_series(1, 3000) g");
    const chunks: Buffer[] = [];
    const stream = client.query(copyToStdout('COPY t TO STDOUT'));
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const lines = Buffer.concat(chunks).toString('utf8').trimEnd().split('\n');
    assert.equal(lines.length, 3000);
    assert.equal(lines[0], '1\tr1');
    assert.equal(lines[2999], '3000\tr3000');
    await client.query('DELETE FROM t');
  });

  test('copyFrom loads a blob, in the connection session and its transaction', async () => {
    const r = await engine.copyFrom("COPY t FROM '/dev/blob'", encode('1\ta\n2\tb\n3\tc\n'));
    assert.deepEqual(r, { rowCount: 3, txStatus: 'I' });
    assert.equal(await count(client), 3);
    await client.query('BEGIN');
    assert.equal((await engine.copyFrom("COPY t FROM '/dev/blob' WITH (FORMAT csv)", encode('4,d\n5,e\n'))).txStatus, 'T');
    assert.equal(await count(client), 5);
    await client.query('ROLLBACK');
    assert.equal(await count(client), 3);
    await client.query('BEGIN');
    await assert.rejects(
      engine.copyFrom("COPY t FROM '/dev/blob'", encode('x\ty\n')),
      (e: pg.DatabaseError) => e instanceof pg.DatabaseError && e.code === '22P02',
    );
    await assert.rejects(client.query('SELECT 1'), (e: pg.DatabaseError) => e.code === '25P02');
    await client.query('ROLLBACK');
    assert.equal(await count(client), 3);
    await client.query('DELETE FROM t');
  });

  test('copyFrom waits for the end of an extended-protocol exchange (an open cursor)', async () => {
    await client.query("INSERT INTO t SELECT g, 'c' FROM generate_series(1, 10) g");
    await client.query('BEGIN');
    const cursor = client.query(new Cursor('SELECT a FROM t ORDER BY a'));
    assert.equal((await cursor.read(2)).length, 2);
    let copied = false;
    const copy = engine.copyFrom("COPY t FROM '/dev/blob'", encode('100\tx\n')).then((r) => {
      copied = true;
      return r;
    });
    // Had the copy gone ahead, its answer would have come before this read's rows.
    assert.deepEqual(
      (await cursor.read(3)).map((r) => r.a),
      [3, 4, 5],
    );
    assert.equal(copied, false);
    await cursor.close();
    assert.equal((await copy).rowCount, 1);
    await client.query('COMMIT');
    assert.equal(await count(client), 11);
    await client.query('DELETE FROM t');
  });

  test('COPY FROM STDIN never reaches PGlite: refused with 0A000, the engine lives on', async () => {
    const refused = (e: pg.DatabaseError): boolean =>
      e.code === '0A000' && /COPY FROM STDIN cannot run on the embedded engine/.test(e.message);
    await assert.rejects(client.query('COPY t FROM STDIN'), refused);
    await assert.rejects(client.query('SELECT 1; copy t (a, b) from stdin with (format csv)'), refused);
    // Extended protocol, a named statement, inside a transaction block: the block fails.
    await client.query('BEGIN');
    await assert.rejects(client.query({ name: 'engine-test-copy', text: 'COPY t FROM STDIN', values: [] }), refused);
    assert.equal(client._txStatus, 'E');
    await client.query('ROLLBACK');
    // pg-copy-streams' from() sends a simple Query.
    await assert.rejects(pipeline(Readable.from(['1\ta\n']), client.query(copyFromStdin('COPY t FROM STDIN'))), refused);
    assert.equal(engine.isRunning, true);
    assert.deepEqual((await client.query('SELECT 1 AS ok')).rows, [{ ok: 1 }]);
    assert.equal(await count(client), 0);
    assert.deepEqual(exits, []);
  });

  test('the main event loop keeps ticking while a statement sleeps', async () => {
    const { ticks, maxGapMs } = await ticksDuring(() => client.query('SELECT pg_sleep(1)'));
    // Blocked in-process it would be 0 ticks and one gap of 1000 ms.
    assert.ok(ticks >= 30, `only ${ticks} ticks during pg_sleep(1)`);
    assert.ok(maxGapMs < 500, `the event loop stalled for ${maxGapMs.toFixed(0)} ms`);
  });

  test('one connection at a time; each new one gets a fresh session', async () => {
    await assert.rejects(engine.connect(), /one session and a connection to it is already open/);
    await client.query("CREATE TEMP TABLE tmp (a int); PREPARE ps AS SELECT 1; SET TimeZone = 'Asia/Tokyo'");
    await client.query("BEGIN; INSERT INTO t VALUES (99, 'uncommitted')");
    await client.end();
    client = await open(engine, { application_name: 'engine-test-2' });
    const r = await client.query(
      "SELECT to_regclass('pg_temp.tmp') AS tmp, (SELECT count(*)::int FROM pg_prepared_statements) AS prepared, current_setting('TimeZone') AS tz, current_setting('application_name') AS app, current_setting('DateStyle') AS ds",
    );
    assert.deepEqual(r.rows, [{ tmp: null, prepared: 0, tz: 'UTC', app: 'engine-test-2', ds: 'ISO, MDY' }]);
    assert.equal(await count(client), 0);
    assert.equal(client._txStatus, 'I');
  });

  test('a destroyed connection (mid-statement) rolls back and frees the session', async () => {
    await client.query("BEGIN; INSERT INTO t VALUES (98, 'gone')");
    const running = client.query('SELECT pg_sleep(0.3)').catch((e: Error) => e);
    (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    assert.ok((await running) instanceof Error);
    client = await open(engine);
    assert.equal(await count(client), 0);
  });

  test("the worker crashes (PGlite's own exit): the main process lives, the connection fails, restart() starts afresh", async () => {
    const exited = new Promise<EngineExit>((resolve) => engine.once('exit', resolve));
    const running = client.query('SELECT pg_sleep(0.2)').then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    engine.crashForTest('copy-from-stdin');
    const err = await running;
    assert.ok(err instanceof Error, 'the running query fails');
    assert.equal(err.code, 'ECONNRESET');
    assert.match(err.message, /embedded engine is not running/);
    const exit = await exited;
    assert.equal(exit.expected, false);
    assert.notEqual(exit.code, 0);
    assert.ok(client.errors.length > 0, 'the client reports a connection error');
    assert.equal(engine.isRunning, false);
    await assert.rejects(engine.connect(), /embedded engine is not running: its worker exited/);
    await assert.rejects(engine.copyFrom("COPY t FROM '/dev/blob'", encode('1\tx\n')), /not running/);

    await engine.restart();
    client = await open(engine);
    // In memory: a fresh, empty database.
    assert.equal((await client.query("SELECT to_regclass('public.t') AS t")).rows[0].t, null);
    await client.query('CREATE TABLE t (a int PRIMARY KEY, b text)');

    // process.exit in the worker: the same.
    const exited2 = new Promise<EngineExit>((resolve) => engine.once('exit', resolve));
    engine.crashForTest('exit');
    assert.equal((await exited2).code, 1);
    await assert.rejects(client.query('SELECT 1'));
    await engine.restart();
    client = await open(engine);
    assert.deepEqual((await client.query('SELECT 1 AS ok')).rows, [{ ok: 1 }]);
  });
});

describe('embedded engine on a data directory', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'heliosdb-engine-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('a crashed worker restarts on the same data directory with its committed data', async () => {
    const engine = await startPgliteEngine({ dataDir: dir, log });
    try {
      let client = await open(engine);
      await client.query('CREATE TABLE kept (a int); INSERT INTO kept VALUES (1), (2)');
      await client.query('BEGIN; INSERT INTO kept VALUES (3)');
      const exited = new Promise<EngineExit>((resolve) => engine.once('exit', resolve));
      engine.crashForTest('exit');
      await exited;
      await engine.restart();
      client = await open(engine);
      assert.equal(await count(client, 'kept'), 2);
      await client.end();
    } finally {
      await engine.close();
    }
  });
});
