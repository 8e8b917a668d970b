/**
 * A stream of large rows read slowly holds little in the server: it fetches from the database as
 * many rows as fit in a few batches at the largest row seen, and stops reading the database while
 * the client is behind. Before, each fetch was 2,000 rows whatever their size (one slow reader of
 * 1 MB rows held ~2 GB). Measured in this process, where the test server runs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createClient } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { useServer } from './helpers/server.js';

const mib = (n: number) => Math.round(n / 1048576);

describeEachBackend('a slow reader of large rows', (backend) => {
  const server = useServer(backend, { httpPort: -1 });

  test('server memory stays bounded while the client does not read, and every row arrives', async (t) => {
    const client = createClient({ url: server().server.grpcUrl });
    try {
      const rows = 600;
      const before = process.memoryUsage().rss;
      let peak = before;
      let n = 0;
      for await (const row of client.stream<{ g: number; x: string }>(
        `SELECT g, repeat('x', 1000000) AS x FROM generate_series(1, ${rows}) g`,
      )) {
        assert.equal(row.x.length, 1000000);
        n++;
        if (n === 1) {
          // The client stops reading for a while: whatever the server fetched sits in memory now.
          for (let i = 0; i < 20; i++) {
            await new Promise((r) => setTimeout(r, 100));
            peak = Math.max(peak, process.memoryUsage().rss);
          }
        }
        if (n % 50 === 0) peak = Math.max(peak, process.memoryUsage().rss);
      }
      assert.equal(n, rows);
      t.diagnostic(`RSS grew by ${mib(peak - before)} MiB`);
      // 600 rows of 1 MB are 600 MB (more as JavaScript strings); a bounded stream holds a few batches.
      assert.ok(peak - before < 300 * 1048576, `RSS grew by ${mib(peak - before)} MiB (from ${mib(before)} MiB)`);
    } finally {
      await client.close();
    }
  });
});
