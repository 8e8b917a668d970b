/**
 * Hostile input against both listeners (native gRPC, and the HTTP listener over HTTP/2 and
 * HTTP/1.1): oversized messages and metadata are refused without the server buffering them, a
 * compressed-message bomb is refused, a flood of opened-and-reset streams neither takes the server
 * down nor starves another client, and SQL or names made of quotes and control characters travel
 * as data. (The CORS preflight from a disallowed origin is tested in client-browser.test.ts; JWTs
 * with `alg: none`, a wrong issuer or audience, an unknown key id or an expired time, and the
 * slowing down of failed logins, in security-auth.test.ts.)
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { createClient, type HeliosDBClient } from '@heliosdb/client';
import { type HeliosServer, startServer } from '../src/server/server.js';
import { uniqueName } from './helpers/server.js';

const maxMessageBytes = 1 << 20;
const queryPath = '/heliosdb.v1.DatabaseService/Query';

interface RawOutcome {
  status?: number;
  grpcStatus?: string;
  rstCode?: number;
  error?: string;
  ms: number;
}

/** One raw HTTP/2 request; resolves when the stream closes. */
function h2(url: string, headers: http2.OutgoingHttpHeaders, body: Buffer, opts: { end?: boolean } = {}): Promise<RawOutcome> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const session = http2.connect(url);
    const out: RawOutcome = { ms: 0 };
    session.on('error', (e) => (out.error = e.message));
    const req = session.request({ ':method': 'POST', ':path': queryPath, ...headers });
    req.on('response', (h) => {
      out.status = Number(h[':status']);
      if (h['grpc-status'] !== undefined) out.grpcStatus = String(h['grpc-status']);
    });
    req.on('trailers', (t) => {
      out.grpcStatus = String(t['grpc-status']);
      req.close(); // the server answered; it need not read the rest of an oversized body
    });
    req.on('data', () => {});
    // The server may answer before the request is complete: then stop sending.
    req.on('end', () => req.close());
    req.on('error', (e) => (out.error = e.message));
    req.on('close', () => {
      out.rstCode = req.rstCode;
      out.ms = Date.now() - t0;
      session.destroy();
      resolve(out);
    });
    if (opts.end === false) req.write(body);
    else req.end(body);
  });
}

function h1(url: string, headers: http.OutgoingHttpHeaders, body: Buffer): Promise<RawOutcome> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = http.request(url + queryPath, { method: 'POST', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, ms: Date.now() - t0 }));
    });
    req.on('error', (e) => resolve({ error: e.message, ms: Date.now() - t0 }));
    req.end(body);
  });
}

/** A gRPC length-prefixed message frame. */
function grpcFrame(payload: Buffer, compressed = false, claimedLength = payload.length): Buffer {
  const head = Buffer.alloc(5);
  head[0] = compressed ? 1 : 0;
  head.writeUInt32BE(claimedLength, 1);
  return Buffer.concat([head, payload]);
}

/** QueryRequest{sql: "SELECT $1::text", params: [text value of `size` bytes]} in protobuf binary. */
function bigQueryRequest(size: number): Buffer {
  const varint = (n: number) => {
    const out: number[] = [];
    while (n > 127) {
      out.push((n & 127) | 128);
      n >>>= 7;
    }
    out.push(n);
    return Buffer.from(out);
  };
  const sql = Buffer.from('SELECT $1::text');
  const text = Buffer.alloc(size, 'x');
  // Only the size matters: the server refuses the message before decoding it.
  const value = Buffer.concat([Buffer.from([0x0a]), varint(text.length), text]);
  return Buffer.concat([Buffer.from([0x0a]), varint(sql.length), sql, Buffer.from([0x12]), varint(value.length), value]);
}

