/**
 * Limits of the CQL listener against hostile or careless clients: credentials re-checked on
 * open connections, the start-up, idle and TLS handshake deadlines, prepared statements per
 * principal, backpressure on clients that do not read, requests in flight per connection, frame
 * sizes before authentication, statement length, BATCH size, and table comments as untrusted
 * input. Real servers, raw frames or cassandra-driver; bounded in count, bytes and time.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import cassandra from 'cassandra-driver';
import { backends, describeEachBackend } from './helpers/backends.js';
import { type PreparedStatement, PreparedCache, preparedId } from '../src/server/cql/prepared.js';
import { makeTestCerts } from './helpers/certs.js';
import { createKeyspaceCql, cqlClient, cqlServer, keyspaceName } from './cql-support.js';

const auth = (user: string, password: string) => ({ authProvider: new cassandra.auth.PlainTextAuthProvider(user, password) });
const backend = backends[0];

/** A request frame (v4). */
function frame(opcode: number, body: Buffer, stream = 1, length?: number): Buffer {
  const h = Buffer.alloc(9);
  h[0] = 4;
  h.writeInt16BE(stream, 2);
  h[4] = opcode;
  h.writeInt32BE(length ?? body.length, 5);
  return Buffer.concat([h, body]);
}

const startupBody = (() => {
  const parts: Buffer[] = [Buffer.from([0, 1])];
  for (const s of ['CQL_VERSION', '3.0.0']) {
    const b = Buffer.from(s);
    const l = Buffer.alloc(2);
    l.writeUInt16BE(b.length);
    parts.push(l, b);
  }
  return Buffer.concat(parts);
})();

function bytesOf(b: Buffer): Buffer {
  const l = Buffer.alloc(4);
  l.writeInt32BE(b.length);
  return Buffer.concat([l, b]);
}

/** QUERY body: the query, consistency ONE, no flags. */
function queryBody(q: string): Buffer {
  return Buffer.concat([bytesOf(Buffer.from(q)), Buffer.from([0, 1, 0])]);
}

/** EXECUTE body: the id, consistency ONE, no flags. */
function executeBody(id: Buffer): Buffer {
  const l = Buffer.alloc(2);
  l.writeUInt16BE(id.length);
  return Buffer.concat([l, id, Buffer.from([0, 1, 0])]);
}

interface RawFrame {
  stream: number;
  opcode: number;
  body: Buffer;
}

/** A raw connection: frames in by stream order of arrival, and whether the server closed it. */
class Raw {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  private constructor(readonly socket: net.Socket) {
    socket.on('data', (c) => {
      this.buf = Buffer.concat([this.buf, c]);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('error', () => {});
  }

  static async open(port: number): Promise<Raw> {
    const s = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => s.once('connect', resolve));
    return new Raw(s);
  }

  send(b: Buffer): void {
    this.socket.write(b);
  }

  /** The next frame, waiting at most `ms`. */
  async next(ms = 10_000): Promise<RawFrame> {
    const until = Date.now() + ms;
    for (;;) {
      if (this.buf.length >= 9) {
        const len = this.buf.readInt32BE(5);
        if (this.buf.length >= 9 + len) {
          const out = { stream: this.buf.readInt16BE(2), opcode: this.buf[4], body: this.buf.subarray(9, 9 + len) };
          this.buf = this.buf.subarray(9 + len);
          return out;
        }
      }
      if (this.closed || Date.now() > until) throw new Error('no frame arrived');
      await this.wait(Math.min(100, until - Date.now()));
    }
  }

