/**
 * Hostile clients of the embedded engine's pg port: each leaves, sends what the port does not
 * expect, or holds PGlite's one session, and afterwards another pg-port client and a gRPC call
 * are still answered (the server still serves), with the rows in the database as they should be.
 * Raw protocol frames go over node:net; node-postgres is the ordinary client.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createClient } from '@heliosdb/client';
import type { StartServerOptions } from '../src/server/server.js';
import { pgPortServer, type PgPortServer } from './pgwire-fixture.js';

const pglite = { name: 'pglite', databaseUrl: undefined } as const;

const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]);
function msg(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(5);
  h.write(type, 0, 'latin1');
  h.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}
const Q = (sql: string) => msg('Q', cstr(sql));
const Parse = (sql: string) => msg('P', Buffer.concat([cstr(''), cstr(sql), Buffer.alloc(2)]));
const Bind = msg('B', Buffer.concat([cstr(''), cstr(''), Buffer.alloc(6)]));
const Execute = msg('E', Buffer.concat([cstr(''), Buffer.alloc(4)]));
const Sync = msg('S');
const Flush = msg('H');
const Terminate = msg('X');
/** FunctionCall of function oid 1 with no arguments, text result. */
const FunctionCall = msg('F', Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0]));

interface BMsg {
  type: string;
  body: Buffer;
}

