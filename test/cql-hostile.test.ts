/**
 * Hostile bytes on the CQL port never kill the server: garbage, a frame longer than the limit, a
 * body that ends early, unknown opcodes, requests before STARTUP, a protocol version it does not
 * speak (answered with a protocol error that names v4, so drivers step down), random frames;
 * after each, a new connection still gets SUPPORTED and a query still runs. And the protocol's
 * details the drivers do not show: events, pk_indexes, Unprepared, named values.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { backends } from './helpers/backends.js';
import { freshServer } from './helpers/fresh.js';
import { cqlClient, cqlServer } from './cql-support.js';

/** A request frame. */
function frame(
  opcode: number,
  body: Buffer,
  { version = 4, stream = 1, flags = 0, length }: { version?: number; stream?: number; flags?: number; length?: number } = {},
): Buffer {
  const h = Buffer.alloc(9);
  h[0] = version;
  h[1] = flags;
  h.writeInt16BE(stream, 2);
  h[4] = opcode;
  h.writeInt32BE(length ?? body.length, 5);
  return Buffer.concat([h, body]);
}

function stringMap(m: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  const n = Buffer.alloc(2);
  n.writeUInt16BE(Object.keys(m).length);
  parts.push(n);
  for (const [k, v] of Object.entries(m)) {
    for (const s of [k, v]) {
      const b = Buffer.from(s);
      const l = Buffer.alloc(2);
      l.writeUInt16BE(b.length);
      parts.push(l, b);
    }
  }
  return Buffer.concat(parts);
}

/** Sends `bytes`, collects what comes back until the server closes or `ms` of quiet pass. */
function exchange(port: number, bytes: Buffer, quietMs = 300): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    let timer = setTimeout(() => s.destroy(), quietMs * 10);
    const done = () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    };
    s.on('data', (c) => {
      chunks.push(c);
      clearTimeout(timer);
      timer = setTimeout(() => s.destroy(), quietMs);
    });
    s.on('close', done);
    s.on('error', () => {});
  });
}

/** The error code and message of the first frame in `b` (an ERROR). */
function firstError(b: Buffer): { version: number; code: number; message: string } | undefined {
  if (b.length < 13 || b[4] !== 0x00) return undefined;
  const len = b.readUInt16BE(13);
  return { version: b[0], code: b.readInt32BE(9), message: b.subarray(15, 15 + len).toString() };
}

const backend = backends[0];

test('CQL listener: hostile bytes never kill the server', { timeout: 120_000 }, async (t) => {
  const f = await cqlServer(t, backend, { server: { maxMessageBytes: 1024 * 1024 } });
  const port = f.server.cqlPort!;
  const startup = stringMap({ CQL_VERSION: '3.0.0' });

  const v5 = firstError(await exchange(port, frame(0x01, startup, { version: 5 })));
  assert.equal(v5?.code, 0x000a);
  assert.equal(v5?.version, 0x84, 'answered in v4, the version this server speaks');
  assert.match(v5?.message ?? '', /Invalid or unsupported protocol version \(5\)/);

  const early = firstError(await exchange(port, frame(0x07, Buffer.alloc(10))));
  assert.equal(early?.code, 0x000a, 'QUERY before STARTUP is a protocol error');

  const huge = firstError(await exchange(port, frame(0x01, Buffer.alloc(0), { length: 0x7fffffff })));
  assert.equal(huge?.code, 0x000a);

  const started = frame(0x01, startup);
  const truncatedQuery = frame(0x07, Buffer.from([0, 0, 0, 50, 1, 2]));
  assert.equal(firstError((await exchange(port, Buffer.concat([started, truncatedQuery]))).subarray(9))?.code, 0x000a);
  assert.equal(firstError((await exchange(port, Buffer.concat([started, frame(0x63, Buffer.alloc(3))]))).subarray(9))?.code, 0x000a);
  const bogusValues = frame(
    0x07,
    Buffer.concat([Buffer.from([0, 0, 0, 8]), Buffer.from('SELECT ?'), Buffer.from([0, 1, 0x01, 0xff, 0xff])]),
  );
  await exchange(port, Buffer.concat([started, bogusValues]));
  await exchange(port, randomBytes(4096));
  for (let i = 0; i < 50; i++) {
    const body = randomBytes(Math.floor(Math.random() * 200));
    await exchange(
      port,
      Buffer.concat([started, frame(Math.floor(Math.random() * 0x12), body, { flags: Math.random() < 0.5 ? 0 : 0x04 })]),
      50,
    );
  }

  const supported = await exchange(port, frame(0x05, Buffer.alloc(0)));
  assert.equal(supported[4], 0x06, 'OPTIONS still answers SUPPORTED');
  const client = await cqlClient(t, f);
  const rs = await client.execute("SELECT release_version FROM system.local WHERE key = 'local'");
  assert.equal(rs.rows.length, 1);
});

/** Reads the frames of a connection. */
class RawConnection {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (c) => {
      this.buf = Buffer.concat([this.buf, c]);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(port: number): Promise<RawConnection> {
    const s = net.connect(port, '127.0.0.1');
    await new Promise((resolve) => s.once('connect', resolve));
    return new RawConnection(s);
  }

  send(b: Buffer): void {
    this.socket.write(b);
  }

