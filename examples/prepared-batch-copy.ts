/**
 * Prepared statements, batches, executeMany and COPY: the ways to send many statements or rows.
 * `HELIOSDB_URL=grpc://127.0.0.1:7700 npx tsx examples/prepared-batch-copy.ts`
 */
import { createClient } from '@heliosdb/client';

await using client = createClient({ applicationName: 'example-bulk' });
await client.execute('DROP TABLE IF EXISTS example_points');
await client.execute('CREATE TABLE example_points (x int, y int)');

// A prepared statement: parsed once, valid on every connection.
await using insert = await client.prepare('INSERT INTO example_points (x, y) VALUES ($1, $2)');
console.log('parameter types', insert.paramTypes);
await insert.execute([1, 1]);

// One statement, many parameter sets, one round trip (chunked under the message limit).
await client.executeMany(
  'INSERT INTO example_points (x, y) VALUES ($1, $2)',
  Array.from({ length: 99 }, (_, i) => [i + 2, i + 2]),
);

// Several statements in one round trip, atomic: all or nothing.
await client.batch([
  { sql: 'INSERT INTO example_points VALUES (0, 0)' },
  { sql: 'UPDATE example_points SET y = y * 2 WHERE x = $1', params: [0] },
]);

// COPY FROM STDIN from any (async) iterable, streamed with backpressure.
async function* csv(): AsyncGenerator<string> {
  for (let i = 0; i < 1000; i++) yield `${-i},${i}\n`;
}
const copied = await client.copyFrom('COPY example_points (x, y) FROM STDIN (FORMAT csv)', csv());
const { rows } = await client.query('SELECT count(*)::int AS n FROM example_points');
console.log(`copied ${copied.rowCount}, ${rows[0].n} rows in all`);
