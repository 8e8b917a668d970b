/**
 * The `cql` stack: cassandra-driver on the HeliosDB server's CQL port, running ./kv.ts's point
 * query and insert as prepared statements (the driver's defaults otherwise: one connection to the
 * one node, requests multiplexed on it by stream id).
 * @packageDocumentation
 */
import type cassandra from 'cassandra-driver';
import type { BenchDriver } from './types.js';
import { cqlConnect, expectValue, insertCql, kvValue, pointCql, pointKey } from './kv.js';

/** Opens the stack; the connection is made on the first call. */
export function cqlDriver(address: string): BenchDriver {
  let connecting: Promise<cassandra.Client> | undefined;
  const client = () => (connecting ??= cqlConnect(address));
  const prepared = { prepare: true };
  return {
    notes: {
      all: 'cassandra-driver, its defaults (one connection to the node), localDataCenter datacenter1',
      point: 'client.execute of a prepared SELECT ... WHERE key = ?',
      insert: 'client.execute of a prepared INSERT (an upsert in HeliosDB, as in Cassandra)',
    },
    async point(i) {
      const key = pointKey(i);
      const r = await (await client()).execute(pointCql, [key], prepared);
      expectValue(r.rows[0]?.get('value'), key);
    },
    async insertOne(key) {
      await (await client()).execute(insertCql, [key, kvValue(key)], prepared);
    },
    async close() {
      if (connecting) await (await connecting).shutdown();
    },
  };
}
