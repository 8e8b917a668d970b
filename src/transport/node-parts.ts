/**
 * Wires the Node client: parses the URL, builds the grpc-js channel pool and the transport, and
 * adds the metrics interceptor. `http://` and `https://` URLs go to `./node-connect-parts.js`.
 * @packageDocumentation
 */
import { createContextValues } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import type { ClientParts, ConnectionPin } from '../client.js';
import type { ResolvedConnectionConfig } from '../config.js';
import { HeliosDBError } from '../errors.js';
import { metricsInterceptor, QueryMetrics } from '../metrics.js';
import { GrpcChannelPool } from './grpc-pool.js';
import { createGrpcJsTransport, pinnedChannel } from './grpc-transport.js';
import { createNodeConnectParts } from './node-connect-parts.js';

/** grpc-js `CompressionAlgorithms.gzip`. */
const GZIP = 2;

/** Builds the Node transport and pool for a resolved config. */
export function createNodeParts(config: ResolvedConnectionConfig): ClientParts {
  let url: URL;
  try {
    url = new URL(config.url);
  } catch {
    throw new HeliosDBError(`invalid url ${JSON.stringify(config.url)}: expected grpc://host:port, grpcs://host:port, http://host:port or https://host:port`, 'INVALID_CONFIG');
  }
  // The server's HTTP listener: the Connect protocol family, as in the browser.
  if (url.protocol === 'http:' || url.protocol === 'https:') return createNodeConnectParts(config);
  let credentials: grpc.ChannelCredentials;
  let defaultPort: number;
  if (url.protocol === 'grpc:') {
    credentials = grpc.credentials.createInsecure();
    defaultPort = 7700;
  } else if (url.protocol === 'grpcs:') {
    credentials = grpc.credentials.createSsl();
    defaultPort = 443;
  } else {
    throw new HeliosDBError(`unsupported url scheme ${url.protocol} in ${config.url}: the Node client speaks grpc://, grpcs://, http:// and https://`, 'INVALID_CONFIG');
  }
  const host = url.hostname.startsWith('[') ? url.hostname : url.hostname.includes(':') ? `[${url.hostname}]` : url.hostname;
  const target = `${host}:${url.port || defaultPort}`;
  const pool = new GrpcChannelPool({
    target,
    credentials,
    minConnections: config.minConnections,
    maxConnections: config.maxConnections,
    maxStreamsPerConnection: config.maxStreamsPerConnection,
    maxLifetimeSeconds: config.maxLifetimeSeconds,
    healthCheckIntervalSeconds: config.healthCheckIntervalSeconds,
    idleTimeoutSeconds: config.idleTimeoutSeconds,
    acquisitionTimeoutMs: config.acquisitionTimeoutMs,
    connectTimeoutMs: config.connectTimeoutMs,
    maxMessageBytes: config.maxMessageBytes,
    channelOptions:
      config.compression === 'gzip' ? { 'grpc.default_compression_algorithm': GZIP, 'grpc.default_compression_level': 2 } : undefined,
  });
  const metrics = new QueryMetrics();
  const transport = createGrpcJsTransport({
    pool,
    baseUrl: `${url.protocol === 'grpcs:' ? 'https' : 'http'}://${target}`,
    interceptors: [...config.interceptors, metricsInterceptor(metrics)],
  });
  const pin = (): ConnectionPin => {
    const ch = pool.pin();
    let released = false;
    return {
      contextValues: createContextValues().set(pinnedChannel, ch),
      release() {
        if (released) return;
        released = true;
        pool.unpin(ch);
      },
    };
  };
  return { transport, pool, metrics, pin, close: () => pool.close() };
}
