/**
 * Queries: parameters, typed rows, one row, the sql template, statements without rows and a
 * typed error. Run against a server: `HELIOSDB_URL=grpc://127.0.0.1:7700 npx tsx examples/queries.ts`
 * (`npm run serve` starts one).
 */
import { createClient, UniqueViolationError } from '@heliosdb/client';

await using client = createClient({ applicationName: 'example-queries' }); // HELIOSDB_URL, or grpc://127.0.0.1:7700
await client.execute('CREATE TABLE IF NOT EXISTS example_users (id int8 PRIMARY KEY, name text NOT NULL)');
await client.execute('INSERT INTO example_users VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING', [1n, 'Ada', 2n, 'Grace']);

const { rows } = await client.query<{ id: bigint; name: string }>('SELECT id, name FROM example_users ORDER BY id');
console.log(rows);
const grace = await client.queryOne<{ name: string }>('SELECT name FROM example_users WHERE id = $1', [2n]);
const name = 'Ada';
const { rows: adas } = await client.sql`SELECT id FROM example_users WHERE name = ${name}`;
console.log(grace.name, adas);
try {
  await client.execute('INSERT INTO example_users VALUES ($1, $2)', [1n, 'again']);
} catch (e) {
  if (!(e instanceof UniqueViolationError)) throw e;
  console.log(`${e.code} (SQLSTATE ${e.sqlstate}) on ${e.constraint}`);
}
