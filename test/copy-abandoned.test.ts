/**
 * A copyTo its caller leaves early (break after the first chunk, or an aborted signal) is cancelled
 * and its output drained on the server: the database connection comes back, on both backends, and
 * the next caller is served. Before, PostgreSQL stayed blocked writing to a connection nobody read
 * (one pool slot lost per early exit, for good), and the embedded engine's one session was held.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createClient } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { useServer, waitFor } from './helpers/server.js';

// 400 rows of 100 KB: far more than the socket buffers hold, so PostgreSQL blocks writing.
const bigCopy = "COPY (SELECT g, repeat('x', 100000) FROM generate_series(1, 400) g) TO STDOUT";

describeEachBackend('a copyTo left early', (backend) => {
  const server = useServer(backend, { poolSize: 2, httpPort: -1 });

  test('break after the first chunk, more times than the pool has connections: every connection comes back', async () => {
    const ts = server();
    const client = createClient({ url: ts.server.grpcUrl, retry: false });
    try {
      for (let i = 0; i < 4; i++) {
        let chunks = 0;
        for await (const chunk of client.copyTo(bigCopy)) {
          assert.ok(chunk.byteLength > 0);
          chunks++;
          break;
        }
        assert.equal(chunks, 1);
      }
      const ac = new AbortController();
      let seen = 0;
      await assert.rejects(async () => {
        for await (const _ of client.copyTo(bigCopy, { signal: ac.signal })) {
          seen++;
          ac.abort();
        }
      });
      assert.equal(seen, 1);
      const one = await client.queryOne<{ one: number }>('SELECT 1 AS one', [], { timeoutMs: 30_000 });
      assert.equal(one.one, 1, 'the next caller is served');
      assert.ok(
        await waitFor(() => {
          const s = ts.server.poolStats();
          return s.idle === s.total;
        }, 30_000),
        `every database connection is back in the pool (${JSON.stringify(ts.server.poolStats())})`,
      );
      if (ts.admin) {
        const stuck = await ts.admin.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT g, repeat%' AND state = 'active' AND pid <> pg_backend_pid()",
        );
        assert.equal(stuck.rows[0].n, 0, 'no COPY left running in PostgreSQL');
      }
      // And a whole copyTo still works on the same server.
      let bytes = 0;
      for await (const chunk of client.copyTo('COPY (SELECT g FROM generate_series(1, 1000) g) TO STDOUT')) bytes += chunk.byteLength;
      assert.ok(bytes > 3000, `${bytes} bytes`);
    } finally {
      await client.close();
    }
  });
});
