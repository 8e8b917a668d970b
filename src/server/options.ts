/**
 * Server options, their defaults, and reading them from `HELIOSDB_*` environment variables.
 * @packageDocumentation
 */

/** Options of {@link startServer} and `heliosdb serve`. */
export interface ServerOptions {
  /** Host both listeners bind to. Default `127.0.0.1` (env `HELIOSDB_HOST`). */
  host?: string;
  /** Native gRPC (HTTP/2) port. Default `7700`; `0` picks a free port (env `HELIOSDB_PORT`). */
  port?: number;
  /**
   * Connect / gRPC-Web / gRPC / JSON port (HTTP/1.1 and h2c). Default `7701`; `0` picks a free
   * port; `-1` disables the listener (env `HELIOSDB_HTTP_PORT`).
   */
  httpPort?: number;
  /**
   * PostgreSQL connection URL (`postgres://user:pass@host:5432/db`). When unset, the embedded
   * PGlite engine is used (env `HELIOSDB_DATABASE_URL`).
   */
  databaseUrl?: string;
  /** PGlite data directory; unset keeps the embedded database in memory (env `HELIOSDB_DATA_DIR`). */
  dataDir?: string;
  /** PostgreSQL pool size. Default `20`; PGlite is always one session (env `HELIOSDB_POOL_SIZE`). */
  poolSize?: number;
  /**
   * Origins allowed to call the HTTP listener from a browser (CORS). Default none: no
   * cross-origin browser access. `*` allows any origin (env `HELIOSDB_CORS_ORIGIN`, comma-separated).
   */
  corsOrigins?: string[];
  /** Largest request or response message on both listeners, bytes. Default 16 MiB (env `HELIOSDB_MAX_MESSAGE_BYTES`). */
  maxMessageBytes?: number;
  /** Statement timeout, ms; `0` disables it. Default `300000` (env `HELIOSDB_STATEMENT_TIMEOUT_MS`). */
  statementTimeoutMs?: number;
  /** Most rows a unary Query may return. Default `100000` (env `HELIOSDB_MAX_UNARY_ROWS`). */
  maxUnaryRows?: number;
  /** Most interactive transactions open at once. Default `1000` (env `HELIOSDB_MAX_TRANSACTIONS`). */
  maxOpenTransactions?: number;
  /** An open transaction unused this long is rolled back. Default `60000` ms (env `HELIOSDB_TRANSACTION_IDLE_TIMEOUT_MS`). */
  transactionIdleTimeoutMs?: number;
  /** Longest wait for a free database connection, ms. Default `30000` (env `HELIOSDB_ACQUIRE_TIMEOUT_MS`). */
  acquireTimeoutMs?: number;
  /** Time SIGTERM / close() waits for in-flight calls before cutting them, ms. Default `10000` (env `HELIOSDB_SHUTDOWN_GRACE_MS`). */
  shutdownGraceMs?: number;
  /** pino log level: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`. Default `info` (env `HELIOSDB_LOG_LEVEL`). */
  logLevel?: string;
  /** TLS certificate (chain) of both listeners: a PEM file path or PEM text. Default none: cleartext (env `HELIOSDB_TLS_CERT`). */
  tlsCert?: string;
  /** TLS private key of both listeners: a PEM file path or PEM text (env `HELIOSDB_TLS_KEY`). */
  tlsKey?: string;
  /** CA of client certificates: set, both listeners require one (mutual TLS), and its common name identifies a user (env `HELIOSDB_TLS_CLIENT_CA`). */
  tlsClientCa?: string;
  /**
   * `required`: every call but health checks and Login needs credentials. `none`: credentials are
   * optional (calls without them run as the server's database login). Default `none` when `host`
   * is a loopback address; on any other host the server refuses to start unless it is given
   * (env `HELIOSDB_AUTH`).
   */
  auth?: 'none' | 'required';
  /** Accept Login passwords over connections without TLS (local development only). Default `false` (env `HELIOSDB_ALLOW_INSECURE_PASSWORD`). */
  allowInsecurePassword?: boolean;
  /** JWKS URL of the OAuth 2.0 identity provider whose JWT access tokens are accepted. Default none (env `HELIOSDB_JWKS_URL`). */
  jwksUrl?: string;
  /** Required `iss` of access tokens (env `HELIOSDB_JWT_ISSUER`). */
  jwtIssuer?: string;
  /** Required `aud` of access tokens (env `HELIOSDB_JWT_AUDIENCE`). */
  jwtAudience?: string;
  /** Access-token claim naming the HeliosDB user. Default `sub` (env `HELIOSDB_JWT_USER_CLAIM`). */
  jwtUserClaim?: string;
  /** Accepted JWT algorithms. Default `RS256,PS256,ES256,EdDSA` (env `HELIOSDB_JWT_ALGORITHMS`, comma-separated). */
  jwtAlgorithms?: string[];
  /** Lifetime of a Login session token, ms. Default `900000` (15 min) (env `HELIOSDB_SESSION_TTL_MS`). */
  sessionTtlMs?: number;
  /** How long a verified token is trusted before the store is asked again (revocation delay), ms. Default `5000` (env `HELIOSDB_AUTH_CACHE_MS`). */
  authCacheMs?: number;
  /** Failed authentications from one client address before its attempts are slowed down. Default `5` (env `HELIOSDB_AUTH_FAILURE_LIMIT`). */
  authFailureLimit?: number;
  /**
   * How long the outcome of a write sent with an idempotency key is kept (in the database table
   * `heliosdb.idempotency_keys`), ms: a retry with the same key within it gets the first outcome
   * instead of running again. Default `86400000` (24 h) (env `HELIOSDB_IDEMPOTENCY_WINDOW_MS`).
   */
  idempotencyWindowMs?: number;
  /**
   * Most client connections each listener accepts at once; further ones are closed at once, before
   * any request is read. Default `1000` (env `HELIOSDB_MAX_CONNECTIONS`).
   */
  maxConnections?: number;
  /**
   * A client connection with no call in progress for this long is closed (both listeners; clients
   * reconnect when they need to), ms. Default `300000` (env `HELIOSDB_IDLE_CONNECTION_TIMEOUT_MS`).
   */
  idleConnectionTimeoutMs?: number;
  /** Most calls in progress on one client connection (HTTP/2 streams), both listeners. Default `100` (env `HELIOSDB_MAX_CONCURRENT_STREAMS`). */
  maxConcurrentStreams?: number;
  /**
   * Most interactive transactions and reserved sessions one principal may hold open at once;
   * `0` means half of `poolSize` (at least 1), so one principal cannot take every database
   * connection. Default `0` (env `HELIOSDB_MAX_TRANSACTIONS_PER_PRINCIPAL`).
   */
  maxTransactionsPerPrincipal?: number;
  /**
   * Most prepared statements the server remembers per principal; the least recently used is
   * forgotten first (a client re-sends its SQL, so nothing fails). Default `1000` (env
   * `HELIOSDB_MAX_PREPARED_STATEMENTS`).
   */
  maxPreparedStatements?: number;
  /** A prepared statement unused this long is forgotten, ms. Default `3600000` (env `HELIOSDB_PREPARED_STATEMENT_TTL_MS`). */
  preparedStatementTtlMs?: number;
  /**
   * Longest slow-down of authentication attempts from a failing client address or against a failing
   * credential, ms (the delay doubles from 1 s with each failure over `authFailureLimit`). Default
   * `30000` (env `HELIOSDB_AUTH_MAX_DELAY_MS`).
   */
  authMaxDelayMs?: number;
  /**
   * PostgreSQL's `application_name` of the server's connections while no call names one (a
   * client's `applicationName` applies during its calls). Default `heliosdb` (env
   * `HELIOSDB_DATABASE_APPLICATION_NAME`).
   */
  databaseApplicationName?: string;
  /**
   * Largest COPY FROM on the embedded engine, bytes: PGlite reads a COPY's data from memory, so
   * the server holds it whole before running it. Default 256 MiB (env `HELIOSDB_MAX_COPY_BYTES`).
   */
  maxCopyBytes?: number;
}

