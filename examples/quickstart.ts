/**
 * `npm start`: starts the HeliosDB server on the embedded PGlite engine (gRPC on 7700, Connect /
 * JSON on 7701, PostgreSQL on 7702, CQL on 9042; HELIOSDB_* variables apply), shows the SDK working against it, and keeps serving
 * until Ctrl-C.
 */
import { createClient, UniqueViolationError } from '@heliosdb/client';
import { optionsFromEnv } from '../src/server/options.js';
import { startServer } from '../src/server/server.js';

const server = await startServer({ logLevel: 'warn', ...optionsFromEnv() });
console.log(`HeliosDB server (${server.engine}) listening: ${server.grpcUrl} (gRPC), ${server.httpUrl} (Connect, gRPC-Web, JSON)`);
if (server.pgPort !== undefined)
  console.log(`PostgreSQL protocol: ${server.pgUrl}  (psql -h 127.0.0.1 -p ${server.pgPort} -U postgres postgres)`);
if (server.cqlPort !== undefined) console.log(`Cassandra CQL protocol: 127.0.0.1:${server.cqlPort}  (docs/cql.md)`);

const client = createClient({ url: server.grpcUrl, applicationName: 'quickstart', minConnections: 2 });
await client.execute('CREATE TABLE IF NOT EXISTS users (id int8 PRIMARY KEY, name text NOT NULL, joined timestamptz DEFAULT now())');
await client.execute('INSERT INTO users (id, name) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING', [1n, 'Ada', 2n, 'Grace']);
const id = 2n;
const { rows, executionTimeMs } = await client.sql`SELECT id, name, joined FROM users WHERE id <= ${id} ORDER BY id`;
console.log(`query ran in ${executionTimeMs.toFixed(2)} ms on the server:`);
console.table(rows);
try {
  await client.execute('INSERT INTO users (id, name) VALUES ($1, $2)', [1n, 'Duplicate']);
} catch (e) {
  if (e instanceof UniqueViolationError) console.log(`typed error: ${e.name} on constraint ${e.constraint} (SQLSTATE ${e.sqlstate})`);
}
console.log('pool:', client.pool.getStats());
await client.close();

console.log(
  `\nTry it:  curl -s -X POST -H 'content-type: application/json' -d '{"sql":"SELECT * FROM users"}' ${server.httpUrl}/heliosdb.v1.DatabaseService/Query`,
);
console.log('Serving until Ctrl-C.');
const stop = () => void server.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
