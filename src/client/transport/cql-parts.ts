/**
 * Wires the Node client for `cql://` URLs: CQL (the Cassandra native protocol) through
 * cassandra-driver, an optional peer dependency loaded on first use, to heliosdb's CQL port (or
 * any CQL server). `cql://user:password@host:9042/keyspace?dc=datacenter1`: the keyspace is
 * optional, `dc` (or `localDataCenter`) is the driver's local data center, `datacenter1` by
 * default (heliosdb's). An API key is the password. The parts are those of every transport: a
 * Connect transport answering HeliosDB's RPCs (`cql-transport.ts`), the pool's statistics, the
 * metrics, and the interceptors (yours, retry, circuit breaker, metrics).
 *
 * The driver's own retries are off (a fall-through retry policy): the SDK's retry rules decide,
 * without idempotency keys (CQL keeps no record of a write's outcome), so a write whose answer was
 * lost is never sent again. Node only.
 * @packageDocumentation
 */
import type cassandra from 'cassandra-driver';
import type { ResolvedConnectionConfig } from '../config.js';
import { HeliosDBError } from '../errors.js';
import { createBreakerInterceptor } from '../interceptors/breaker-interceptor.js';
import { createRetryInterceptor } from '../interceptors/retry-interceptor.js';
import { resolveRetryOptions } from '../interceptors/retry-options.js';
import { metricsInterceptor, QueryMetrics } from '../metrics.js';
import type { PoolCounters, PoolStats } from '../pool-stats.js';
import { type Pem, resolveTls } from '../tls-options.js';
import type { ClientParts } from './client-parts.js';
import { fromCqlError } from './cql-errors.js';
import { cqlModules } from './cql-modules.js';
import { CqlStatements } from './cql-statements.js';
import { createCqlTransport } from './cql-transport.js';
import { singleEndpointStats } from './single-endpoint-stats.js';

/** heliosdb's data center (what its `system.local` reports). */
export const defaultCqlDataCenter = 'datacenter1';

function pemText(p: Pem | Pem[] | undefined): string | string[] | undefined {
  if (p === undefined) return undefined;
  const one = (x: Pem) => (typeof x === 'string' ? x : Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString());
  return Array.isArray(p) ? p.map(one) : one(p);
}