/** Options that have no default (unset means off). */
type OptionalKeys = 'databaseUrl' | 'dataDir' | 'tlsCert' | 'tlsKey' | 'tlsClientCa' | 'auth' | 'jwksUrl' | 'jwtIssuer' | 'jwtAudience';

/** Every option with its default applied. */
export type ResolvedServerOptions = Required<Omit<ServerOptions, OptionalKeys>> & Pick<ServerOptions, OptionalKeys>;

/** The defaults of every server option. */
export const serverDefaults: ResolvedServerOptions = {
  host: '127.0.0.1',
  port: 7700,
  httpPort: 7701,
  poolSize: 20,
  corsOrigins: [],
  maxMessageBytes: 16 * 1024 * 1024,
  statementTimeoutMs: 300_000,
  maxUnaryRows: 100_000,
  maxOpenTransactions: 1000,
  transactionIdleTimeoutMs: 60_000,
  acquireTimeoutMs: 30_000,
  shutdownGraceMs: 10_000,
  logLevel: 'info',
  allowInsecurePassword: false,
  jwtUserClaim: 'sub',
  jwtAlgorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
  sessionTtlMs: 900_000,
  authCacheMs: 5000,
  authFailureLimit: 5,
  idempotencyWindowMs: 86_400_000,
  maxConnections: 1000,
  idleConnectionTimeoutMs: 300_000,
  maxConcurrentStreams: 100,
  maxTransactionsPerPrincipal: 0,
  maxPreparedStatements: 1000,
  preparedStatementTtlMs: 3_600_000,
  authMaxDelayMs: 30_000,
  maxCopyBytes: 256 * 1024 * 1024,
  databaseApplicationName: 'heliosdb',
};

