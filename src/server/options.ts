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
}

/** Every option with its default applied. */
export type ResolvedServerOptions = Required<Omit<ServerOptions, 'databaseUrl' | 'dataDir'>> &
  Pick<ServerOptions, 'databaseUrl' | 'dataDir'>;

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
};

/** The environment variable that sets each option. */
export function envNameOf(key: keyof ServerOptions): string {
  return envNames[key];
}

/** Parses one option from its text form (a flag or an environment variable). */
export function parseOption(key: keyof ServerOptions, text: string): ServerOptions[keyof ServerOptions] {
  const sample = serverDefaults[key as keyof ResolvedServerOptions];
  if (key === 'corsOrigins') {
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
