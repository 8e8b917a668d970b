/**
 * What the CQL tests share: a fresh server with the CQL listener on a free port, and a
 * cassandra-driver client for it that is shut down when the test ends.
 * @packageDocumentation
 */
import type { TestContext } from 'node:test';
import cassandra from 'cassandra-driver';
import type { TestBackend } from './helpers/backends.js';
import { type FreshOptions, type FreshServer, freshServer } from './helpers/fresh.js';

/** The data center system.local reports. */
export const dataCenter = 'datacenter1';

/** A fresh server (see ./helpers/fresh.ts) with `cqlPort: 0`. */
export function cqlServer(t: TestContext, backend: TestBackend, options: FreshOptions = {}): Promise<FreshServer> {
  return freshServer(t, backend, { ...options, server: { cqlPort: 0, ...options.server } });
}

/** A connected cassandra-driver client of `f`'s CQL listener, shut down when the test ends. */
export async function cqlClient(
  _t: TestContext,
  f: FreshServer,
  options: Partial<cassandra.ClientOptions> = {},
): Promise<cassandra.Client> {
  const client = new cassandra.Client({
    contactPoints: [`127.0.0.1:${f.server.cqlPort}`],
    localDataCenter: dataCenter,
    ...options,
  });
  f.onCleanup(() => client.shutdown());
  await client.connect();
  return client;
}

/** A keyspace name unique to this run. */
export function keyspaceName(prefix: string): string {
  return `cql_${prefix}_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
}

/** `CREATE KEYSPACE name` with SimpleStrategy. */
export function createKeyspaceCql(name: string): string {
  return `CREATE KEYSPACE ${name} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`;
}
