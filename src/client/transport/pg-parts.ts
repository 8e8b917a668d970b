/**
 * Wires the Node client for `postgres://` and `postgresql://` URLs: the PostgreSQL wire protocol
 * through node-postgres (`pg`, an optional peer dependency loaded on first use), to any
 * PostgreSQL or to heliosdb's PostgreSQL port. The parts are those of every transport: a Connect
 * transport answering HeliosDB's RPCs (`pg-transport.ts`), the pool's statistics, the metrics,
 * and the interceptors (yours, retry, circuit breaker, metrics).
 *
 * The retry rules are the other transports', without idempotency keys: PostgreSQL keeps no
 * record of a write's outcome, so a write whose answer was lost is never sent again (it fails
 * with AmbiguousResultError). A call sent as a read runs on a connection with
 * `default_transaction_read_only` on, so that a statement that writes is refused and sent again
 * as a write, as a HeliosDB server does. Node only.
 * @packageDocumentation
 */
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import type { ResolvedConnectionConfig } from '../config.js';
import { HeliosDBError } from '../errors.js';
import { createBreakerInterceptor } from '../interceptors/breaker-interceptor.js';
import { createRetryInterceptor } from '../interceptors/retry-interceptor.js';
import { resolveRetryOptions } from '../interceptors/retry-options.js';
import { metricsInterceptor, QueryMetrics } from '../metrics.js';
import type { PoolStats } from '../pool-stats.js';
import { singleEndpointStats } from './single-endpoint-stats.js';
import { type Pem, resolveTls } from '../tls-options.js';
import type { ClientParts } from './client-parts.js';
import { PgBackend } from './pg-backend.js';
import { pgModules } from './pg-modules.js';
import { PgPool } from './pg-pool.js';
import { PgSessions } from './pg-sessions.js';
import { PgStatements } from './pg-statements.js';
import { PgStreams } from './pg-streams.js';
import { createPgTransport } from './pg-transport.js';

function pemText(p: Pem | Pem[] | undefined): string | string[] | undefined {
  if (p === undefined) return undefined;
  const one = (x: Pem) => (typeof x === 'string' ? x : Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString());
  return Array.isArray(p) ? p.map(one) : one(p);
}

/** node-postgres's `ssl` for the client's `ssl` / `sslMode`; undefined leaves it to the URL's `sslmode`. */
function pgSsl(config: ResolvedConnectionConfig): ConnectionOptions | false | undefined {
  if (config.ssl === undefined && config.sslMode === undefined) return undefined;
  const tls = resolveTls(config.url, config.ssl, config.sslMode);
  if (!tls.enabled) return false;
  return {
    ca: pemText(tls.ca),
    cert: pemText(tls.cert) as string | undefined,
    key: pemText(tls.key) as string | undefined,
    servername: tls.servername,
    rejectUnauthorized: tls.mode !== 'require',
    ...(tls.mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
  };
}

/** Builds the parts for a resolved config whose URL is postgres:// or postgresql://. */
export function createPgParts(config: ResolvedConnectionConfig): ClientParts {
  let url: URL;
  try {
    url = new URL(config.url);
  } catch {
    throw new HeliosDBError(
      `invalid url ${JSON.stringify(config.url)}: expected postgres://user:password@host:port/database`,
      'INVALID_CONFIG',
    );
  }
  if (config.urls && config.urls.length > 1) {
    throw new HeliosDBError(
      'several urls need native gRPC (grpc:// or grpcs://): a postgres:// client talks to one server',
      'INVALID_CONFIG',
    );
  }
  if (config.oauth !== undefined)
    throw new HeliosDBError('oauth is not supported over postgres://: give user and password (or apiKey)', 'INVALID_CONFIG');
  const endpoint = `${url.protocol}//${url.host}`;
  const modules = pgModules();
  const ssl = pgSsl(config);
  const clientConfig: pg.ClientConfig = {
    connectionString: connectionStringOf(url, config),
    application_name: config.applicationName || undefined,
    connectionTimeoutMillis: config.connectTimeoutMs,
    keepAlive: config.keepaliveIntervalMs > 0,
    keepAliveInitialDelayMillis: config.keepaliveIntervalMs,
    ...(ssl !== undefined ? { ssl } : {}),
  };
  const connect = async (): Promise<pg.Client> => {
    const { Client } = await modules.pg();
    const client = new Client(clientConfig);
    client.on('error', () => {});
    await client.connect();
    return client;
  };
  const pool = new PgPool({
    connect,
    applicationName: config.applicationName ?? '',
    maxConnections: config.maxConnections,
    minConnections: config.minConnections,
    acquisitionTimeoutMs: config.acquisitionTimeoutMs,
    idleTimeoutSeconds: config.idleTimeoutSeconds,
    maxLifetimeSeconds: config.maxLifetimeSeconds,
  });
  let pgModule: typeof pg | undefined;
  void modules.pg().then(
    (m) => (pgModule = m),
    () => {},
  );
  const cancelRequest = (target: pg.Client) => {
    if (!pgModule) return;
    // node-postgres sends the cancel request (with the target's backend key) on a new connection.
    const canceller = new pgModule.Client(clientConfig) as unknown as {
      connection: { on(ev: string, fn: () => void): void };
      cancel(client: pg.Client, query: unknown): void;
    };
    canceller.connection.on('error', () => {});
    // Client.cancel reads only the backend key (and the query to match) from its first argument.
    const key = target as unknown as { processID: number; secretKey: number };
    const running = {};
    canceller.cancel({ activeQuery: running, processID: key.processID, secretKey: key.secretKey } as unknown as pg.Client, running);
  };
  const backend = new PgBackend(pool, endpoint, config.applicationName ?? '', cancelRequest);
  const metrics = new QueryMetrics();
  // No idempotency keys: PostgreSQL keeps no record of a write's outcome.
  const retry = createRetryInterceptor({ ...resolveRetryOptions(config.retry), idempotencyKeys: false }, { headerTimeouts: false });
  const breaker = createBreakerInterceptor(endpoint, config.circuitBreaker);
  const transport = createPgTransport(
    {
      statements: new PgStatements(backend),
      sessions: new PgSessions(backend, config.maxMessageBytes),
      streams: new PgStreams(backend, modules, connect),
      endpoint,
    },
    [...config.interceptors, retry.interceptor, breaker.interceptor, metricsInterceptor(metrics)],
  );
  const poolHandle = {
    getStats(): PoolStats {
      const counters = pool.stats();
      return singleEndpointStats(endpoint, counters, breaker.stats(), retry.stats(), counters.totalConnections);
    },
  };
  return {
    transport,
    pool: poolHandle,
    metrics,
    async close() {
      backend.sessions.clear();
      await pool.close();
    },
  };
}

/**
 * The URL node-postgres connects with. node-postgres lets a connection string's user and password
 * win over its options (an absent one as empty), so `user`, and `password` or `apiKey`, are
 * written into the URL; an API key without a user logs in as `apikey`, the name heliosdb's
 * PostgreSQL port takes a key under (docs/postgres-wire.md).
 */
function connectionStringOf(url: URL, config: ResolvedConnectionConfig): string {
  const password = config.password ?? config.apiKey;
  const user = config.user ?? (config.password === undefined && config.apiKey !== undefined && !url.username ? 'apikey' : undefined);
  if (user === undefined && password === undefined) return config.url;
  const u = new URL(url.href);
  if (user !== undefined) u.username = encodeURIComponent(user);
  if (password !== undefined) u.password = encodeURIComponent(password);
  return u.href;
}
