/**
 * The tables of the `point` and `insert` cells: a keyspace made through the server's CQL port (so
 * that CQL sees it; on PostgreSQL it is a schema of the same database the direct drivers use), one
 * small table read by primary key and one table the inserts go to. Every stack runs the same
 * statements on them: CQL's INSERT is an upsert, so the SQL stacks' insert is the same upsert.
 * @packageDocumentation
 */
import cassandra from 'cassandra-driver';

/** The keyspace (a PostgreSQL schema). */
export const keyspace = 'heliosdb_bench';
/** Rows of the point-query table: keys 1..kvRows. */
export const kvRows = 1000;
/** The data center the server's CQL port reports. */
export const cqlDataCenter = 'datacenter1';

/** The table the point query reads. */
export const pointTable = `${keyspace}.kv_point`;
/** The table the inserts go to (emptied before each measured phase). */
export const insertKvTable = `${keyspace}.kv_insert`;

/** The point query, SQL and CQL. */
export const pointSql = `SELECT value FROM ${pointTable} WHERE key = $1`;
export const pointCql = `SELECT value FROM ${pointTable} WHERE key = ?`;
/** The insert, CQL, and the upsert it means in SQL. */
export const insertCql = `INSERT INTO ${insertKvTable} (key, value) VALUES (?, ?)`;
export const insertKvSql = `INSERT INTO ${insertKvTable} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`;

/** The key the `i`-th point query reads. */
export function pointKey(i: number): number {
  return (i % kvRows) + 1;
}

/** The value stored under `key`. */
export function kvValue(key: number): string {
  return `value-${key}`;
}

/** Throws unless `got` is the value of `key`. */
export function expectValue(got: unknown, key: number): void {
  if (got !== kvValue(key)) throw new Error(`point query of key ${key} returned ${String(got)}`);
}

/** A cassandra-driver client of `address` (`host:port`), connected. */
export async function cqlConnect(address: string, options: Partial<cassandra.ClientOptions> = {}): Promise<cassandra.Client> {
  const client = new cassandra.Client({ contactPoints: [address], localDataCenter: cqlDataCenter, ...options });
  await client.connect();
  return client;
}

/** Makes the keyspace and its tables through the CQL port at `address`, and fills the point table. */
export async function setUpKv(address: string): Promise<void> {
  const c = await cqlConnect(address);
  try {
    await c.execute(`CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`);
    await c.execute(`CREATE TABLE IF NOT EXISTS ${pointTable} (key int PRIMARY KEY, value text)`);
    await c.execute(`CREATE TABLE IF NOT EXISTS ${insertKvTable} (key int PRIMARY KEY, value text)`);
    const insert = `INSERT INTO ${pointTable} (key, value) VALUES (?, ?)`;
    for (let k = 1; k <= kvRows; k += 100) {
      const keys = Array.from({ length: Math.min(100, kvRows - k + 1) }, (_, j) => k + j);
      await Promise.all(keys.map((key) => c.execute(insert, [key, kvValue(key)], { prepare: true })));
    }
  } finally {
    await c.shutdown();
  }
}

/** Drops the keyspace (and its tables) through the CQL port at `address`. */
export async function dropKv(address: string): Promise<void> {
  const c = await cqlConnect(address);
  try {
    await c.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  } finally {
    await c.shutdown();
  }
}
