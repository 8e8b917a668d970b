/**
 * Client configuration (the design document's ConnectionConfig), its defaults, and reading it from
 * `HELIOSDB_*` environment variables. Browser-safe.
 * @packageDocumentation
 */
import type { Interceptor } from '@connectrpc/connect';
import type { OAuthOptions } from './interceptors/auth-interceptor.js';
import type { CircuitBreakerOptions } from './circuit-breaker.js';
import type { RetryOptions } from './interceptors/retry-options.js';
import type { Int8Mode } from './protocol/decode.js';
import type { SSLMode, SSLModeName, SslOptions } from './tls-options.js';
import { checkOptionNames, platformOptionNames } from './config-keys.js';
import type { QueryCacheOptions } from './cache/query-cache.js';
import type { TracingOptions } from './telemetry/tracing-interceptor.js';

/** What the `onQuery` hook receives after every statement. */
export interface QueryEvent {
  /** `query`, `execute`, `stream`, `batch`, ... */
  operation: string;
  sql: string;
  /** Parameters, only when the client has `logParameters: true`. */
  params?: readonly unknown[];
  /** Client-side duration, ms. */
  durationMs: number;
  /** Rows returned or affected. */
  rowCount: number;
  /** Set when the statement failed. */
  error?: Error;
}

/** Client options. Every option is optional; defaults are listed on each. */
export interface ConnectionConfig {
  /**
   * Server URL. `grpc://host:port` (native gRPC over HTTP/2, the server's gRPC port 7700),
   * `grpcs://host:port` (the same over TLS): Node only. `http://host:port` or `https://host[:port]`
   * (the server's HTTP listener, port 7701 by default; a path prefix behind a proxy is kept): the
   * Connect protocol family chosen by {@link ConnectionConfig.protocol}, in browsers, workers, Deno
   * and Node alike. `postgres://user@host:port/database` or `postgresql://...`: the PostgreSQL
   * wire protocol (node-postgres), Node only. `cql://user:password@host:port/keyspace?dc=datacenter1`:
   * CQL through cassandra-driver to heliosdb's CQL port (keyspace optional, `dc` default
   * `datacenter1`), Node only. Default `grpc://127.0.0.1:7700` in Node and `http://127.0.0.1:7701`
   * in the browser entry (env `HELIOSDB_URL`).
   */
  url?: string;
  /**
   * Several servers in front of the same database (native gRPC, Node): `['grpc://a:7700',
   * 'grpc://b:7700']`. Calls spread over the healthy ones; when one fails, new calls go to the
   * others (its circuit breaker opens) and its open transactions fail. A single `url` whose host
   * name has several addresses in DNS is used the same way. Default: just `url`.
   */
  urls?: string[];
  /**
   * Retries (see docs/resilience.md): `{ maxAttempts, baseDelayMs, maxDelayMs, exponentialBase,
   * jitter, idempotencyKeys, budget }`, or `false` for none. Reads, calls that never reached the
   * server and writes carrying an idempotency key are retried; a write whose outcome stays
   * unknown throws AmbiguousResultError. Default `{ maxAttempts: 4, baseDelayMs: 100, maxDelayMs:
   * 2000, exponentialBase: 2, jitter: 0.2, idempotencyKeys: true, budget: { maxTokens: 10,
   * tokenRatio: 0.1 } }`.
   */
  retry?: RetryOptions | false;
  /**
   * The circuit breaker of each endpoint: `{ failureThreshold, openMs, maxOpenMs }`, or `false`
   * to never open. Default `{ failureThreshold: 5, openMs: 1000, maxOpenMs: 30000 }`.
   */
  circuitBreaker?: CircuitBreakerOptions | false;
  /**
   * HTTP/2 keepalive: a PING on every connection this often, ms, idle or not, so that a
   * connection whose peer vanished (a half-open TCP connection, a black hole) is detected within
   * `keepaliveIntervalMs + keepaliveTimeoutMs` and its calls fail instead of hanging. `0` turns
   * pings off. Native gRPC (`grpc://`, `grpcs://`) only. Default `30000` (env `HELIOSDB_KEEPALIVE_INTERVAL_MS`).
   */
  keepaliveIntervalMs?: number;
  /** How long a keepalive PING may go unanswered before the connection is closed, ms. Default `10000` (env `HELIOSDB_KEEPALIVE_TIMEOUT_MS`). */
  keepaliveTimeoutMs?: number;
  /**
   * Wire protocol of `http://` and `https://` URLs: `'connect'` (the Connect protocol with binary
   * protobuf messages), `'connect-json'` (the same with JSON messages, readable in the browser's
   * network panel) or `'grpc-web'`. Ignored for `grpc://` URLs, which always speak native gRPC.
   * Default `'connect'`.
   */
  protocol?: 'connect' | 'connect-json' | 'grpc-web';
  /**
   * HTTP version Node uses for `http://` and `https://` URLs: `'2'` (one multiplexed connection;
   * cleartext h2c for `http://`) or `'1.1'` (a keep-alive connection per concurrent call).
   * Browsers choose for themselves and ignore it. Default `'2'`.
   */
  httpVersion?: '1.1' | '2';
  /**
   * Most calls in flight at once over `http://` and `https://` URLs, where the platform (the
   * browser's `fetch`, Node's HTTP stack) owns the connections and the pool is a concurrency
   * limiter; further calls wait up to `acquisitionTimeoutMs`. `0` means
   * `maxConnections * maxStreamsPerConnection`. Default `0`.
   */
  maxConcurrentCalls?: number;
  /** Sent with every call; shows as PostgreSQL's `application_name`. Default none (env `HELIOSDB_APPLICATION_NAME`). */
  applicationName?: string;
  /** Connections (HTTP/2 channels) kept open. Default `10` (env `HELIOSDB_MIN_CONNECTIONS`). */
  minConnections?: number;
  /** Most connections. Default `100` (env `HELIOSDB_MAX_CONNECTIONS`). */
  maxConnections?: number;
  /**
   * `grpc://` and `grpcs://` only: send the unary calls (queries, executes, prepared statements,
   * batches, transaction control) as operations of one multiplexed session stream per connection
   * (SessionService), the operations of one event-loop tick in one message, instead of one HTTP/2
   * call each. Retries, deadlines, cancellation, transactions and errors behave as for unary
   * calls; a server without sessions gets unary calls. Streams (`stream`, `copyFrom`, `copyTo`,
   * `listen`) stay their own calls. Default `false` (env `HELIOSDB_SESSIONS`).
   */
  sessions?: boolean;
  /** Calls one connection carries before the pool opens another (HTTP/2 concurrent streams). Default `100`. */
  maxStreamsPerConnection?: number;
  /** A connection is recycled (drained, then closed) after this long. Default `3600`. */
  maxLifetimeSeconds?: number;
  /** The design document's name for `maxLifetimeSeconds`. Default `3600`. */
  poolRecycleSeconds?: number;
  /** How often each connection is checked with grpc.health.v1. Default `60`. */
  healthCheckIntervalSeconds?: number;
  /** Connections above `minConnections` idle this long are closed. Default `30`. */
  idleTimeoutSeconds?: number;
  /** How long a call waits for a free connection when all are saturated. Default `10000` (env `HELIOSDB_ACQUISITION_TIMEOUT_MS`). */
  acquisitionTimeoutMs?: number;
  /** How long opening a connection may take. Default `10000` (env `HELIOSDB_CONNECT_TIMEOUT_MS`). */
  connectTimeoutMs?: number;
  /** Default deadline of every call, ms; `0` means none. Default `0` (env `HELIOSDB_TIMEOUT_MS`). */
  timeoutMs?: number;
  /** Largest message received. Default `67108864` (64 MiB). */
  maxMessageBytes?: number;
  /** How int8 values are returned. Default `'bigint'`. */
  int8?: Int8Mode;
  /** Rows as objects keyed by column name, or as arrays. Default `'object'`. */
  rowMode?: 'object' | 'array';
  /** Connect interceptors, run on every call (outermost first). Default none. */
  interceptors?: Interceptor[];
  /** Called after every statement (logging, tracing). Default none. */
  onQuery?: (event: QueryEvent) => void;
  /** Include parameter values in errors and `onQuery` events. Default `false` (redacted). */
  logParameters?: boolean;
  /**
   * Message compression of requests: `'gzip'` compresses every request message (worth it for
   * large batches and parameters on slow links), `'none'` sends them as they are. Responses are
   * compressed when the server is configured to. Default `'none'` (env `HELIOSDB_COMPRESSION`).
   */
  compression?: 'gzip' | 'none';
  /**
   * TLS: `true`, or `{ mode, ca, cert, key, servername }` (PEM text or bytes; `cert` and `key` for
   * mutual TLS). `grpcs://` and `https://` URLs use TLS with `mode: 'verify-full'` (chain and host
   * name checked) unless told otherwise. Node only, except `mode: 'verify-full'`: a browser uses its
   * own certificate store. Default: TLS exactly when the URL says so.
   */
  ssl?: boolean | SslOptions;
  /**
   * Shorthand for `ssl.mode`: {@link SSLMode} (`SSLMode.VERIFY_FULL`) or its name (`'verify-full'`,
   * `'verify-ca'`, `'require'`, `'disable'`). Anything but `disable` turns TLS on for `grpc://` and
   * `http://` URLs too. Default `verify-full` for `grpcs://` / `https://`, `disable` otherwise
   * (env `HELIOSDB_SSL_MODE`).
   */
  sslMode?: SSLMode | SSLModeName;
  /** User name for password authentication: the client logs in (AuthService.Login) and sends the session token it gets. Default none (env `HELIOSDB_USER`). */
  user?: string;
  /** Password of `user`. Sent only over TLS or to a server on this machine. Default none (env `HELIOSDB_PASSWORD`). */
  password?: string;
  /** An API key (`hdb_...`), sent as `authorization: Bearer <key>` with every call. Default none (env `HELIOSDB_API_KEY`). */
  apiKey?: string;
  /**
   * OAuth 2.0 bearer tokens: an access token (`'eyJ...'` or `{ token }`), `{ tokenProvider }` (an
   * async function, asked again before the token expires and after a rejection), or the
   * client-credentials grant `{ tokenUrl, clientId, clientSecret, scope }`, which the client runs
   * itself, caching the token and renewing it before it expires. Default none.
   */
  oauth?: OAuthOptions;
  /**
   * OpenTelemetry spans (see docs/observability.md): a client span per call, its `traceparent`
   * sent to the server, whenever the application registered a tracer provider; `false` turns
   * them off, `{ queryText: false }` leaves the SQL text out of them. Default `{ queryText: true }`.
   */
  tracing?: TracingOptions | false;
  /**
   * The query cache (see docs/query-cache.md): `{ ttlMs, maxBytes }`, or `false` for none. With
   * `ttlMs` above 0 every `client.query` that is a read is cached that long; without it only calls
   * that pass `cache` are. Default `{ ttlMs: 0, maxBytes: 16777216 }`.
   */
  queryCache?: QueryCacheOptions | false;
}