  /** The next frame (bounded wait). */
  async next(): Promise<{ stream: number; opcode: number; body: Buffer }> {
    for (let i = 0; i < 100; i++) {
      if (this.buf.length >= 9) {
        const len = this.buf.readInt32BE(5);
        if (this.buf.length >= 9 + len) {
          const out = { stream: this.buf.readInt16BE(2), opcode: this.buf[4], body: this.buf.subarray(9, 9 + len) };
          this.buf = this.buf.subarray(9 + len);
          return out;
        }
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    throw new Error('no frame arrived');
  }

  close(): void {
    this.socket.destroy();
  }
}

function longString(s: string): Buffer {
  const b = Buffer.from(s);
  const l = Buffer.alloc(4);
  l.writeInt32BE(b.length);
  return Buffer.concat([l, b]);
}

/** QUERY body: the query, consistency ONE, `flags`, then `rest`. */
function queryBody(q: string, flags = 0, rest: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([longString(q), Buffer.from([0, 1, flags]), rest]);
}

test('CQL protocol: compression refused, SCHEMA_CHANGE events, pk_indexes, Unprepared, named markers, tracing flag', {
  timeout: 120_000,
}, async (t) => {
  const f = await cqlServer(t, backend);
  const port = f.server.cqlPort!;
  const startup = (extra: Record<string, string> = {}) => frame(0x01, stringMap({ CQL_VERSION: '3.0.0', ...extra }));

  const lz4 = firstError(await exchange(port, startup({ COMPRESSION: 'lz4' })));
  assert.equal(lz4?.code, 0x000a);
  assert.match(lz4?.message ?? '', /compression/i);

  const a = await RawConnection.open(port);
  const b = await RawConnection.open(port);
  t.after(() => {
    a.close();
    b.close();
  });
  for (const c of [a, b]) {
    c.send(startup());
    assert.equal((await c.next()).opcode, 0x02);
  }
  const list = Buffer.from([0, 1, 0, 13, ...Buffer.from('SCHEMA_CHANGE')]);
  a.send(frame(0x0b, list, { stream: 2 }));
  assert.equal((await a.next()).opcode, 0x02);
  b.send(
    frame(0x07, queryBody("CREATE KEYSPACE raw WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"), { stream: 3 }),
  );
  assert.equal((await b.next()).opcode, 0x08);
  const event = await a.next();
  assert.equal(event.stream, -1);
  assert.equal(event.opcode, 0x0c);
  assert.match(event.body.toString(), /SCHEMA_CHANGE.*CREATED.*KEYSPACE.*raw/s);

  b.send(frame(0x07, queryBody('CREATE TABLE raw.t (a int, b int, c int, v text, PRIMARY KEY ((b, a), c))'), { stream: 4, flags: 0x02 }));
  assert.equal((await b.next()).opcode, 0x08, 'the tracing flag is ignored');
  b.send(frame(0x09, longString('SELECT v FROM raw.t WHERE a = ? AND c = ? AND b = ?'), { stream: 5 }));
  const prepared = await b.next();
  assert.equal(prepared.opcode, 0x08);
  const body = prepared.body;
  assert.equal(body.readInt32BE(0), 4);
  const idLen = body.readUInt16BE(4);
  const id = body.subarray(6, 6 + idLen);
  let p = 6 + idLen;
  p += 4; // flags
  assert.equal(body.readInt32BE(p), 3, 'three bind markers');
  assert.equal(body.readInt32BE(p + 4), 2, 'two partition key columns');
  assert.deepEqual([body.readUInt16BE(p + 8), body.readUInt16BE(p + 10)], [2, 0], 'b is marker 2, a is marker 0');

  const unknown = Buffer.from(id);
  unknown[0] ^= 0xff;
  const execBody = Buffer.concat([Buffer.from([0, unknown.length]), unknown, Buffer.from([0, 1, 0])]);
  b.send(frame(0x0a, execBody, { stream: 6 }));
  const unprepared = await b.next();
  assert.equal(unprepared.opcode, 0x00);
  assert.equal(unprepared.body.readInt32BE(0), 0x2500);

  // Named values (flag 0x40): in any order.
  const named = (name: string, v: number) => {
    const n = Buffer.from(name);
    const val = Buffer.alloc(8);
    val.writeInt32BE(4);
    val.writeInt32BE(v, 4);
    return Buffer.concat([Buffer.from([0, n.length]), n, val]);
  };
  const values = Buffer.concat([Buffer.from([0, 3]), named('c', 3), named('a', 1), named('b', 2)]);
  b.send(frame(0x07, queryBody("INSERT INTO raw.t (a, b, c, v) VALUES (:a, :b, :c, 'named')", 0x01 | 0x40, values), { stream: 7 }));
  assert.equal((await b.next()).opcode, 0x08);
  assert.deepEqual(await f.verify('SELECT a, b, c, v FROM raw.t'), [{ a: 1, b: 2, c: 3, v: 'named' }]);
});

test('--cql-port: a server on --port 0 takes a free CQL port; -1 turns the listener off', { timeout: 120_000 }, async (t) => {
  const f = await freshServer(t, backend);
  assert.ok(typeof f.server.cqlPort === 'number' && f.server.cqlPort > 0 && f.server.cqlPort !== 9042);
  const off = await freshServer(t, backend, { server: { cqlPort: -1 } });
  assert.equal(off.server.cqlPort, undefined);
});
