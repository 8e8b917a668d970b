/**
 * Streams left early, again and again, while rows are still on their way (a client that breaks
 * out after a batch or two, aborts, or reads slowly first): the server drops what arrives after
 * the client left and gives the connection back, so on the embedded engine (one session for
 * everyone) and on PostgreSQL the next call is answered at once. An attack pass froze the
 * embedded engine this way (the connection's input paused again after its portal was closed).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClient, type HeliosDBClient } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { startTestServer, type TestServer } from './helpers/server.js';

describeEachBackend('streams left while rows are on their way', (backend) => {
  let ts: TestServer;
  let client: HeliosDBClient;
  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
    client = createClient({ url: ts.server.grpcUrl });
  });
  after(async () => {
    await client?.close();
    await ts?.close();
  });

  test('after many abandoned streams, the next call is answered', async () => {
    const deadline = Date.now() + 4000;
    let left = 0;
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const abandoner = async () => {
      while (Date.now() < deadline) {
        const ac = new AbortController();
        const how = rand();
        const stopAt = Math.floor(rand() * 3);
        try {
          const s = client.stream(`SELECT g, repeat(md5(g::text), 64) FROM generate_series(1, 2000000) g`, [], { signal: ac.signal });
          let k = 0;
          for await (const _ of s.batches()) {
            if (k++ >= stopAt) {
              if (how < 0.5) ac.abort();
              break;
            }
            if (how > 0.8) await new Promise((r) => setTimeout(r, 200));
          }
        } catch {
          // An abort may surface as an error: what matters is what the server does next.
        }
        left++;
      }
    };
    await Promise.all(Array.from({ length: 6 }, abandoner));
    assert.ok(left > 4, `${left} streams left`);
    const probe = await Promise.race([
      client.query<{ one: number }>('SELECT 1 AS one', [], { timeoutMs: 10_000 }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 10 s: the server is stuck')), 10_000)),
    ]);
    assert.deepEqual(probe.rows, [{ one: 1 }]);
  });
});
