/**
 * Wires the Node client: parses the URL, builds the grpc-js channel pool and the transport, and
 * adds the metrics interceptor. `http://` and `https://` URLs go to `./node-connect-parts.js`.
 * @packageDocumentation
 */
import { createContextValues } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import { createClientAuth } from '../auth-interceptor.js';
import type { ClientParts, ConnectionPin } from '../client.js';
import type { ResolvedConnectionConfig } from '../config.js';
import { HeliosDBError } from '../errors.js';
import { metricsInterceptor, QueryMetrics } from '../metrics.js';
import { GrpcChannelPool } from './grpc-pool.js';
import { createGrpcJsTransport, pinnedChannel } from './grpc-transport.js';
import { createNodeConnectParts } from './node-connect-parts.js';
import { isLoopbackHostname, type Pem, type ResolvedTls, resolveTls } from '../tls-options.js';

/** grpc-js `CompressionAlgorithms.gzip`. */
const GZIP = 2;

function pemBuffer(p: Pem | Pem[] | undefined): Buffer | null {
  if (p === undefined) return null;
  const list = Array.isArray(p) ? p : [p];
  return Buffer.concat(list.map((x) => (typeof x === 'string' ? Buffer.from(x) : Buffer.from(x.buffer, x.byteOffset, x.byteLength))));
}

/** grpc-js TLS credentials for a TLS setting, and the channel options naming the server. */
export function grpcTlsCredentials(tls: ResolvedTls): { credentials: grpc.ChannelCredentials; channelOptions: grpc.ChannelOptions } {
  const verify: grpc.VerifyOptions =
    tls.mode === 'require' ? { rejectUnauthorized: false } : tls.mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {};
  const credentials = grpc.credentials.createSsl(pemBuffer(tls.ca), pemBuffer(tls.key), pemBuffer(tls.cert), verify);
  const channelOptions: grpc.ChannelOptions = tls.servername
    ? { 'grpc.ssl_target_name_override': tls.servername, 'grpc.default_authority': tls.servername }
    : {};
  return { credentials, channelOptions };
}

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
  let tlsChannelOptions: grpc.ChannelOptions = {};
  let defaultPort: number;
  if (url.protocol !== 'grpc:' && url.protocol !== 'grpcs:') {
    throw new HeliosDBError(`unsupported url scheme ${url.protocol} in ${config.url}: the Node client speaks grpc://, grpcs://, http:// and https://`, 'INVALID_CONFIG');
  }
  const tls = resolveTls(config.url, config.ssl, config.sslMode);
  if (tls.enabled) {
    ({ credentials, channelOptions: tlsChannelOptions } = grpcTlsCredentials(tls));
    defaultPort = url.protocol === 'grpcs:' ? 443 : 7700;
  } else {
    credentials = grpc.credentials.createInsecure();
    defaultPort = 7700;
  }
  const auth = createClientAuth(config, tls.enabled, isLoopbackHostname(url.hostname));
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
    channelOptions: {
      ...tlsChannelOptions,
      ...(config.compression === 'gzip' ? { 'grpc.default_compression_algorithm': GZIP, 'grpc.default_compression_level': 2 } : {}),
    },
  });
  const metrics = new QueryMetrics();
  const transport = createGrpcJsTransport({
    pool,
    baseUrl: `${tls.enabled ? 'https' : 'http'}://${target}`,
    interceptors: [...config.interceptors, ...(auth ? [auth.interceptor] : []), metricsInterceptor(metrics)],
  });
  auth?.bind(transport);
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
  return {
    transport,
    pool,
    metrics,
    pin,
    close: async () => {
      await auth?.close();
      await pool.close();
    },
  };
}