describe('hostile input', () => {
  let server: HeliosServer;
  let grpcUrl: string; // http:// form of the native gRPC listener, for raw HTTP/2
  let client: HeliosDBClient;
  before(async () => {
    server = await startServer({ port: 0, httpPort: 0, logLevel: 'silent', maxMessageBytes });
    grpcUrl = server.grpcUrl.replace(/^grpc:/, 'http:');
    client = createClient({ url: server.grpcUrl, minConnections: 1 });
  });
  after(async () => {
    await client.close();
    await server.close();
  });

  const grpcHeaders = { 'content-type': 'application/grpc', te: 'trailers' };

  test('a message over the limit is refused on both listeners (RESOURCE_EXHAUSTED), without buffering what it claims', async () => {
    const big = bigQueryRequest(maxMessageBytes + 1024);
    const r = await h2(grpcUrl, grpcHeaders, grpcFrame(big));
    assert.equal(r.grpcStatus, '8', `native gRPC: ${JSON.stringify(r)}`);
    for (const url of [grpcUrl, server.httpUrl!]) {
      // A frame that claims 1 GiB is refused at once from its 5-byte prefix: the body is never sent.
      const claimed = await h2(url, grpcHeaders, grpcFrame(Buffer.alloc(16), false, 1 << 30), { end: false });
      assert.equal(claimed.grpcStatus, '8', `claimed 1 GiB over ${url}: ${JSON.stringify(claimed)}`);
      assert.ok(claimed.ms < 2000, `refused in ${claimed.ms} ms`);
    }
    // The Connect protocol on the HTTP listener, HTTP/1.1 and h2.
    const r1 = await h1(server.httpUrl!, { 'content-type': 'application/proto', 'connect-protocol-version': '1' }, big);
    assert.equal(r1.status, 429, `HTTP/1.1 Connect (resource_exhausted): ${JSON.stringify(r1)}`);
  });

  test('repeated oversized messages leave the server’s memory bounded', async () => {
    const big = grpcFrame(bigQueryRequest(2 * maxMessageBytes));
    const before = process.memoryUsage().rss;
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          i % 2
            ? h2(grpcUrl, grpcHeaders, big)
            : h1(server.httpUrl!, { 'content-type': 'application/proto', 'connect-protocol-version': '1' }, big.subarray(5)),
        ),
      );
    }
    const grown = (process.memoryUsage().rss - before) / 2 ** 20;
    // 80 MiB were sent; a server that kept them would grow by that much at least.
    assert.ok(grown < 64, `rss grew by ${grown.toFixed(1)} MiB`);
    assert.deepEqual((await client.query('SELECT 1 AS n')).rows, [{ n: 1 }]);
  });

  test('oversized metadata is refused on both listeners', async () => {
    const huge = { 'x-huge': 'x'.repeat(100_000) };
    for (const url of [grpcUrl, server.httpUrl!]) {
      const r = await h2(url, { ...grpcHeaders, ...huge }, grpcFrame(Buffer.alloc(0)));
      assert.equal(r.status, undefined, `no response over ${url}: ${JSON.stringify(r)}`);
      assert.ok(r.rstCode !== 0 || r.error, `the stream was refused over ${url}: ${JSON.stringify(r)}`);
    }
    const r1 = await h1(server.httpUrl!, { 'content-type': 'application/json', 'x-huge': 'x'.repeat(20_000) }, Buffer.from('{}'));
    assert.equal(r1.status, 431);
    assert.deepEqual((await client.query('SELECT 1 AS n')).rows, [{ n: 1 }]);
  });

  test('a compressed-message bomb is refused: it may not inflate past the limit', async () => {
    const bomb = gzipSync(Buffer.alloc(256 * maxMessageBytes)); // 256 MiB of zeros in ~256 KiB
    assert.ok(bomb.length < maxMessageBytes);
    const before = process.memoryUsage().rss;
    for (const url of [grpcUrl, server.httpUrl!]) {
      const r = await h2(url, { ...grpcHeaders, 'grpc-encoding': 'gzip' }, grpcFrame(bomb, true));
      assert.equal(r.grpcStatus, '8', `gRPC over ${url}: ${JSON.stringify(r)}`);
    }
    const r1 = await h1(
      server.httpUrl!,
      { 'content-type': 'application/proto', 'connect-protocol-version': '1', 'content-encoding': 'gzip' },
      bomb,
    );
    assert.ok((r1.status ?? 0) >= 400, `Connect over HTTP/1.1: ${JSON.stringify(r1)}`);
    const grown = (process.memoryUsage().rss - before) / 2 ** 20;
    assert.ok(grown < 128, `rss grew by ${grown.toFixed(1)} MiB (the bomb inflates to 256 MiB)`);
    assert.deepEqual((await client.query('SELECT 1 AS n')).rows, [{ n: 1 }]);
  });

  test('a flood of opened-and-reset streams neither takes the server down nor starves another client', async () => {
    for (const url of [grpcUrl, server.httpUrl!]) {
      let stop = false;
      let done = 0;
      const worst: number[] = [];
      const other = (async () => {
        while (!stop) {
          const t0 = Date.now();
          await client.query('SELECT 1 AS n');
          worst.push(Date.now() - t0);
          done++;
        }
      })();
      const session = http2.connect(url);
      session.on('error', () => {});
      let opened = 0;
      const deadline = Date.now() + 3000;
      while (opened < 3000 && Date.now() < deadline && !session.destroyed) {
        for (let i = 0; i < 100 && !session.destroyed; i++, opened++) {
          try {
            const s = session.request({ ':method': 'POST', ':path': queryPath, ...grpcHeaders });
            s.on('error', () => {});
            s.close(http2.constants.NGHTTP2_CANCEL);
          } catch {
            break; // the server sent GOAWAY: it protects itself by closing the abusive connection
          }
        }
        await new Promise((r) => setImmediate(r));
      }
      session.destroy();
      await new Promise((r) => setTimeout(r, 200));
      stop = true;
      await other;
      assert.ok(done > 0, 'the other client was served during the flood');
      assert.ok(Math.max(...worst) < 5000, `the other client waited at most ${Math.max(...worst)} ms`);
      assert.deepEqual((await client.query('SELECT 1 AS n')).rows, [{ n: 1 }], `the server still answers after the flood on ${url}`);
    }
    const http1 = createClient({ url: server.httpUrl!, httpVersion: '1.1' });
    assert.deepEqual((await http1.query('SELECT 1 AS n')).rows, [{ n: 1 }]);
    await http1.close();
  });

  test('SQL text as a parameter is stored verbatim; names of quotes and control characters come back safely', async () => {
    const hostile = "'; DROP TABLE users; --";
    const name = `we"ird\u0001\n'col;--\u007f`;
    const quoted = `"${name.replace(/"/g, '""')}"`;
    for (const c of [
      client,
      createClient({ url: server.httpUrl!, protocol: 'connect-json' }),
      createClient({ url: server.httpUrl!, protocol: 'grpc-web' }),
    ]) {
      const table = uniqueName('users');
      await c.execute(`CREATE TABLE ${table} (id int, name text)`);
      await c.execute(`INSERT INTO ${table} VALUES ($1, $2)`, [1, hostile]);
      const { rows } = await c.query<{ name: string }>(`SELECT name FROM ${table} WHERE id = $1`, [1]);
      assert.deepEqual(rows, [{ name: hostile }]);
      const r = await c.query(`SELECT 1 AS ${quoted}, $1::text AS "v"`, [name]);
      assert.equal(r.fields[0].name, name);
      assert.deepEqual(r.rows[0], { [name]: 1, v: name });
      await c.execute(`DROP TABLE ${table}`);
      if (c !== client) await c.close();
    }
  });
});
