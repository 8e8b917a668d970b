/**
 * A client that stops reading a stream and then goes away (its portal is suspended by
 * backpressure) must not keep the server's database connection: on PGlite that would wedge the
 * whole server.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { describeEachBackend } from './helpers/backends.js';
import { startTestServer, type TestServer } from './helpers/server.js';

describeEachBackend('stream cancelled under backpressure', (backend) => {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer(backend, { acquireTimeoutMs: 5000 });
  });
  after(async () => ts?.close());

  test('dropping an HTTP/1.1 Connect stream that stopped reading frees its connection', async () => {
    const body = JSON.stringify({ sql: "SELECT g, repeat('x', 1000) FROM generate_series(1, 1000000) g", rowFormat: 'ROW_FORMAT_COMPACT' });
    const frame = Buffer.alloc(5 + Buffer.byteLength(body));
    frame.writeUInt32BE(Buffer.byteLength(body), 1);
    frame.write(body, 5);
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      const req = http.request(
        `${ts.server.httpUrl}/heliosdb.v1.DatabaseService/StreamQuery`,
        // Node's global agent times sockets out after 5 s; a loaded machine may take longer to answer.
        { method: 'POST', headers: { 'content-type': 'application/connect+json' }, timeout: 60_000 },
        (res) => {
          res.once('data', (chunk: Buffer) => {
            received += chunk.length;
            res.pause(); // stop reading: the server fills its buffers and suspends the portal
            setTimeout(() => {
              req.destroy();
              resolve();
            }, 300);
          });
        },
      );
      req.on('error', () => {});
      req.once('timeout', () => reject(new Error('no response')));
      req.end(frame);
    });
    assert.ok(received > 0, 'the stream had started');
    const t0 = Date.now();
    const r = await ts.db.query({ sql: 'SELECT 1 AS one' });
    assert.equal(r.result?.rows?.rowCount, 1);
    assert.ok(Date.now() - t0 < 10_000, `the next query did not wait for the abandoned stream (${Date.now() - t0} ms)`);
    for (let i = 0; i < 50 && ts.server.poolStats().idle !== ts.server.poolStats().total; i++) await new Promise((r) => setTimeout(r, 50));
    const s = ts.server.poolStats();
    assert.equal(s.idle, s.total, 'every database connection is back in the pool');
  });
});