/** Every option of {@link ConnectionConfig}; the type check keeps it complete. */
const optionTable: Record<keyof ConnectionConfig, true> = {
  url: true,
  urls: true,
  retry: true,
  circuitBreaker: true,
  keepaliveIntervalMs: true,
  keepaliveTimeoutMs: true,
  protocol: true,
  httpVersion: true,
  maxConcurrentCalls: true,
  applicationName: true,
  minConnections: true,
  maxConnections: true,
  maxStreamsPerConnection: true,
  sessions: true,
  maxLifetimeSeconds: true,
  poolRecycleSeconds: true,
  healthCheckIntervalSeconds: true,
  idleTimeoutSeconds: true,
  acquisitionTimeoutMs: true,
  connectTimeoutMs: true,
  timeoutMs: true,
  maxMessageBytes: true,
  int8: true,
  rowMode: true,
  interceptors: true,
  onQuery: true,
  logParameters: true,
  compression: true,
  ssl: true,
  sslMode: true,
  user: true,
  password: true,
  apiKey: true,
  oauth: true,
  tracing: true,
  queryCache: true,
};

/** The name of every client option. */
export const optionNames: readonly string[] = Object.keys(optionTable);

/** Options without a default (unset means none). */
type UnsetKeys = 'applicationName' | 'onQuery' | 'ssl' | 'sslMode' | 'user' | 'password' | 'apiKey' | 'oauth' | 'urls';

