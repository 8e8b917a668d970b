/**
 * Wires the browser client (and every runtime with `fetch` but without Node: workers, Deno, edge
 * runtimes): Connect or gRPC-Web over `fetch` through `@connectrpc/connect-web`, with a concurrency
 * limiter as the pool. Imports nothing from Node. Browser-safe.
 * @packageDocumentation
 */
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-web';
import type { ClientParts } from './client-parts.js';
import type { ResolvedConnectionConfig } from '../config.js';
import { HeliosDBError } from '../errors.js';
import { createConnectParts } from './connect-parts.js';

/** The URL of the server's HTTP listener on this machine: the browser client's default. */
export const webDefaultUrl = 'http://127.0.0.1:7701';

/**
 * Options only Node can honour: a browser uses its own certificate store and TLS settings, and
 * opens its own connections.
 */
const nodeOnlyOptions = ['tls', 'ca', 'cert', 'key', 'servername', 'rejectUnauthorized', 'credentials', 'channelOptions'] as const;

function unsupported(message: string): HeliosDBError {
  return new HeliosDBError(message, 'UNSUPPORTED_IN_BROWSER');
}

/** Builds the browser transport and pool for a resolved config. */
export function createWebParts(config: ResolvedConnectionConfig): ClientParts {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(config.url)?.[1]?.toLowerCase();
  if (scheme === 'grpc' || scheme === 'grpcs') {
    throw unsupported(
      `${config.url}: a browser cannot use native gRPC (${scheme}://): fetch gives no access to HTTP/2 trailers. ` +
        `Connect to the server's HTTP listener instead, http://host:7701 or https://host (Connect; or protocol: 'grpc-web').`,
    );
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    throw unsupported(
      `${config.url}: a browser cannot speak the PostgreSQL wire protocol (${scheme}://): it opens no TCP connections. ` +
        `Connect to a HeliosDB server's HTTP listener instead, http://host:7701 or https://host; postgres:// URLs work in Node.`,
    );
  }
  if (scheme === 'cql') {
    throw unsupported(
      `${config.url}: a browser cannot speak CQL, the Cassandra native protocol (cql://): it opens no TCP connections. ` +
        `Connect to a HeliosDB server's HTTP listener instead, http://host:7701 or https://host; cql:// URLs work in Node.`,
    );
  }
  const given = config as unknown as Record<string, unknown>;
  for (const key of nodeOnlyOptions) {
    if (given[key] !== undefined) {
      throw unsupported(
        `the option ${key} is not supported in a browser: custom TLS settings and connection options need Node ` +
          `(the browser applies its own certificate store and TLS settings). Remove it, or use the Node client.`,
      );
    }
  }
  // TLS in a browser is the browser's: full verification against its own certificate store.
  const ssl = given.ssl;
  if (ssl && typeof ssl === 'object') {
    const custom = ['ca', 'cert', 'key', 'servername'].filter((k) => (ssl as Record<string, unknown>)[k] !== undefined);
    if (custom.length) {
      throw unsupported(
        `the TLS option${custom.length > 1 ? 's' : ''} ssl.${custom.join(', ssl.')} ${custom.length > 1 ? 'are' : 'is'} not supported in a browser: ` +
          `custom CAs, client certificates and server names need Node (the browser uses its own certificate store). Remove ${custom.length > 1 ? 'them' : 'it'}, or use the Node client.`,
      );
    }
  }
  const mode = (ssl && typeof ssl === 'object' ? (ssl as Record<string, unknown>).mode : undefined) ?? given.sslMode;
  if (mode !== undefined && mode !== 'verify-full' && mode !== 'disable') {
    throw unsupported(
      `sslMode ${String(mode)} is not supported in a browser: browsers always verify the server's certificate and host name (verify-full).`,
    );
  }
  const parts = createConnectParts(config, {
    connect: ({ baseUrl, interceptors, binary }) => createConnectTransport({ baseUrl, interceptors, useBinaryFormat: binary }),
    grpcWeb: ({ baseUrl, interceptors }) => createGrpcWebTransport({ baseUrl, interceptors, useBinaryFormat: true }),
  });
  // fetch can send a request body as a stream in few browsers, and never over HTTP/1.1.
  return { ...parts, noRequestStreams: 'browsers cannot send a streaming request body (fetch)' };
}
