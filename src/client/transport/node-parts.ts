/**
 * Wires the Node client: parses the URL, builds the grpc-js channel pool and the transport, and
 * adds the metrics interceptor. `http://` and `https://` URLs go to `./node-connect-parts.js`,
 * `postgres://` and `postgresql://` URLs to `./pg-parts.js`, `cql://` URLs to `./cql-parts.js`.
 * @packageDocumentation
 */
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { createContextValues } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import { createClientAuth } from '../interceptors/auth-interceptor.js';
import type { ClientParts, ConnectionPin } from './client-parts.js';
import { optionNames, type ResolvedConnectionConfig } from '../config.js';
import { checkOptionNames } from '../config-keys.js';
import { HeliosDBError } from '../errors.js';
import { metricsInterceptor, QueryMetrics } from '../metrics.js';
import type { PoolStats } from '../pool-stats.js';
import { createRetryInterceptor } from '../interceptors/retry-interceptor.js';
import { resolveRetryOptions } from '../interceptors/retry-options.js';
import { GrpcChannelPool } from './grpc-pool.js';
import type { EndpointSpec } from './pooled-channel.js';
import { createGrpcJsTransport, pinnedChannel } from './grpc-transport.js';
import { GrpcSessions } from './grpc-sessions.js';
import { createNodeConnectParts } from './node-connect-parts.js';
import { ClientEvents } from '../telemetry/client-events.js';
import { tracingInterceptors } from '../telemetry/client-telemetry.js';
import { createCqlParts } from './cql-parts.js';
import { createPgParts } from './pg-parts.js';
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
  // Node's TLS option names (`tls`, `ca`, ...) passed resolveConfig for the entry point to refuse.
  checkOptionNames(config, optionNames);
  let url: URL;
  try {
    url = new URL(config.url);
  } catch {
    throw new HeliosDBError(
      `invalid url ${JSON.stringify(config.url)}: expected grpc://host:port, grpcs://host:port, http://host:port, https://host:port, postgres://user@host:port/database or cql://user@host:port/keyspace`,
      'INVALID_CONFIG',
    );
  }
  // The server's HTTP listener: the Connect protocol family, as in the browser.
  if (url.protocol === 'http:' || url.protocol === 'https:') return createNodeConnectParts(config);
  // The PostgreSQL wire protocol (node-postgres), to any PostgreSQL or heliosdb's PostgreSQL port.
  if (url.protocol === 'postgres:' || url.protocol === 'postgresql:') return createPgParts(config);
  // CQL, the Cassandra native protocol (cassandra-driver), to heliosdb's CQL port.
  if (url.protocol === 'cql:') return createCqlParts(config);
  let credentials: grpc.ChannelCredentials;
  let tlsChannelOptions: grpc.ChannelOptions = {};
  let defaultPort: number;
  if (url.protocol !== 'grpc:' && url.protocol !== 'grpcs:') {
    throw new HeliosDBError(
      `unsupported url scheme ${url.protocol} in ${config.url}: the Node client speaks grpc://, grpcs://, http://, https://, postgres://, postgresql:// and cql://`,
      'INVALID_CONFIG',
    );
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
  const hostOf = (u: URL) => (u.hostname.startsWith('[') ? u.hostname : u.hostname.includes(':') ? `[${u.hostname}]` : u.hostname);
  const target = `${hostOf(url)}:${url.port || defaultPort}`;
  // Several servers: every URL an endpoint of the pool, with the first URL's scheme and TLS.
  const endpoints: EndpointSpec[] = (config.urls ?? [config.url]).map((raw) => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new HeliosDBError(`invalid url ${JSON.stringify(raw)} in urls`, 'INVALID_CONFIG');
    }
    if (u.protocol !== url.protocol)
      throw new HeliosDBError(`every url must use the same scheme (${url.protocol}//): ${raw}`, 'INVALID_CONFIG');
    const t = `${hostOf(u)}:${u.port || defaultPort}`;
    return { url: `${u.protocol}//${t}`, target: t };
  });
  const keepalive: grpc.ChannelOptions =
    config.keepaliveIntervalMs > 0
      ? {
          'grpc.keepalive_time_ms': config.keepaliveIntervalMs,
          'grpc.keepalive_timeout_ms': config.keepaliveTimeoutMs,
          'grpc.keepalive_permit_without_calls': 1,
        }
      : {};
  const events = new ClientEvents();
  const pool = new GrpcChannelPool({
    events,
    endpoints,
    circuitBreaker: config.circuitBreaker,
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
      ...keepalive,
      ...tlsChannelOptions,
      ...(config.compression === 'gzip' ? { 'grpc.default_compression_algorithm': GZIP, 'grpc.default_compression_level': 2 } : {}),
    },
  });
  const metrics = new QueryMetrics();
  const retry = createRetryInterceptor(resolveRetryOptions(config.retry), { headerTimeouts: false, events });
  const transport = createGrpcJsTransport({
    pool,
    baseUrl: `${tls.enabled ? 'https' : 'http'}://${target}`,
    sessions: config.sessions ? new GrpcSessions() : undefined,
    // Retries outermost of ours: each attempt runs the credentials and metrics again.
    interceptors: [
      ...config.interceptors,
      ...tracingInterceptors(config),
      retry.interceptor,
      ...(auth ? [auth.interceptor] : []),
      metricsInterceptor(metrics),
    ],
  });
  // A single host name with several addresses: each address an endpoint (checked again every 30 s).
  const dnsName = config.urls === undefined && net.isIP(url.hostname.replace(/^\[|\]$/g, '')) === 0 ? url.hostname : undefined;
  let dnsTimer: NodeJS.Timeout | undefined;
  if (dnsName) {
    const port = Number(url.port || defaultPort);
    const resolve = async () => {
      try {
        const addrs = await lookup(dnsName, { all: true });
        const unique = [...new Map(addrs.map((a) => [a.address, a])).values()];
        if (unique.length < 2) return;
        pool.setEndpoints(
          unique.map((a) => {
            const t = a.family === 6 ? `[${a.address}]:${port}` : `${a.address}:${port}`;
            return {
              url: `${url.protocol}//${t}`,
              target: t,
              // The server is still addressed by its name (HTTP/2 :authority, TLS certificate check).
              channelOptions: {
                'grpc.default_authority': tlsChannelOptions['grpc.default_authority'] ?? `${dnsName}:${port}`,
                ...(tls.enabled ? { 'grpc.ssl_target_name_override': tlsChannelOptions['grpc.ssl_target_name_override'] ?? dnsName } : {}),
              },
            };
          }),
        );
      } catch {
        // Keep what the pool has; grpc-js resolves the name itself.
      }
    };
    void resolve();
    dnsTimer = setInterval(() => void resolve(), 30_000);
    dnsTimer.unref();
  }
  const poolHandle = {
    getStats(): PoolStats {
      const r = retry.stats();
      const s = pool.getStats();
      return {
        ...s,
        endpoints: s.endpoints.map((e) => ({ ...e, retryTokens: r.budgets[e.url] })),
        retries: r.retries,
        retriesThrottled: r.retriesThrottled,
        ambiguousResults: r.ambiguousResults,
        totalCount: s.totalConnections,
        idleCount: s.idleConnections,
        waitingCount: s.waiting,
      };
    },
  };
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
    pool: poolHandle,
    metrics,
    events,
    pin,
    close: async () => {
      if (dnsTimer) clearInterval(dnsTimer);
      await auth?.close();
      await pool.close();
    },
  };
}
