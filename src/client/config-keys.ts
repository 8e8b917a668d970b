/**
 * The check of the client's option names: any name the client does not know is refused with a pointer
 * to the right one (`connectionString` -> `url`), so that options written for node-postgres,
 * postgres.js or a typo never pass silently. Browser-safe.
 * @packageDocumentation
 */
import { ConfigurationError } from './errors.js';

const urlNote =
  "url: 'grpc://db.example.com:7700' for a HeliosDB server, or 'postgres://user@db.example.com:5432/app' to speak PostgreSQL's protocol to a PostgreSQL server (or to heliosdb's pg port) directly, or 'cql://user@db.example.com:9042/keyspace' to run CQL on heliosdb's CQL port";
const databaseNote = `${urlNote}; through a HeliosDB server, the server chooses the database`;

/** Options of other clients (node-postgres, postgres.js, mysql2, ...): the option to use instead, and a note. */
const aliases: Record<string, [option: string, note?: string]> = {
  connectionString: ['url', urlNote],
  connection: ['url', urlNote],
  host: ['url', urlNote],
  hostname: ['url', urlNote],
  port: ['url', urlNote],
  database: ['url', databaseNote],
  db: ['url', databaseNote],
  connectionTimeoutMillis: ['connectTimeoutMs'],
  connectTimeout: ['connectTimeoutMs'],
  connect_timeout: ['connectTimeoutMs', 'milliseconds, where postgres.js counts seconds'],
  max: ['maxConnections'],
  poolSize: ['maxConnections'],
  connectionLimit: ['maxConnections'],
  min: ['minConnections'],
  idleTimeoutMillis: ['idleTimeoutSeconds', 'seconds: divide by 1000'],
  idle_timeout: ['idleTimeoutSeconds'],
  max_lifetime: ['maxLifetimeSeconds'],
  maxLifetime: ['maxLifetimeSeconds'],
  statement_timeout: ['timeoutMs', 'the deadline of every call, ms; the statement is cancelled on the server when it passes'],
  statementTimeout: ['timeoutMs', 'the deadline of every call, ms; the statement is cancelled on the server when it passes'],
  query_timeout: ['timeoutMs'],
  queryTimeout: ['timeoutMs'],
  application_name: ['applicationName'],
  keepAlive: ['keepaliveIntervalMs', '0 turns keepalive pings off'],
  keepAliveInitialDelayMillis: ['keepaliveIntervalMs'],
  username: ['user'],
  pass: ['password'],
  tls: ['ssl', 'ssl: { ca, cert, key, servername, mode }'],
  ca: ['ssl', 'ssl: { ca }'],
  cert: ['ssl', 'ssl: { cert, key }'],
  key: ['ssl', 'ssl: { cert, key }'],
  servername: ['ssl', 'ssl: { servername }'],
  rejectUnauthorized: ['sslMode', "sslMode: 'require' checks no certificate, 'verify-ca' no host name"],
  credentials: ['ssl', 'ssl for TLS; user and password, apiKey or oauth for authentication'],
  channelOptions: [
    'keepaliveIntervalMs',
    'the client sets the grpc-js channel options itself: see keepaliveIntervalMs, maxMessageBytes, compression',
  ],
  sslmode: ['sslMode'],
  rowsAsArray: ['rowMode', "rowMode: 'array'"],
};

/** Edit distance (insertions, deletions, substitutions), case-insensitive; a few dozen short names, so the plain O(n*m) table. */
function distance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/**
 * The option meant by the unknown option `key` (among `knownOptions`) and a note on its use, or
 * undefined when nothing is close.
 */
export function suggestOption(key: string, knownOptions: readonly string[]): [option: string, note?: string] | undefined {
  const alias = aliases[key] ?? Object.entries(aliases).find(([k]) => k.toLowerCase() === key.toLowerCase())?.[1];
  if (alias) return alias;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of knownOptions) {
    const d = distance(key, name);
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  // Close enough to be a typo: a third of the name at most (and not a different word).
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)) ? [best] : undefined;
}

/**
 * Options of Node's TLS and grpc-js that are not client options: `resolveConfig` leaves them for
 * the entry point to refuse in its own words (the browser entry says that a browser cannot honour
 * them; the Node entry points at `ssl`).
 */
export const platformOptionNames: readonly string[] = [
  'tls',
  'ca',
  'cert',
  'key',
  'servername',
  'rejectUnauthorized',
  'credentials',
  'channelOptions',
];

/**
 * Throws ConfigurationError (`INVALID_CONFIG`) when `given` has options not in `knownOptions`
 * (nor in `passed`, left for a later check), naming each with the nearest known option. Options
 * set to undefined are ignored.
 */
export function checkOptionNames(given: object, knownOptions: readonly string[], passed: readonly string[] = []): void {
  const unknown = Object.keys(given).filter(
    (k) => !knownOptions.includes(k) && !passed.includes(k) && (given as Record<string, unknown>)[k] !== undefined,
  );
  if (unknown.length === 0) return;
  // One clause per suggestion: `"host", "port": use url (e.g. ...)`.
  const clauses = new Map<string, string[]>();
  for (const k of unknown) {
    const s = suggestOption(k, knownOptions);
    const advice = s ? `use ${s[0]}${s[1] ? ` (${s[1]})` : ''}` : 'not an option';
    clauses.set(advice, [...(clauses.get(advice) ?? []), `"${k}"`]);
  }
  const text = [...clauses].map(([advice, keys]) => `${keys.join(', ')}: ${advice}.`).join(' ');
  throw new ConfigurationError(
    `unknown client option${unknown.length > 1 ? 's' : ''} ${text} Every option is listed in ConnectionConfig and in the README's Client configuration.`,
  );
}
