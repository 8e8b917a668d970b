/**
 * Every server option, once: its flag, environment variable, default, parser and description.
 * The table produces the options' type ({@link ServerOptions}), their defaults, reading
 * `HELIOSDB_*` variables, the `heliosdb serve` flags and `--help` text (../bin/serve-args.ts), and
 * the README's table (scripts/options-table.ts, checked by a test).
 * @packageDocumentation
 */

/** How an option's text (a flag value or an environment variable) becomes its value. */
type Kind = 'string' | 'integer' | 'boolean' | 'list' | 'auth';

/** One option. */
export interface OptionSpec {
  /** `--flag-name` of `heliosdb serve`. */
  readonly flag: string;
  /** The `HELIOSDB_*` environment variable. */
  readonly env: string;
  readonly kind: Kind;
  /** The default; undefined: unset means off. */
  readonly default: unknown;
  /** The default as the docs show it, when its value alone would not say it. */
  readonly shown?: string;
  /** One sentence for `--help` and the README. */
  readonly description: string;
}

function o<K extends Kind, D>(flag: string, env: string, kind: K, def: D, description: string, shown?: string) {
  return { flag, env, kind, default: def, description, ...(shown ? { shown } : {}) } as const;
}

const MiB = 1024 * 1024;

/** See the file comment. */
export const serverOptionTable = {
  host: o('--host', 'HELIOSDB_HOST', 'string', '127.0.0.1', 'host both listeners bind to'),
  port: o('--port', 'HELIOSDB_PORT', 'integer', 7700, 'native gRPC (HTTP/2) port; 0 picks a free one'),
  httpPort: o(
    '--http-port',
    'HELIOSDB_HTTP_PORT',
    'integer',
    7701,
    'Connect, gRPC-Web, gRPC and JSON port (HTTP/1.1 and h2c); 0 picks a free one, -1 disables it',
  ),
  cqlPort: o(
    '--cql-port',
    'HELIOSDB_CQL_PORT',
    'integer',
    9042,
    'Cassandra CQL native protocol v4 port (docs/cql.md); 0 picks a free one, -1 disables it',
    '9042 (0 when --port is 0)',
  ),
  pgPort: o(
    '--pg-port',
    'HELIOSDB_PG_PORT',
    'integer',
    7702,
    'PostgreSQL wire-protocol port (psql, pgbench, PostgreSQL drivers); 0 picks a free one, -1 disables it',
    '7702 (a free one when --port is 0)',
  ),
  databaseUrl: o(
    '--database-url',
    'HELIOSDB_DATABASE_URL',
    'string',
    undefined as string | undefined,
    "PostgreSQL URL of the server's own login",
    'none: embedded PGlite',
  ),
  dataDir: o(
    '--data-dir',
    'HELIOSDB_DATA_DIR',
    'string',
    undefined as string | undefined,
    'directory the embedded PGlite keeps its data in',
    'none: in memory',
  ),
  poolSize: o(
    '--pool-size',
    'HELIOSDB_POOL_SIZE',
    'integer',
    20,
    'database connections, every login together (PostgreSQL; PGlite is one session)',
  ),
  corsOrigins: o(
    '--cors-origin',
    'HELIOSDB_CORS_ORIGIN',
    'list',
    [] as string[],
    'browser origins allowed to call the HTTP listener, comma-separated; * allows any',
    'none',
  ),
  maxMessageBytes: o(
    '--max-message-bytes',
    'HELIOSDB_MAX_MESSAGE_BYTES',
    'integer',
    16 * MiB,
    'largest request or response message on both listeners',
    '16 MiB',
  ),
  statementTimeoutMs: o(
    '--statement-timeout-ms',
    'HELIOSDB_STATEMENT_TIMEOUT_MS',
    'integer',
    300_000,
    'statement timeout (0 disables it; PGlite cannot enforce one)',
  ),
  maxUnaryRows: o(
    '--max-unary-rows',
    'HELIOSDB_MAX_UNARY_ROWS',
    'integer',
    100_000,
    'most rows a unary query returns (larger results must stream)',
  ),
  maxOpenTransactions: o(
    '--max-transactions',
    'HELIOSDB_MAX_TRANSACTIONS',
    'integer',
    1000,
    'transactions and reserved sessions open at once',
  ),
  maxTransactionsPerPrincipal: o(
    '--max-transactions-per-principal',
    'HELIOSDB_MAX_TRANSACTIONS_PER_PRINCIPAL',
    'integer',
    0,
    'transactions and reserved sessions one principal may hold; 0 is half of --pool-size',
  ),
  maxConnectionsPerPrincipal: o(
    '--max-connections-per-principal',
    'HELIOSDB_MAX_CONNECTIONS_PER_PRINCIPAL',
    'integer',
    0,
    "database connections one user's calls may hold at once on PostgreSQL (its keys together; the rest wait); 0 is half of --pool-size",
  ),
  pgPortMaxBackends: o(
    '--pg-port-max-backends',
    'HELIOSDB_PG_PORT_MAX_BACKENDS',
    'integer',
    0,
    "PostgreSQL backends the pg port's clients may hold at once (one per client, besides --pool-size; beyond it a client is refused with 53300); 0 is --pool-size",
  ),
  transactionIdleTimeoutMs: o(
    '--transaction-idle-timeout-ms',
    'HELIOSDB_TRANSACTION_IDLE_TIMEOUT_MS',
    'integer',
    60_000,
    'a transaction or reserved session unused this long is ended',
  ),
  acquireTimeoutMs: o(
    '--acquire-timeout-ms',
    'HELIOSDB_ACQUIRE_TIMEOUT_MS',
    'integer',
    30_000,
    'longest wait for a free database connection',
  ),
  shutdownGraceMs: o('--shutdown-grace-ms', 'HELIOSDB_SHUTDOWN_GRACE_MS', 'integer', 10_000, 'how long shutdown waits for calls in flight'),
  logLevel: o(
    '--log-level',
    'HELIOSDB_LOG_LEVEL',
    'string',
    'info',
    'fatal, error, warn, info, debug, trace or silent (readable on a terminal, JSON otherwise)',
  ),
  tlsCert: o(
    '--tls-cert',
    'HELIOSDB_TLS_CERT',
    'string',
    undefined as string | undefined,
    'TLS certificate (chain) of both listeners: a PEM file or PEM text',
    'none: cleartext',
  ),
  tlsKey: o(
    '--tls-key',
    'HELIOSDB_TLS_KEY',
    'string',
    undefined as string | undefined,
    'the TLS private key: a PEM file or PEM text',
    'none',
  ),
  tlsClientCa: o(
    '--tls-client-ca',
    'HELIOSDB_TLS_CLIENT_CA',
    'string',
    undefined as string | undefined,
    'CA of client certificates: set, both listeners require one (mutual TLS)',
    'none',
  ),
  auth: o(
    '--auth',
    'HELIOSDB_AUTH',
    'auth',
    undefined as 'none' | 'required' | undefined,
    'required: every call but health checks and Login needs credentials; none: they are optional',
    'none on a loopback host; elsewhere required to be given',
  ),
  allowInsecurePassword: o(
    '--allow-insecure-password',
    'HELIOSDB_ALLOW_INSECURE_PASSWORD',
    'boolean',
    false,
    'accept Login passwords without TLS (local development only)',
  ),
  jwksUrl: o(
    '--jwks-url',
    'HELIOSDB_JWKS_URL',
    'string',
    undefined as string | undefined,
    'JWKS URL of the OAuth 2.0 identity provider whose access tokens are accepted',
    'none',
  ),
  jwtIssuer: o(
    '--jwt-issuer',
    'HELIOSDB_JWT_ISSUER',
    'string',
    undefined as string | undefined,
    'required iss of access tokens (with --jwks-url)',
    'none',
  ),
  jwtAudience: o(
    '--jwt-audience',
    'HELIOSDB_JWT_AUDIENCE',
    'string',
    undefined as string | undefined,
    'required aud of access tokens (with --jwks-url)',
    'none',
  ),
  jwtUserClaim: o('--jwt-user-claim', 'HELIOSDB_JWT_USER_CLAIM', 'string', 'sub', 'access-token claim naming the HeliosDB user'),
  jwtAlgorithms: o(
    '--jwt-algorithms',
    'HELIOSDB_JWT_ALGORITHMS',
    'list',
    ['RS256', 'PS256', 'ES256', 'EdDSA'],
    'accepted JWT algorithms, comma-separated (never none or HS*)',
  ),
  sessionTtlMs: o('--session-ttl-ms', 'HELIOSDB_SESSION_TTL_MS', 'integer', 900_000, 'lifetime of a Login session token'),
  authCacheMs: o(
    '--auth-cache-ms',
    'HELIOSDB_AUTH_CACHE_MS',
    'integer',
    5000,
    'how long a verified token is trusted before the store is asked again',
  ),
  authFailureLimit: o(
    '--auth-failure-limit',
    'HELIOSDB_AUTH_FAILURE_LIMIT',
    'integer',
    5,
    'failed authentications of an address or user name before attempts are slowed down',
  ),
  authMaxDelayMs: o(
    '--auth-max-delay-ms',
    'HELIOSDB_AUTH_MAX_DELAY_MS',
    'integer',
    30_000,
    'the longest slow-down of failing authentication attempts',
  ),
  idempotencyWindowMs: o(
    '--idempotency-window-ms',
    'HELIOSDB_IDEMPOTENCY_WINDOW_MS',
    'integer',
    86_400_000,
    "how long a keyed write's outcome is kept for its retries",
    '24 h',
  ),
  maxConnections: o(
    '--max-connections',
    'HELIOSDB_MAX_CONNECTIONS',
    'integer',
    1000,
    'client connections per listener; more are closed at once',
  ),
  idleConnectionTimeoutMs: o(
    '--idle-connection-timeout-ms',
    'HELIOSDB_IDLE_CONNECTION_TIMEOUT_MS',
    'integer',
    300_000,
    'a client connection without a call this long is closed',
  ),
  maxConcurrentStreams: o(
    '--max-concurrent-streams',
    'HELIOSDB_MAX_CONCURRENT_STREAMS',
    'integer',
    100,
    'calls in progress on one client connection',
  ),
  maxPreparedStatements: o(
    '--max-prepared-statements',
    'HELIOSDB_MAX_PREPARED_STATEMENTS',
    'integer',
    1000,
    'prepared statements remembered per principal (least recently used forgotten first)',
  ),
  preparedStatementTtlMs: o(
    '--prepared-statement-ttl-ms',
    'HELIOSDB_PREPARED_STATEMENT_TTL_MS',
    'integer',
    3_600_000,
    'a prepared statement unused this long is forgotten',
  ),
  maxCopyBytes: o(
    '--max-copy-bytes',
    'HELIOSDB_MAX_COPY_BYTES',
    'integer',
    256 * MiB,
    'the largest COPY FROM on PGlite, which reads it from memory',
    '256 MiB',
  ),
  pgIdleInTransactionTimeoutMs: o(
    '--pg-idle-in-transaction-timeout-ms',
    'HELIOSDB_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS',
    'integer',
    60_000,
    'a pg-port client idle this long inside a transaction block on PGlite, whose one session it holds, is rolled back and disconnected (25P03); 0 never',
  ),
  databaseApplicationName: o(
    '--database-application-name',
    'HELIOSDB_DATABASE_APPLICATION_NAME',
    'string',
    'heliosdb',
    "the connections' application_name between calls",
  ),
} as const satisfies Record<string, OptionSpec>;

