/**
 * Hostile bytes on the CQL port never kill the server: garbage, a frame longer than the limit, a
 * body that ends early, unknown opcodes, requests before STARTUP, a protocol version it does not
 * speak (answered with a protocol error that names v4, so drivers step down), random frames;
 * after each, a new connection still gets SUPPORTED and a query still runs.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { backends } from './helpers/backends.js';
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
