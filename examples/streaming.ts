/**
 * Streaming: a large result into a file, and into an HTTP response, with backpressure (memory
 * stays flat however many rows). `HELIOSDB_URL=grpc://127.0.0.1:7700 npx tsx examples/streaming.ts [rows]`
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createClient } from '@heliosdb/client';

const count = Number(process.argv[2] ?? 100_000);
await using client = createClient({ applicationName: 'example-streaming' });
const query = 'SELECT i, md5(i::text) AS hash FROM generate_series(1, $1::int) i';

/** The stream's rows as CSV lines. */
async function* csv(rows: AsyncIterable<{ i: number; hash: string }>): AsyncGenerator<string> {
  yield 'i,hash\n';
  for await (const row of rows) yield `${row.i},${row.hash}\n`;
}

// 1. Into a file: pipeline() waits for the disk when it is slower than the database.
const file = join(tmpdir(), `heliosdb-example-${process.pid}.csv`);
const toFile = client.stream<{ i: number; hash: string }>(query, [count]);
await pipeline(Readable.from(csv(toFile)), createWriteStream(file));
console.log(`file: ${toFile.stats?.rowCount} rows into ${file}`);

// 2. Into an HTTP response: a client that goes away cancels the query on the server.
const http = createServer((_req, res) => {
  res.setHeader('content-type', 'text/csv');
  const rows = client.stream<{ i: number; hash: string }>(query, [count]);
  pipeline(Readable.from(csv(rows)), res).catch((e) => console.error('response ended early:', (e as Error).message));
});
http.listen(0, '127.0.0.1');
await once(http, 'listening');
const { port } = http.address() as { port: number };
const body = await (await fetch(`http://127.0.0.1:${port}/export.csv`)).text();
console.log(`http: ${body.trimEnd().split('\n').length - 1} rows`);
http.close();