type Table = typeof serverOptionTable;
type ValueOf<S> = S extends { kind: 'integer' }
  ? number
  : S extends { kind: 'boolean' }
    ? boolean
    : S extends { kind: 'list' }
      ? string[]
      : S extends { kind: 'auth' }
        ? 'none' | 'required'
        : string;

/** The option names. */
export type ServerOptionName = keyof Table;

/**
 * Options of `startServer` and `heliosdb serve`: every option of the server (the table in
 * `options.ts`), each optional (its default applies); `heliosdb serve --help` and the README list
 * their flags, variables, defaults and meanings.
 */
export type ServerOptions = { [K in ServerOptionName]?: ValueOf<Table[K]> };

/** Options that have no default (unset means off). */
type OptionalKeys = { [K in ServerOptionName]: Table[K]['default'] extends undefined ? K : never }[ServerOptionName];

/** Every option with its default applied. */
export type ResolvedServerOptions = { [K in Exclude<ServerOptionName, OptionalKeys>]: ValueOf<Table[K]> } & {
  [K in OptionalKeys]?: ValueOf<Table[K]>;
};

/** The defaults of every server option. */
export const serverDefaults: ResolvedServerOptions = Object.fromEntries(
  Object.entries(serverOptionTable)
    .filter(([, s]) => s.default !== undefined)
    .map(([k, s]) => [k, s.default]),
) as ResolvedServerOptions;