/** A raw client, logged in as postgres. */
class Raw {
  readonly msgs: BMsg[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 5) {
        const len = this.buf.readInt32BE(1);
        if (this.buf.length < len + 1) break;
        this.msgs.push({ type: String.fromCharCode(this.buf[0]!), body: this.buf.subarray(5, len + 1) });
        this.buf = this.buf.subarray(len + 1);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static async connect(port: number): Promise<Raw> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const r = new Raw(socket);
    const params = Buffer.concat([cstr('user'), cstr('postgres'), cstr('database'), cstr('postgres'), Buffer.alloc(1)]);
    const head = Buffer.alloc(8);
    head.writeInt32BE(params.length + 8, 0);
    head.writeInt32BE(196608, 4);
    socket.write(Buffer.concat([head, params]));
    await r.until((m) => m.filter((x) => x.type === 'Z').length >= 1);
    r.msgs.length = 0;
    return r;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `cond` holds for the messages received (or the socket closed), at most `ms`. */
  async until(cond: (m: BMsg[]) => boolean, ms = 10_000): Promise<void> {
    const end = Date.now() + ms;
    while (!cond(this.msgs)) {
      if (this.closed) return;
      if (Date.now() > end) throw new Error(`timed out; got ${this.msgs.map((m) => m.type).join('')}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100).unref();
      });
    }
  }

  /** Waits for `n` ReadyForQuery messages in all. */
  readies(n: number, ms?: number): Promise<void> {
    return this.until((m) => m.filter((x) => x.type === 'Z').length >= n, ms);
  }

  /** The SQLSTATE and severity of each ErrorResponse received. */
  errors(): { code: string; severity: string }[] {
    return this.msgs.filter((m) => m.type === 'E').map((m) => ({ code: field(m.body, 'C'), severity: field(m.body, 'S') }));
  }

  /** The first cell of each DataRow received. */
  cells(): string[] {
    return this.msgs.filter((m) => m.type === 'D').map((m) => m.body.toString('utf8', 6, 6 + m.body.readInt32BE(2)));
  }
}

function field(body: Buffer, code: string): string {
  let p = 0;
  while (p < body.length && body[p] !== 0) {
    const end = body.indexOf(0, p + 1);
    if (String.fromCharCode(body[p]!) === code) return body.toString('utf8', p + 1, end);
    p = end + 1;
  }
  return '';
}

async function server(t: TestContext, options: Partial<StartServerOptions> = {}): Promise<PgPortServer> {
  const s = await pgPortServer(t, pglite, { auth: false, server: options });
  await s.verify('CREATE TABLE hostile (id int)');
  return s;
}

/** Another pg-port client and a gRPC call are answered (within a bound). */
async function stillServes(s: PgPortServer): Promise<void> {
  const c = new pg.Client({ ...s.pgConfig, connectionTimeoutMillis: 10_000, query_timeout: 10_000 });
  await c.connect();
  try {
    assert.equal((await c.query('SELECT 41 + 1 AS n')).rows[0].n, 42);
  } finally {
    await c.end();
  }
  const grpc = grpcOf(s);
  try {
    assert.equal((await grpc.queryOne<{ n: number }>('SELECT 7 AS n')).n, 7);
  } finally {
    await grpc.close();
  }
}

function grpcOf(s: PgPortServer) {
  const auth = s.auth ? { apiKey: s.keyEnv.PGPASSWORD, ssl: s.pgConfig.ssl as { ca: string } } : {};
  return createClient({ url: s.server.grpcUrl, minConnections: 0, timeoutMs: 10_000, ...auth });
}

async function count(s: PgPortServer): Promise<number> {
  const [row] = await s.verify('SELECT count(*)::int AS n FROM hostile');
  return row!.n as number;
}

test('a client that closes its socket while its statement runs leaves the server serving', { timeout: 60_000 }, async (t) => {
  const s = await server(t);
  const a = await Raw.connect(s.port);
  a.socket.write(Q('INSERT INTO hostile SELECT 1 FROM pg_sleep(0.5)'));
  await sleep(100);
  a.socket.destroy();
  await stillServes(s);
  // The statement ran to its end in the engine.
  assert.equal(await count(s), 1);
});

test('a client that sends Terminate while its statement runs leaves the server serving', { timeout: 60_000 }, async (t) => {
  const s = await server(t);
  const a = await Raw.connect(s.port);
  a.socket.write(Q('INSERT INTO hostile SELECT 1 FROM pg_sleep(0.5)'));
  await sleep(100);
  a.socket.write(Terminate);
  await a.until(() => false, 10_000).catch(() => {});
  assert.ok(a.closed);
  await stillServes(s);
  assert.equal(await count(s), 1);
});

test('a message of an unknown type ends that client with FATAL 08P01 and never reaches the engine', { timeout: 60_000 }, async (t) => {
  const s = await server(t);
  const a = await Raw.connect(s.port);
  a.socket.write(Buffer.concat([msg('!', Buffer.from('xx')), Q('INSERT INTO hostile VALUES (1)')]));
  await a.until(() => false, 10_000).catch(() => {});
  assert.ok(a.closed);
  assert.deepEqual(a.errors(), [{ code: '08P01', severity: 'FATAL' }]);
  await stillServes(s);
  assert.equal(await count(s), 0);
  // A password message after login is not a message the engine gets either.
  const b = await Raw.connect(s.port);
  b.socket.write(msg('p', cstr('secret')));
  await b.until(() => false, 10_000).catch(() => {});
  assert.ok(b.closed);
  assert.deepEqual(b.errors(), [{ code: '08P01', severity: 'FATAL' }]);
  await stillServes(s);
});

test('a FunctionCall is refused with 0A000 in order, and answers stay with their clients', { timeout: 60_000 }, async (t) => {
  const s = await server(t);
  const a = await Raw.connect(s.port);
  const c = new pg.Client({ ...s.pgConfig, query_timeout: 10_000 });
  c.on('error', () => {});
  await c.connect();
  t.after(() => c.end().catch(() => {}));
  // Outside an extended exchange: ERROR, ReadyForQuery; then the Sync's ReadyForQuery.
  a.socket.write(Buffer.concat([FunctionCall, Sync, Q("SELECT 'a-1'")]));
  const other = c.query("SELECT 'c-1' AS v");
  await a.readies(3);
  assert.deepEqual(a.errors(), [{ code: '0A000', severity: 'ERROR' }]);
  assert.deepEqual(a.cells(), ['a-1']);
  assert.equal((await other).rows[0].v, 'c-1');
  // Inside one: the error, the rest skipped to the Sync, one ReadyForQuery.
  a.msgs.length = 0;
  a.socket.write(Buffer.concat([Parse("SELECT 'a-2'"), FunctionCall, Bind, Execute, Sync, Q("SELECT 'a-3'")]));
  await a.readies(2);
  assert.deepEqual(a.errors(), [{ code: '0A000', severity: 'ERROR' }]);
  assert.deepEqual(a.cells(), ['a-3']);
  assert.equal((await c.query("SELECT 'c-2' AS v")).rows[0].v, 'c-2');
  a.socket.destroy();
  await stillServes(s);
});

test('a holder unsynced or in COPY FROM STDIN past the timeout gets 25P03; nothing it sent is committed', {
  timeout: 60_000,
}, async (t) => {
  const s = await server(t, { pgIdleInTransactionTimeoutMs: 1000 });
  // Extended messages without Sync.
  const a = await Raw.connect(s.port);
  a.socket.write(Buffer.concat([Parse('INSERT INTO hostile VALUES (1)'), Bind, Execute, Flush]));
  await stillServes(s);
  await a.until(() => false, 10_000).catch(() => {});
  assert.ok(a.closed);
  assert.ok(a.errors().some((e) => e.code === '25P03' && e.severity === 'FATAL'));
  assert.equal(await count(s), 0);
  // COPY FROM STDIN and no data.
  const b = await Raw.connect(s.port);
  b.socket.write(Q('COPY hostile FROM STDIN'));
  await b.until((m) => m.some((x) => x.type === 'G'));
  await stillServes(s);
  await b.until(() => false, 10_000).catch(() => {});
  assert.ok(b.closed);
  assert.deepEqual(b.errors(), [{ code: '25P03', severity: 'FATAL' }]);
  assert.equal(await count(s), 0);
});

test('a client that leaves before Sync has nothing committed; a Query before Terminate runs', { timeout: 60_000 }, async (t) => {
  const s = await server(t);
  const a = await Raw.connect(s.port);
  a.socket.write(Buffer.concat([Parse('INSERT INTO hostile VALUES (1)'), Bind, Execute, Flush]));
  await sleep(200);
  a.socket.destroy();
  await stillServes(s);
  assert.equal(await count(s), 0);
  const b = await Raw.connect(s.port);
  b.socket.write(Buffer.concat([Q('BEGIN; INSERT INTO hostile VALUES (2); COMMIT'), Terminate]));
  await b.until(() => false, 10_000).catch(() => {});
  assert.ok(b.closed);
  await stillServes(s);
  assert.equal(await count(s), 1);
});

test('a waiting client that floods queries is read as its queue drains, and every query is answered', { timeout: 90_000 }, async (t) => {
  const s = await server(t);
  // Logging in takes a turn: the flooding client logs in first.
  const a = await Raw.connect(s.port);
  const holder = new pg.Client(s.pgConfig);
  await holder.connect();
  await holder.query('BEGIN');
  const n = 12_000;
  a.socket.write(Buffer.concat(Array.from({ length: n }, () => Q('SELECT 1'))));
  await sleep(500);
  await holder.query('INSERT INTO hostile VALUES (1)');
  await holder.query('COMMIT');
  await holder.end();
  await a.readies(n, 60_000);
  assert.equal(a.cells().length, n);
  // By bytes: 32 MiB of queries while another client holds the session stay mostly unread.
  a.msgs.length = 0;
  const holder2 = new pg.Client(s.pgConfig);
  await holder2.connect();
  await holder2.query('BEGIN');
  const big = 512;
  const q = Q(`SELECT 2 /* ${'y'.repeat(60_000)} */`);
  for (let i = 0; i < big; i++) a.socket.write(q);
  await sleep(1000);
  assert.ok(a.socket.writableLength > 8 * 1024 * 1024, `unsent: ${a.socket.writableLength}`);
  await holder2.query('COMMIT');
  await holder2.end();
  await a.readies(big, 60_000);
  assert.equal(a.cells().length, big);
  assert.equal(a.socket.writableLength, 0);
  a.socket.destroy();
  await stillServes(s);
  assert.equal(await count(s), 1);
});

test('SQL longer than the analyser checks is refused with 54000; SQL EXECUTE with 0A000', { timeout: 60_000 }, async (t) => {
  const s = await server(t);
  const c = new pg.Client({ ...s.pgConfig, query_timeout: 10_000 });
  c.on('error', () => {});
  await c.connect();
  t.after(() => c.end().catch(() => {}));
  const pad = `/* ${'x'.repeat(70_000)} */`;
  await assert.rejects(c.query(`INSERT INTO hostile VALUES (1) ${pad}`), { code: '54000' });
  await assert.rejects(c.query(`CREATE TEMP TABLE long_tmp (a int) ${pad}`), { code: '54000' });
  await assert.rejects(c.query('EXECUTE anything(1)'), { code: '0A000' });
  assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1);
  await stillServes(s);
  assert.equal(await count(s), 0);
});

test('what a DO block leaves on the session does not reach the next client; the server keeps its LISTENs', {
  timeout: 60_000,
}, async (t) => {
  const s = await server(t);
  const grpc = createClient({ url: s.server.grpcUrl, minConnections: 0, timeoutMs: 10_000 });
  t.after(() => grpc.close());
  const heard: string[] = [];
  const listener = await grpc.listen('hostile_server', (n) => heard.push(n.payload));
  const a = new pg.Client({ ...s.pgConfig, query_timeout: 10_000 });
  const b = new pg.Client({ ...s.pgConfig, query_timeout: 10_000 });
  for (const c of [a, b]) c.on('error', () => {});
  await a.connect();
  await b.connect();
  try {
    await a.query(`DO $$BEGIN
      PERFORM set_config('default_transaction_read_only', 'on', false);
      PERFORM pg_advisory_lock(4242);
      CREATE TEMP TABLE do_tmp (a int);
      EXECUTE 'LISTEN hostile_do';
    END$$`);
    // b has the same settings as a: the reset runs for every change of holder.
    await b.query('INSERT INTO hostile VALUES (1)');
    assert.equal((await b.query("SELECT to_regclass('pg_temp.do_tmp') AS t")).rows[0].t, null);
    assert.equal((await b.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory'")).rows[0].n, 0);
    const channels = (await b.query('SELECT pg_listening_channels() AS c')).rows.map((r) => r.c);
    assert.ok(!channels.includes('hostile_do'));
    assert.ok(channels.includes('hostile_server'));
  } finally {
    await a.end();
    await b.end();
  }
  await grpc.execute("NOTIFY hostile_server, 'still'");
  for (let i = 0; i < 50 && heard.length === 0; i++) await sleep(100);
  assert.deepEqual(heard, ['still']);
  await listener.unlisten();
  await stillServes(s);
  assert.equal(await count(s), 1);
});

test('a setting that no longer applies is dropped; the client keeps its turn and its other settings', { timeout: 60_000 }, async (t) => {
  const s = await server(t);
  const a = new pg.Client({ ...s.pgConfig, query_timeout: 10_000 });
  const b = new pg.Client({ ...s.pgConfig, query_timeout: 10_000 });
  for (const c of [a, b]) c.on('error', () => {});
  await a.connect();
  await b.connect();
  try {
    await a.query('CREATE TEXT SEARCH CONFIGURATION hostile_ts (COPY = simple)');
    await a.query('SET default_text_search_config = hostile_ts');
    await a.query("SET application_name = 'hostile_a'");
    await a.query('DROP TEXT SEARCH CONFIGURATION hostile_ts');
    const def = (await b.query("SELECT current_setting('default_text_search_config') AS ts")).rows[0].ts;
    const r = await a.query("SELECT current_setting('default_text_search_config') AS ts, current_setting('application_name') AS app");
    assert.equal(r.rows[0].ts, def);
    assert.equal(r.rows[0].app, 'hostile_a');
  } finally {
    await a.end();
    await b.end();
  }
  await stillServes(s);
});

test("pg_prepared_statements lists every client's protocol-level statements", { timeout: 60_000 }, async (t) => {
  const s = await server(t);
  const a = new pg.Client({ ...s.pgConfig, query_timeout: 10_000 });
  const b = new pg.Client({ ...s.pgConfig, query_timeout: 10_000 });
  for (const c of [a, b]) c.on('error', () => {});
  await a.connect();
  await b.connect();
  try {
    await a.query({ name: 'mine', text: "SELECT 'a-private' AS v" });
    const r = await b.query("SELECT name FROM pg_prepared_statements WHERE statement LIKE '%a-private%'");
    assert.equal(r.rows.length, 1);
    assert.notEqual(r.rows[0].name, 'mine');
    // b cannot run it with SQL EXECUTE.
    await assert.rejects(b.query(`EXECUTE ${r.rows[0].name}`), { code: '0A000' });
  } finally {
    await a.end();
    await b.end();
  }
  await stillServes(s);
});

test('a client whose role can no longer be set is ended instead of running as the previous holder', { timeout: 60_000 }, async (t) => {
  const s = await pgPortServer(t, pglite, { auth: true });
  await s.verify('CREATE ROLE hostile_r');
  await s.server.auth.createUser({ name: 'hostile_u', role: 'hostile_r' });
  const { key } = await s.server.auth.createApiKey({ user: 'hostile_u' });
  const victim = new pg.Client({ ...s.pgConfig, user: 'apikey', password: key, query_timeout: 10_000 });
  const other = new pg.Client({ ...s.pgConfig, query_timeout: 10_000 });
  victim.on('error', () => {});
  other.on('error', () => {});
  await victim.connect();
  await other.connect();
  try {
    assert.equal((await victim.query('SELECT current_user AS u')).rows[0].u, 'hostile_r');
    assert.equal((await other.query('SELECT current_user AS u')).rows[0].u, 'postgres');
    await s.verify('DROP ROLE hostile_r');
    const e = await victim.query('SELECT current_user AS u').then(
      () => ({}) as { code?: string; message?: string },
      (err: { code?: string; message?: string }) => err,
    );
    // FATAL: it never ran as another client's role.
    assert.equal(e.code, '22023');
    assert.match(e.message ?? '', /could not be prepared for this client: role "hostile_r" does not exist/);
    await assert.rejects(victim.query('SELECT 1'));
    assert.equal((await other.query('SELECT current_user AS u')).rows[0].u, 'postgres');
  } finally {
    await victim.end().catch(() => {});
    await other.end();
  }
  await stillServes(s);
});
