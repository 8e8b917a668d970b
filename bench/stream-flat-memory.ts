/**
 * Flat memory while streaming: reads 10 million rows (or `--rows N`) through `client.stream()`
 * from a server in this process, printing the process's RSS at every million rows and its peak
 * (client and server together, so an upper bound for each).
 * Run: npx tsx bench/stream-flat-memory.ts [--rows N]   (PostgreSQL from HELIOSDB_TEST_POSTGRES_URL, else PGlite)
 */
import { createClient } from '@heliosdb/client';
import { startServer } from '../src/server/server.js';

const arg = process.argv.indexOf('--rows');
const total = arg > 0 ? Number(process.argv[arg + 1]) : 10_000_000;
const databaseUrl = process.env.HELIOSDB_TEST_POSTGRES_URL || undefined;
const server = await startServer({ port: 0, httpPort: -1, logLevel: 'silent', databaseUrl });
const client = createClient({ url: server.grpcUrl, minConnections: 1 });
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
const t0 = performance.now();
let rows = 0;
let textBytes = 0;
let nextMark = 1_000_000;
const sql = `SELECT g, repeat('x', 100) AS pad FROM generate_series(1, ${total}) g`;
for await (const batch of client.stream<{ g: number; pad: string }>(sql).batches()) {
  for (const r of batch) textBytes += r.pad.length;
  rows += batch.length;
  while (rows >= nextMark) {
    console.log(`${(nextMark / 1e6).toFixed(0)}M rows: RSS ${mib(process.memoryUsage().rss)} MiB`);
    nextMark += 1_000_000;
  }
}
const secs = (performance.now() - t0) / 1000;
console.log(
  `${rows} rows on ${server.engine} in ${secs.toFixed(1)} s (${Math.round(rows / secs)} rows/s, ${(textBytes / secs / 1e6).toFixed(0)} MB/s of text); ` +
    `peak RSS ${mib(process.resourceUsage().maxRSS * 1024)} MiB (client and server together)`,
);
await client.close();
await server.close();
