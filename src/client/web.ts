/**
 * `@heliosdb/client` for browsers, web workers, Deno and edge runtimes: the same client as the
 * Node entry, over the Connect protocol (or gRPC-Web) through `fetch`
 * (`@connectrpc/connect-web`), talking to the server's HTTP listener (port 7701; allow the page's
 * origin with the server's `corsOrigins`). Imports nothing from Node. The pool is a concurrency
 * limiter: the browser owns the connections.
 *
 * @example
 * ```ts
 * import { createClient } from '@heliosdb/client'; // the `browser` export condition picks this file
 * const client = createClient({ url: 'http://127.0.0.1:7701' });
 * const { rows } = await client.sql`SELECT ${42}::int AS n`;
 * ```
 * @packageDocumentation
 */
import { BaseClient } from './client.js';
import { type ConnectionConfig, configFromEnv, resolveConfig } from './config.js';
import { createWebParts, webDefaultUrl } from './transport/web-parts.js';

/** Applies the defaults, with the browser's default URL (the HTTP listener on this machine). */
function resolveWebConfig(config: ConnectionConfig | string) {
  const given: ConnectionConfig = typeof config === 'string' ? { url: config } : config;
  const resolved = resolveConfig(given);
  if (given.url === undefined && !configFromEnv().url) resolved.url = webDefaultUrl;
  return resolved;
}

/**
 * The HeliosDB client for browsers and other fetch-based runtimes. `grpc://` URLs and Node-only
 * options (custom TLS) fail with a HeliosDBError (`UNSUPPORTED_IN_BROWSER`) that says so.
 */
export class HeliosDBClient extends BaseClient {
  /** @param config options, or a URL string; see {@link ConnectionConfig} for every default. */
  constructor(config: ConnectionConfig | string = {}) {
    const resolved = resolveWebConfig(config);
    super(resolved, createWebParts(resolved));
  }
}

/** Creates a client (same as `new HeliosDBClient(config)`). */
export function createClient(config: ConnectionConfig | string = {}): HeliosDBClient {
  return new HeliosDBClient(config);
}

// The same public API as ./index.ts.
export * from './public-api.js';