/** The driver's options for a resolved config whose URL is cql://. */
function driverOptions(config: ResolvedConnectionConfig, url: URL, driver: typeof cassandra): cassandra.ClientOptions {
  const user = config.user ?? (url.username ? decodeURIComponent(url.username) : undefined);
  const password = config.password ?? (url.password ? decodeURIComponent(url.password) : undefined) ?? config.apiKey;
  const keyspace = decodeURIComponent(url.pathname.replace(/^\//, '')) || undefined;
  const tls = config.ssl === undefined && config.sslMode === undefined ? undefined : resolveTls(config.url, config.ssl, config.sslMode);
  return {
    contactPoints: [`${url.hostname}:${url.port || 9042}`],
    localDataCenter: url.searchParams.get('dc') ?? url.searchParams.get('localDataCenter') ?? defaultCqlDataCenter,
    keyspace,
    ...(password !== undefined ? { authProvider: new driver.auth.PlainTextAuthProvider(user ?? '', password) } : {}),
    applicationName: config.applicationName || undefined,
    policies: { retry: new driver.policies.retry.FallthroughRetryPolicy() },
    pooling: { coreConnectionsPerHost: { [driver.types.distance.local]: Math.max(1, config.minConnections || 1) } },
    socketOptions: {
      connectTimeout: config.connectTimeoutMs,
      // Bounds the connection's handshake and the driver's own queries; the SDK's calls pass
      // readTimeout 0 (the SDK's deadlines govern them).
      readTimeout: config.connectTimeoutMs,
      keepAlive: config.keepaliveIntervalMs > 0,
      keepAliveDelay: config.keepaliveIntervalMs,
    },
    ...(tls?.enabled
      ? {
          sslOptions: {
            ca: pemText(tls.ca),
            cert: pemText(tls.cert) as string | undefined,
            key: pemText(tls.key) as string | undefined,
            servername: tls.servername,
            rejectUnauthorized: tls.mode !== 'require',
            ...(tls.mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
          },
        }
      : {}),
  } as cassandra.ClientOptions;
}

/** Builds the parts for a resolved config whose URL is cql://. */
export function createCqlParts(config: ResolvedConnectionConfig): ClientParts {
  let url: URL;
  try {
    url = new URL(config.url);
  } catch {
    throw new HeliosDBError(`invalid url ${JSON.stringify(config.url)}: expected cql://user:password@host:port/keyspace`, 'INVALID_CONFIG');
  }
  if (config.urls && config.urls.length > 1)
    throw new HeliosDBError('several urls need native gRPC (grpc:// or grpcs://): a cql:// client talks to one server', 'INVALID_CONFIG');
  if (config.oauth !== undefined)
    throw new HeliosDBError('oauth is not supported over cql://: give user and password (or apiKey)', 'INVALID_CONFIG');
  const endpoint = `cql://${url.host}`;
  const modules = cqlModules();
  let connecting: Promise<cassandra.Client> | undefined;
  let client: cassandra.Client | undefined;
  /** The driver client being connected or connected, for close(). */
  let building: cassandra.Client | undefined;
  let created = 0;
  const connect = (): Promise<cassandra.Client> => {
    connecting ??= (async () => {
      const driver = await modules.driver();
      const c = new driver.Client(driverOptions(config, url, driver));
      building = c;
      try {
        await c.connect();
      } catch (e) {
        connecting = undefined;
        await c.shutdown().catch(() => {});
        throw fromCqlError(e, endpoint);
      }
      created++;
      client = c;
      return c;
    })();
    return connecting;
  };
  const statements = new CqlStatements(connect, modules, endpoint);
  const releaseVersion = async (): Promise<string> => {
    const c = await connect();
    try {
      const rs = await c.execute('SELECT release_version FROM system.local');
      return String(rs.rows[0]?.get('release_version') ?? '');
    } catch (e) {
      throw fromCqlError(e, endpoint);
    }
  };
  const metrics = new QueryMetrics();
  // No idempotency keys: CQL keeps no record of a write's outcome.
  const retry = createRetryInterceptor({ ...resolveRetryOptions(config.retry), idempotencyKeys: false }, { headerTimeouts: false });
  const breaker = createBreakerInterceptor(endpoint, config.circuitBreaker);
  const transport = createCqlTransport({ statements, releaseVersion, endpoint, maxMessageBytes: config.maxMessageBytes }, [
    ...config.interceptors,
    retry.interceptor,
    breaker.interceptor,
    metricsInterceptor(metrics),
  ]);
  const counters = (): PoolCounters => {
    const state = client?.getState();
    const hosts = state?.getConnectedHosts() ?? [];
    let open = 0;
    let inFlight = 0;
    for (const h of hosts) {
      open += state!.getOpenConnections(h);
      inFlight += state!.getInFlightQueries(h);
    }
    return {
      totalConnections: open,
      activeConnections: inFlight > 0 ? Math.min(open, inFlight) : 0,
      idleConnections: inFlight > 0 ? Math.max(0, open - inFlight) : open,
      inFlight,
      waiting: 0,
      poolHits: 0,
      poolMisses: 0,
      created,
      closed: 0,
      healthCheckFailures: 0,
      acquisitionTimeouts: 0,
    };
  };
  return {
    transport,
    pool: {
      getStats(): PoolStats {
        const c = counters();
        return singleEndpointStats(endpoint, c, breaker.stats(), retry.stats(), c.totalConnections);
      },
    },
    metrics,
    async close() {
      const c = building;
      connecting = undefined;
      client = undefined;
      building = undefined;
      await c?.shutdown().catch(() => {});
    },
  };
}