/** Every option with its default applied. */
export type ResolvedConnectionConfig = Required<Omit<ConnectionConfig, UnsetKeys | 'poolRecycleSeconds'>> &
  Pick<ConnectionConfig, UnsetKeys>;

/** The defaults of every client option. */
export const clientDefaults: Omit<ResolvedConnectionConfig, UnsetKeys> = {
  url: 'grpc://127.0.0.1:7700',
  minConnections: 10,
  maxConnections: 100,
  maxStreamsPerConnection: 100,
  sessions: false,
  maxLifetimeSeconds: 3600,
  healthCheckIntervalSeconds: 60,
  idleTimeoutSeconds: 30,
  acquisitionTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  timeoutMs: 0,
  maxMessageBytes: 64 * 1024 * 1024,
  int8: 'bigint',
  rowMode: 'object',
  interceptors: [],
  logParameters: false,
  compression: 'none',
  protocol: 'connect',
  httpVersion: '2',
  maxConcurrentCalls: 0,
  retry: {},
  circuitBreaker: {},
  keepaliveIntervalMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  tracing: {},
  queryCache: {},
};

function env(): Record<string, string | undefined> {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env ?? {};
}

/** Client options read from `HELIOSDB_URL`, `HELIOSDB_URLS` (comma-separated), `HELIOSDB_KEEPALIVE_INTERVAL_MS`, `HELIOSDB_KEEPALIVE_TIMEOUT_MS`, `HELIOSDB_APPLICATION_NAME`, `HELIOSDB_MIN_CONNECTIONS`, `HELIOSDB_MAX_CONNECTIONS`, `HELIOSDB_CONNECT_TIMEOUT_MS`, `HELIOSDB_ACQUISITION_TIMEOUT_MS`, `HELIOSDB_TIMEOUT_MS`, `HELIOSDB_COMPRESSION`, `HELIOSDB_SESSIONS` (`true` or `false`), `HELIOSDB_SSL_MODE`, `HELIOSDB_USER`, `HELIOSDB_PASSWORD`, `HELIOSDB_API_KEY`. */
export function configFromEnv(vars: Record<string, string | undefined> = env()): ConnectionConfig {
  const out: ConnectionConfig = {};
  const num = (name: string): number | undefined => {
    const v = vars[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new TypeError(`${name} must be a number, got ${JSON.stringify(v)}`);
    return n;
  };
  if (vars.HELIOSDB_URL) out.url = vars.HELIOSDB_URL;
  if (vars.HELIOSDB_APPLICATION_NAME) out.applicationName = vars.HELIOSDB_APPLICATION_NAME;
  const compression = vars.HELIOSDB_COMPRESSION;
  if (compression) {
    if (compression !== 'gzip' && compression !== 'none')
      throw new TypeError(`HELIOSDB_COMPRESSION must be gzip or none, got ${JSON.stringify(compression)}`);
    out.compression = compression;
  }
  const sessions = vars.HELIOSDB_SESSIONS;
  if (sessions) {
    if (sessions !== 'true' && sessions !== 'false')
      throw new TypeError(`HELIOSDB_SESSIONS must be true or false, got ${JSON.stringify(sessions)}`);
    out.sessions = sessions === 'true';
  }
  out.minConnections = num('HELIOSDB_MIN_CONNECTIONS');
  out.maxConnections = num('HELIOSDB_MAX_CONNECTIONS');
  out.connectTimeoutMs = num('HELIOSDB_CONNECT_TIMEOUT_MS');
  out.acquisitionTimeoutMs = num('HELIOSDB_ACQUISITION_TIMEOUT_MS');
  out.timeoutMs = num('HELIOSDB_TIMEOUT_MS');
  out.keepaliveIntervalMs = num('HELIOSDB_KEEPALIVE_INTERVAL_MS');
  out.keepaliveTimeoutMs = num('HELIOSDB_KEEPALIVE_TIMEOUT_MS');
  if (vars.HELIOSDB_URLS)
    out.urls = vars.HELIOSDB_URLS.split(',')
      .map((u) => u.trim())
      .filter(Boolean);
  if (vars.HELIOSDB_SSL_MODE) out.sslMode = vars.HELIOSDB_SSL_MODE as SSLModeName;
  if (vars.HELIOSDB_USER) out.user = vars.HELIOSDB_USER;
  if (vars.HELIOSDB_PASSWORD) out.password = vars.HELIOSDB_PASSWORD;
  if (vars.HELIOSDB_API_KEY) out.apiKey = vars.HELIOSDB_API_KEY;
  return out;
}

const credentialKeys = ['user', 'password', 'apiKey', 'oauth'] as const;

/**
 * Applies the environment, then `config`, over the defaults. A string is taken as the URL. An
 * option the client does not know (`connectionString`, `max`, a typo) throws ConfigurationError
 * (`INVALID_CONFIG`) naming the option meant.
 */
export function resolveConfig(config: ConnectionConfig | string = {}): ResolvedConnectionConfig {
  const given: ConnectionConfig = typeof config === 'string' ? { url: config } : config;
  // Node's own TLS option names are refused by each entry point, in its terms (../transport/*-parts.ts).
  checkOptionNames(given, optionNames, platformOptionNames);
  const merged: Record<string, unknown> = { ...clientDefaults };
  const fromEnv = configFromEnv();
  // Credentials given in the config replace the environment's, whatever their kind.
  if (credentialKeys.some((k) => given[k] !== undefined)) for (const k of credentialKeys) delete fromEnv[k];
  for (const source of [fromEnv, given]) {
    for (const [k, v] of Object.entries(source)) if (v !== undefined) merged[k] = v;
  }
  if (given.poolRecycleSeconds !== undefined && given.maxLifetimeSeconds === undefined)
    merged.maxLifetimeSeconds = given.poolRecycleSeconds;
  delete merged.poolRecycleSeconds;
  const r = merged as ResolvedConnectionConfig;
  // Only a maximum given: the default minimum follows it down.
  if (merged.minConnections === clientDefaults.minConnections && r.maxConnections < r.minConnections) r.minConnections = r.maxConnections;
  if (r.compression !== 'gzip' && r.compression !== 'none') {
    throw new RangeError(`compression must be 'gzip' or 'none', got ${JSON.stringify(r.compression)}`);
  }
  if (r.protocol !== 'connect' && r.protocol !== 'connect-json' && r.protocol !== 'grpc-web') {
    throw new RangeError(`protocol must be 'connect', 'connect-json' or 'grpc-web', got ${JSON.stringify(r.protocol)}`);
  }
  if (r.httpVersion !== '1.1' && r.httpVersion !== '2')
    throw new RangeError(`httpVersion must be '1.1' or '2', got ${JSON.stringify(r.httpVersion)}`);
  if (!(r.keepaliveIntervalMs >= 0) || !(r.keepaliveTimeoutMs > 0)) {
    throw new RangeError(`need keepaliveIntervalMs >= 0 (${r.keepaliveIntervalMs}) and keepaliveTimeoutMs > 0 (${r.keepaliveTimeoutMs})`);
  }
  if (r.urls !== undefined) {
    if (!Array.isArray(r.urls) || r.urls.length === 0 || r.urls.some((u) => typeof u !== 'string' || !u))
      throw new RangeError('urls must be a non-empty array of URLs');
    // The first is the client's URL (scheme, TLS, display); all are used.
    if (given.url === undefined) r.url = r.urls[0];
  }
  if (!(r.maxConcurrentCalls >= 0)) throw new RangeError(`maxConcurrentCalls must be 0 or more, got ${r.maxConcurrentCalls}`);
  if (r.minConnections < 0 || r.maxConnections < 1 || r.minConnections > r.maxConnections) {
    throw new RangeError(`need 0 <= minConnections (${r.minConnections}) <= maxConnections (${r.maxConnections}) and maxConnections >= 1`);
  }
  return r;
}