  /** Resolves whether the server closed the connection within `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    while (!this.closed && Date.now() < until) await this.wait(100);
    return this.closed;
  }

  private wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }

  /** STARTUP, then (when `token` is given) AUTH_RESPONSE with SASL PLAIN `\0user\0password`. */
  async start(user?: string, password?: string): Promise<void> {
    this.send(frame(0x01, startupBody));
    const first = await this.next();
    if (first.opcode === 0x02) return; // READY
    assert.equal(first.opcode, 0x03, 'AUTHENTICATE');
    this.send(frame(0x0f, bytesOf(Buffer.from(`\u0000${user}\u0000${password}`))));
    assert.equal((await this.next()).opcode, 0x10, 'AUTH_SUCCESS');
  }
}

/** The code and message of an ERROR frame. */
function errorOf(f: RawFrame): { code: number; message: string } {
  assert.equal(f.opcode, 0x00, `an ERROR, not opcode ${f.opcode}`);
  const len = f.body.readUInt16BE(4);
  return { code: f.body.readInt32BE(0), message: f.body.subarray(6, 6 + len).toString() };
}

/** The prepared id of a RESULT Prepared frame. */
function preparedIdOf(f: RawFrame): Buffer {
  assert.equal(f.opcode, 0x08);
  assert.equal(f.body.readInt32BE(0), 0x0004, 'RESULT kind Prepared');
  const n = f.body.readUInt16BE(4);
  return Buffer.from(f.body.subarray(6, 6 + n));
}

/** Whether `e` is a refusal by the server for the credential (Unauthorized or the connection gone). */
function refusedCredential(e: unknown): boolean {
  if (e instanceof cassandra.errors.ResponseError) return e.code === cassandra.types.responseErrorCodes.unauthorized;
  return e instanceof cassandra.errors.NoHostAvailableError;
}

describeEachBackend('CQL: credentials re-checked on open connections', (b) => {
  test('a revoked key, a replaced password and a deleted user stop working within --auth-cache-ms', { timeout: 120_000 }, async (t) => {
    const f = await cqlServer(t, b, { server: { auth: 'required', allowInsecurePassword: true, authCacheMs: 200 } });
    await f.server.auth.createUser({ name: 'rk', role: 'postgres', password: 'first password' });
    f.onCleanup(async () => void (await f.server.auth.deleteUser('rk').catch(() => undefined)));
    const { key, id } = await f.server.auth.createApiKey({ user: 'rk' });
    const { key: other } = await f.server.auth.createApiKey({ user: 'rk' });
    const byKey = await cqlClient(t, f, auth('rk', key));
    const ks = keyspaceName('recheck');
    await byKey.execute(createKeyspaceCql(ks));
    await byKey.execute(`CREATE TABLE ${ks}.t (k int PRIMARY KEY)`);
    const byPassword = await cqlClient(t, f, auth('rk', 'first password'));
    const byOther = await cqlClient(t, f, auth('rk', other));
    await byPassword.execute(`INSERT INTO ${ks}.t (k) VALUES (1)`);
    await byOther.execute(`INSERT INTO ${ks}.t (k) VALUES (2)`);
    f.verifyAs({ apiKey: other });

    await f.server.auth.revokeApiKey(id);
    await new Promise((r) => setTimeout(r, 500));
    await assert.rejects(byKey.execute(`INSERT INTO ${ks}.t (k) VALUES (10)`), refusedCredential);

    await f.server.auth.createUser({ name: 'rk', role: 'postgres', password: 'second password', replace: true });
    await new Promise((r) => setTimeout(r, 500));
    await assert.rejects(byPassword.execute(`INSERT INTO ${ks}.t (k) VALUES (11)`), refusedCredential);
    assert.deepEqual(
      (await f.verify(`SELECT k FROM ${ks}.t ORDER BY k`)).map((r) => r.k),
      [1, 2],
    );

    await f.server.auth.deleteUser('rk');
    await new Promise((r) => setTimeout(r, 500));
    await assert.rejects(byOther.execute(`SELECT k FROM ${ks}.t`), refusedCredential);
  });
});

test('CQL: a revoked key is answered Unauthorized and its connection closed', { timeout: 60_000 }, async (t) => {
  const f = await cqlServer(t, backend, { server: { auth: 'required', authCacheMs: 0 } });
  await f.server.auth.createUser({ name: 'rw', role: 'postgres', password: 'pw' });
  f.onCleanup(async () => void (await f.server.auth.deleteUser('rw')));
  const { key, id } = await f.server.auth.createApiKey({ user: 'rw', readOnly: true });
  const c = await Raw.open(f.server.cqlPort!);
  t.after(() => c.close());
  await c.start('rw', key);
  c.send(frame(0x07, queryBody("SELECT key FROM system.local WHERE key = 'local'"), 3));
  assert.equal((await c.next()).opcode, 0x08);
  const idle = await Raw.open(f.server.cqlPort!);
  t.after(() => idle.close());
  await idle.start('', key); // an empty user name is accepted with an API key
  await f.server.auth.revokeApiKey(id);
  // --auth-cache-ms 0: the next request asks the store (the idle watch runs every 250 ms).
  c.send(frame(0x07, queryBody("SELECT key FROM system.local WHERE key = 'local'"), 4));
  const e = errorOf(await c.next());
  assert.equal(e.code, 0x2100);
  assert.match(e.message, /no longer valid/);
  assert.ok(await c.closedWithin(5000));
  assert.ok(await idle.closedWithin(5000), 'an idle connection of the revoked key is closed without a request');
});

test('CQL: the start-up, idle and TLS handshake deadlines close connections that do nothing', { timeout: 60_000 }, async (t) => {
  const f = await cqlServer(t, backend, { server: { idleConnectionTimeoutMs: 500 } });
  const port = f.server.cqlPort!;
  const silent = await Raw.open(port);
  const halfHeader = await Raw.open(port);
  halfHeader.send(Buffer.from([4, 0, 0]));
  const ready = await Raw.open(port);
  await ready.start();
  t.after(() => {
    for (const c of [silent, halfHeader, ready]) c.close();
  });
  assert.ok(await silent.closedWithin(5000), 'a connection that sends nothing is closed');
  assert.ok(await halfHeader.closedWithin(5000), 'half a header is closed');
  assert.ok(await ready.closedWithin(5000), 'an idle READY connection is closed');

  // Authentication has 10 s whatever the idle timeout; TLS: a handshake that never starts, 10 s.
  const certs = makeTestCerts();
  const g = await cqlServer(t, backend, { server: { auth: 'required', tlsCert: certs.server.certFile, tlsKey: certs.server.keyFile } });
  const h = await cqlServer(t, backend, { server: { auth: 'required' } });
  const noHello = await Raw.open(g.server.cqlPort!);
  const noAuth = await Raw.open(h.server.cqlPort!);
  noAuth.send(frame(0x01, startupBody));
  assert.equal((await noAuth.next()).opcode, 0x03);
  t.after(() => {
    for (const c of [noHello, noAuth]) c.close();
  });
  assert.ok(await noHello.closedWithin(15_000), 'a TLS connection without a ClientHello is closed');
  assert.ok(await noAuth.closedWithin(5000), 'a connection that never authenticates is closed');
  // A client that keeps working (heartbeats: OPTIONS) is not cut.
  const busy = await Raw.open(port);
  t.after(() => busy.close());
  await busy.start();
  for (let i = 0; i < 8; i++) {
    busy.send(frame(0x05, Buffer.alloc(0), 30 + i));
    assert.equal((await busy.next()).opcode, 0x06);
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(busy.closed, false);
  const client = await cqlClient(t, f);
  for (let i = 0; i < 4; i++) {
    await client.execute("SELECT key FROM system.local WHERE key = 'local'");
    await new Promise((r) => setTimeout(r, 200));
  }
});

test('CQL: with --max-connections reached, the oldest unauthenticated connection makes room', { timeout: 60_000 }, async (t) => {
  const f = await cqlServer(t, backend, { server: { maxConnections: 4 } });
  const port = f.server.cqlPort!;
  const idle: Raw[] = [];
  for (let i = 0; i < 4; i++) idle.push(await Raw.open(port));
  t.after(() => {
    for (const c of idle) c.close();
  });
  const ready = [await Raw.open(port), await Raw.open(port)];
  t.after(() => {
    for (const c of ready) c.close();
  });
  for (const c of ready) await c.start();
  assert.ok(await idle[0].closedWithin(2000), 'the oldest silent connection was closed');
  assert.ok(await idle[1].closedWithin(2000));
  assert.equal(idle[2].closed || idle[3].closed, false);
  // Four authenticated: a fifth connection is refused.
  const more = [await Raw.open(port), await Raw.open(port)];
  t.after(() => {
    for (const c of more) c.close();
  });
  for (const c of more) await c.start();
  const extra = await Raw.open(port);
  t.after(() => extra.close());
  assert.ok(await extra.closedWithin(2000), 'refused when every connection is authenticated');
  for (const c of [...ready, ...more]) {
    c.send(frame(0x05, Buffer.alloc(0), 9));
    assert.equal((await c.next()).opcode, 0x06);
  }
});

test('CQL: prepared statements are per principal, at most --max-prepared-statements each (least recently used forgotten)', {
  timeout: 60_000,
}, async (t) => {
  const f = await cqlServer(t, backend, { server: { auth: 'required', maxPreparedStatements: 3 } });
  await f.server.auth.createUser({ name: 'pa', role: 'postgres', password: 'pw' });
  await f.server.auth.createUser({ name: 'pb', role: 'postgres', password: 'pw' });
  f.onCleanup(async () => {
    await f.server.auth.deleteUser('pa');
    await f.server.auth.deleteUser('pb');
  });
  const { key: ka } = await f.server.auth.createApiKey({ user: 'pa', readOnly: true });
  const { key: kb } = await f.server.auth.createApiKey({ user: 'pb' });
  const a = await Raw.open(f.server.cqlPort!);
  const bConn = await Raw.open(f.server.cqlPort!);
  t.after(() => {
    for (const c of [a, bConn]) c.close();
  });
  await a.start('pa', ka);
  await bConn.start('pb', kb);
  const ids: Buffer[] = [];
  for (let i = 0; i < 4; i++) {
    a.send(frame(0x09, bytesOf(Buffer.from(`SELECT key FROM system.local WHERE key = 'local' LIMIT ${i + 1}`)), 10 + i));
    ids.push(preparedIdOf(await a.next()));
  }
  a.send(frame(0x0a, executeBody(ids[0]), 20));
  assert.equal(errorOf(await a.next()).code, 0x2500, 'the oldest of 4 is forgotten (Unprepared)');
  a.send(frame(0x0a, executeBody(ids[3]), 21));
  assert.equal((await a.next()).opcode, 0x08, 'the newest runs');
  bConn.send(frame(0x0a, executeBody(ids[3]), 22));
  assert.equal(errorOf(await bConn.next()).code, 0x2500, "another principal cannot run pa's statement");

  // Drivers prepare again when told Unprepared: many distinct statements keep working.
  const client = await cqlClient(t, f, auth('pa', ka));
  for (let round = 0; round < 2; round++)
    for (let i = 0; i < 6; i++) {
      const rs = await client.execute(`SELECT key FROM system.local WHERE key = ? LIMIT ${i + 1}`, ['local'], { prepare: true });
      assert.equal(rs.rows.length, 1);
    }
});

test('CQL: a client that does not read its answers stops being read; requests in flight wait, not fail', {
  timeout: 120_000,
}, async (t) => {
  const f = await cqlServer(t, backend, { server: { idleConnectionTimeoutMs: 5000 } });
  const client = await cqlClient(t, f, { pooling: { heartBeatInterval: 1000 } });
  const ks = keyspaceName('bp');
  await client.execute(createKeyspaceCql(ks));
  await client.execute(`CREATE TABLE ${ks}.big (k int PRIMARY KEY, v text)`);
  await client.execute(`CREATE TABLE ${ks}.log (k int PRIMARY KEY)`);
  await client.execute(`INSERT INTO ${ks}.big (k, v) VALUES (1, ?)`, ['x'.repeat(1024 * 1024)], { prepare: true });

  // 20 pipelined requests on a connection allowed 2 at a time: all answered, none Overloaded.
  const g = await cqlServer(t, backend, { server: { maxConcurrentStreams: 2 } });
  const c = await Raw.open(g.server.cqlPort!);
  t.after(() => c.close());
  await c.start();
  for (let i = 0; i < 20; i++) c.send(frame(0x07, queryBody("SELECT key FROM system.local WHERE key = 'local'"), 100 + i));
  for (let i = 0; i < 20; i++) assert.equal((await c.next()).opcode, 0x08);

  // 100 pairs (a 1 MiB row, then an insert) never read, with 100 requests in flight allowed: the
  // server stops running them after a few MiB of unsent answers.
  const lazy = await Raw.open(f.server.cqlPort!);
  t.after(() => lazy.close());
  await lazy.start();
  lazy.socket.pause();
  for (let i = 0; i < 100; i++) {
    lazy.send(frame(0x07, queryBody(`SELECT v FROM ${ks}.big WHERE k = 1`), 2 * i + 1));
    lazy.send(frame(0x07, queryBody(`INSERT INTO ${ks}.log (k) VALUES (${i})`), 2 * i + 2));
  }
  await new Promise((r) => setTimeout(r, 3000));
  const done = (await client.execute(`SELECT count(*) AS n FROM ${ks}.log`)).rows[0].n.toNumber();
  assert.ok(done > 0 && done < 50, `${done} of 100 inserts ran while the client read nothing`);
  // After the idle timeout (5 s) without reading, the server has dropped the connection: reading
  // now gets what was queued (a few MiB, not 100) and then the end.
  await new Promise((r) => setTimeout(r, 5000));
  let received = 0;
  lazy.socket.removeAllListeners('data');
  lazy.socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  lazy.socket.resume();
  assert.ok(await lazy.closedWithin(5000), 'closed once it read nothing for the idle timeout');
  assert.ok(received < 50 * 1024 * 1024, `${received} bytes were queued`);
  lazy.close();
  assert.equal((await client.execute("SELECT key FROM system.local WHERE key = 'local'")).rows.length, 1);
});

test('CQL: 64 KiB frames before authentication, 1 MiB statements, 10,000 statements a BATCH', { timeout: 60_000 }, async (t) => {
  const f = await cqlServer(t, backend, { server: { auth: 'required' } });
  await f.server.auth.createUser({ name: 'lim', role: 'postgres', password: 'pw' });
  f.onCleanup(async () => void (await f.server.auth.deleteUser('lim')));
  const { key } = await f.server.auth.createApiKey({ user: 'lim' });
  const port = f.server.cqlPort!;

  const pre = await Raw.open(port);
  t.after(() => pre.close());
  pre.send(frame(0x01, startupBody));
  assert.equal((await pre.next()).opcode, 0x03);
  pre.send(frame(0x0f, Buffer.alloc(0), 2, 64 * 1024 + 1).subarray(0, 9));
  const e = errorOf(await pre.next());
  assert.equal(e.code, 0x000a);
  assert.match(e.message, /before the connection is authenticated/);
  assert.ok(await pre.closedWithin(5000));

  const odd = await Raw.open(port);
  t.after(() => odd.close());
  odd.send(frame(0x01, startupBody));
  assert.equal((await odd.next()).opcode, 0x03);
  odd.send(frame(0x30, Buffer.alloc(0), 3));
  assert.equal(errorOf(await odd.next()).code, 0x000a, 'an unknown opcode before authentication is a protocol error');
  assert.ok(await odd.closedWithin(5000));

  const c = await Raw.open(port);
  t.after(() => c.close());
  await c.start('lim', key);
  // After authentication, frames up to --max-message-bytes: a 100 KiB statement is parsed.
  c.send(frame(0x07, queryBody(`SELECT key FROM system.local WHERE key = '${'l'.repeat(100 * 1024)}'`), 5));
  assert.equal((await c.next()).opcode, 0x08);
  c.send(frame(0x07, queryBody(`SELECT key FROM system.local WHERE key = '${'l'.repeat(1024 * 1024)}'`), 6));
  const long = errorOf(await c.next());
  assert.equal(long.code, 0x2200);
  assert.match(long.message, /more than the limit of 1048576/);

  const batch = Buffer.alloc(3);
  batch[0] = 1; // UNLOGGED
  batch.writeUInt16BE(10_001, 1);
  c.send(frame(0x0d, batch, 7));
  const big = errorOf(await c.next());
  assert.equal(big.code, 0x2200);
  assert.match(big.message, /more than the limit of 10000/);

  // A second AUTH_RESPONSE is a protocol error.
  c.send(frame(0x0f, bytesOf(Buffer.from(`\u0000lim\u0000${key}`)), 8));
  const again = errorOf(await c.next());
  assert.equal(again.code, 0x000a);
  assert.match(again.message, /already authenticated/);
});

test('CQL: hostile identifiers and literals are syntax errors; a table comment is untrusted', { timeout: 60_000 }, async (t) => {
  const f = await cqlServer(t, backend);
  const client = await cqlClient(t, f);
  const ks = keyspaceName('cmt');
  await client.execute(createKeyspaceCql(ks));
  const isSyntax = (e: unknown) => e instanceof cassandra.errors.ResponseError && e.code === cassandra.types.responseErrorCodes.syntaxError;
  await assert.rejects(client.execute(`SELECT * FROM ${ks}."t\u0000x"`), isSyntax);
  await assert.rejects(client.execute(`SELECT * FROM ${ks}.t WHERE k IN ${'['.repeat(5000)}1${']'.repeat(5000)}`), isSyntax);

  await client.execute(`CREATE TABLE ${ks}.board (k int, c int, v text, PRIMARY KEY (k, c)) WITH CLUSTERING ORDER BY (c DESC)`);
  await client.execute(`INSERT INTO ${ks}.board (k, c, v) VALUES (1, 1, 'a')`);
  await client.execute(`INSERT INTO ${ks}.board (k, c, v) VALUES (1, 2, 'b')`);
  assert.deepEqual(
    (await client.execute(`SELECT c FROM ${ks}.board WHERE k = 1`)).rows.map((r) => r.c),
    [2, 1],
  );
  const [{ comment }] = await f.verify(`SELECT obj_description('${ks}.board'::regclass, 'pg_class') AS comment`);
  for (const hostile of [String(comment).replace('"DESC"', '"ASC, 1/0"'), String(comment).replace('"ck":["c"]', '"ck":["zz"]')]) {
    assert.notEqual(hostile, comment);
    await f.verify(`COMMENT ON TABLE ${ks}.board IS '${hostile.replaceAll("'", "''")}'`);
    await assert.rejects(client.execute(`SELECT c FROM ${ks}.board WHERE k = 1`), (e: unknown) => {
      assert.ok(e instanceof cassandra.errors.ResponseError);
      assert.equal(e.code, cassandra.types.responseErrorCodes.invalid);
      assert.match(e.message, /unconfigured table/);
      return true;
    });
  }
  await f.verify(`COMMENT ON TABLE ${ks}.board IS '${String(comment).replaceAll("'", "''")}'`);
  assert.deepEqual(
    (await client.execute(`SELECT c FROM ${ks}.board WHERE k = 1`)).rows.map((r) => r.c),
    [2, 1],
  );
});

test('CQL prepared cache: 16 MiB per principal (text counted twice); unused statements expire', async () => {
  const cache = new PreparedCache(1000, 60_000);
  const statement = (i: number, chars: number): PreparedStatement => {
    const query = `SELECT ${i} ${'x'.repeat(chars)}`;
    return { id: preparedId(undefined, query), query, keyspace: undefined } as unknown as PreparedStatement;
  };
  const big = Array.from({ length: 9 }, (_, i) => statement(i, 1024 * 1024));
  for (const p of big) cache.add('a', p);
  assert.equal(cache.get('a', big[0].id), undefined, 'over 16 MiB the least recently used is forgotten');
  assert.ok(cache.get('a', big[8].id));
  assert.equal(cache.sizeOf('a'), 7);
  assert.equal(cache.get('b', big[8].id), undefined);

  const short = new PreparedCache(1000, 50);
  const p = statement(0, 10);
  short.add('a', p);
  assert.ok(short.get('a', p.id));
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(short.get('a', p.id), undefined, 'forgotten after the TTL unused');
});
