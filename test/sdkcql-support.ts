/**
 * What the `cql://` SDK tests share: a client of a fresh server's CQL listener.
 * @packageDocumentation
 */
import * as lib from '@heliosdb/client';
import type { FreshServer } from './helpers/fresh.js';

/** A cql:// client of `f` (`auth`: `user:password@` for the URL), closed when the test ends. */
export function sdkCqlClient(f: FreshServer, config: lib.ConnectionConfig = {}, auth = ''): lib.HeliosDBClient {
  const client = lib.createClient({ url: `cql://${auth}127.0.0.1:${f.server.cqlPort}`, ...config });
  f.onCleanup(() => client.close());
  return client;
}
