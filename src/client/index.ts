/**
 * `@heliosdb/client` for Node: the HeliosDB client over native gRPC (`@grpc/grpc-js`) with a
 * pool of HTTP/2 connections.
 *
 * @example
 * ```ts
 * import { createClient } from '@heliosdb/client';
 * const client = createClient({ url: 'grpc://127.0.0.1:7700', applicationName: 'my-app' });
 * const { rows } = await client.query('SELECT $1::int AS n', [42]);
 * await client.close();
 * ```
 * @packageDocumentation
 * @module @heliosdb/client
 */
import { BaseClient } from './client.js';
import { type ConnectionConfig, resolveConfig } from './config.js';
import { createNodeParts } from './transport/node-parts.js';

/** The HeliosDB client for Node. `new HeliosDBClient()` reads `HELIOSDB_URL` and friends. */
export class HeliosDBClient extends BaseClient {
  /** @param config options, or a URL string; see {@link ConnectionConfig} for every default. */
  constructor(config: ConnectionConfig | string = {}) {
    const resolved = resolveConfig(config);
    super(resolved, createNodeParts(resolved));
  }
}

/** Creates a client (same as `new HeliosDBClient(config)`). */
export function createClient(config: ConnectionConfig | string = {}): HeliosDBClient {
  return new HeliosDBClient(config);
}

export * from './public-api.js';