/** The environment variable that sets each option. */
export function envNameOf(key: ServerOptionName): string {
  return serverOptionTable[key].env;
}

/** Parses one option from its text form (a flag or an environment variable). */
export function parseOption(key: ServerOptionName, text: string): ServerOptions[ServerOptionName] {
  const spec: OptionSpec = serverOptionTable[key];
  switch (spec.kind) {
    case 'auth':
      if (text !== 'none' && text !== 'required') throw new Error(`${spec.flag} must be none or required, got ${JSON.stringify(text)}`);
      return text;
    case 'boolean':
      if (/^(1|true|yes|on)$/i.test(text)) return true;
      if (/^(0|false|no|off)$/i.test(text)) return false;
      throw new Error(`${spec.flag} must be true or false, got ${JSON.stringify(text)}`);
    case 'list':
      return text
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    case 'integer': {
      const n = Number(text);
      if (text.trim() === '' || !Number.isInteger(n)) throw new Error(`${spec.flag} must be an integer, got ${JSON.stringify(text)}`);
      return n;
    }
    default:
      return text;
  }
}

/** Options read from `HELIOSDB_*` environment variables. */
export function optionsFromEnv(env: Record<string, string | undefined> = process.env): ServerOptions {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(serverOptionTable) as ServerOptionName[]) {
    const v = env[serverOptionTable[key].env];
    if (v !== undefined && v !== '') out[key] = parseOption(key, v);
  }
  return out as ServerOptions;
}

/** Applies defaults to explicit options; unknown option names are an error that names the nearest. */
export function resolveOptions(options: ServerOptions): ResolvedServerOptions {
  const out: Record<string, unknown> = { ...serverDefaults };
  for (const [k, v] of Object.entries(options)) {
    if (!(k in serverOptionTable))
      throw new Error(`unknown server option ${JSON.stringify(k)}${suggestion(k, Object.keys(serverOptionTable))}`);
    if (v !== undefined) out[k] = v;
  }
  return out as ResolvedServerOptions;
}

/** `; did you mean X?` for the nearest of `names` (by edit distance), or ''. */
export function suggestion(given: string, names: readonly string[]): string {
  let best = '';
  let bestD = Infinity;
  for (const n of names) {
    const d = editDistance(given.toLowerCase(), n.toLowerCase());
    if (d < bestD) {
      best = n;
      bestD = d;
    }
  }
  return bestD <= Math.max(2, Math.floor(given.length / 3)) ? `; did you mean ${best}?` : '';
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}