const envNames: Record<keyof ServerOptions, string> = {
  host: 'HELIOSDB_HOST',
  port: 'HELIOSDB_PORT',
  httpPort: 'HELIOSDB_HTTP_PORT',
  databaseUrl: 'HELIOSDB_DATABASE_URL',
  dataDir: 'HELIOSDB_DATA_DIR',
  poolSize: 'HELIOSDB_POOL_SIZE',
  corsOrigins: 'HELIOSDB_CORS_ORIGIN',
  maxMessageBytes: 'HELIOSDB_MAX_MESSAGE_BYTES',
  statementTimeoutMs: 'HELIOSDB_STATEMENT_TIMEOUT_MS',
  maxUnaryRows: 'HELIOSDB_MAX_UNARY_ROWS',
  maxOpenTransactions: 'HELIOSDB_MAX_TRANSACTIONS',
  transactionIdleTimeoutMs: 'HELIOSDB_TRANSACTION_IDLE_TIMEOUT_MS',
  acquireTimeoutMs: 'HELIOSDB_ACQUIRE_TIMEOUT_MS',
  shutdownGraceMs: 'HELIOSDB_SHUTDOWN_GRACE_MS',
  logLevel: 'HELIOSDB_LOG_LEVEL',
  tlsCert: 'HELIOSDB_TLS_CERT',
  tlsKey: 'HELIOSDB_TLS_KEY',
  tlsClientCa: 'HELIOSDB_TLS_CLIENT_CA',
  auth: 'HELIOSDB_AUTH',
  allowInsecurePassword: 'HELIOSDB_ALLOW_INSECURE_PASSWORD',
  jwksUrl: 'HELIOSDB_JWKS_URL',
  jwtIssuer: 'HELIOSDB_JWT_ISSUER',
  jwtAudience: 'HELIOSDB_JWT_AUDIENCE',
  jwtUserClaim: 'HELIOSDB_JWT_USER_CLAIM',
  jwtAlgorithms: 'HELIOSDB_JWT_ALGORITHMS',
  sessionTtlMs: 'HELIOSDB_SESSION_TTL_MS',
  authCacheMs: 'HELIOSDB_AUTH_CACHE_MS',
  authFailureLimit: 'HELIOSDB_AUTH_FAILURE_LIMIT',
  idempotencyWindowMs: 'HELIOSDB_IDEMPOTENCY_WINDOW_MS',
  maxConnections: 'HELIOSDB_MAX_CONNECTIONS',
  idleConnectionTimeoutMs: 'HELIOSDB_IDLE_CONNECTION_TIMEOUT_MS',
  maxConcurrentStreams: 'HELIOSDB_MAX_CONCURRENT_STREAMS',
  maxTransactionsPerPrincipal: 'HELIOSDB_MAX_TRANSACTIONS_PER_PRINCIPAL',
  maxPreparedStatements: 'HELIOSDB_MAX_PREPARED_STATEMENTS',
  preparedStatementTtlMs: 'HELIOSDB_PREPARED_STATEMENT_TTL_MS',
  authMaxDelayMs: 'HELIOSDB_AUTH_MAX_DELAY_MS',
  maxCopyBytes: 'HELIOSDB_MAX_COPY_BYTES',
  databaseApplicationName: 'HELIOSDB_DATABASE_APPLICATION_NAME',
};

/** The environment variable that sets each option. */
export function envNameOf(key: keyof ServerOptions): string {
  return envNames[key];
}

/** Parses one option from its text form (a flag or an environment variable). */
export function parseOption(key: keyof ServerOptions, text: string): ServerOptions[keyof ServerOptions] {
  const sample = serverDefaults[key as keyof ResolvedServerOptions];
  if (key === 'auth') {
    if (text !== 'none' && text !== 'required') throw new Error(`auth must be none or required, got ${JSON.stringify(text)}`);
    return text;
  }
  if (typeof sample === 'boolean') {
    if (/^(1|true|yes|on)$/i.test(text)) return true;
    if (/^(0|false|no|off)$/i.test(text)) return false;
    throw new Error(`${key} must be true or false, got ${JSON.stringify(text)}`);
  }
  if (key === 'corsOrigins' || key === 'jwtAlgorithms') {
    return text
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  }
  if (typeof sample === 'number') {
    const n = Number(text);
    if (!Number.isInteger(n)) throw new Error(`${key} must be an integer, got ${JSON.stringify(text)}`);
    return n;
  }
  return text;
}

/** Options read from `HELIOSDB_*` environment variables. */
export function optionsFromEnv(env: Record<string, string | undefined> = process.env): ServerOptions {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(envNames) as (keyof ServerOptions)[]) {
    const v = env[envNames[key]];
    if (v !== undefined && v !== '') out[key] = parseOption(key, v);
  }
  return out as ServerOptions;
}

/** Applies defaults to explicit options (which win over nothing else; see the CLI for env). */
export function resolveOptions(options: ServerOptions): ResolvedServerOptions {
  const out: Record<string, unknown> = { ...serverDefaults };
  for (const [k, v] of Object.entries(options)) if (v !== undefined) out[k] = v;
  return out as ResolvedServerOptions;
}
