#!/usr/bin/env node
/**
 * The `heliosdb` command: `heliosdb serve [flags]` runs the server. Every flag can also be set
 * with its `HELIOSDB_*` environment variable; flags win. `heliosdb user ...`, `heliosdb apikey ...`
 * and `heliosdb auth init` manage users and API keys in a PostgreSQL database (see ./admin.ts).
 * @packageDocumentation
 */
import { adminCommand, adminUsage } from './admin.js';
import { envNameOf, optionsFromEnv, parseOption, type ServerOptions, serverDefaults } from '../server/options.js';
import { startServer } from '../server/server.js';
import { VERSION } from '../server/version.js';

const flagNames: Record<string, keyof ServerOptions> = {
  '--host': 'host',
  '--port': 'port',
  '--http-port': 'httpPort',
  '--database-url': 'databaseUrl',
  '--data-dir': 'dataDir',
  '--pool-size': 'poolSize',
  '--cors-origin': 'corsOrigins',
  '--max-message-bytes': 'maxMessageBytes',
  '--statement-timeout-ms': 'statementTimeoutMs',
  '--max-unary-rows': 'maxUnaryRows',
  '--max-transactions': 'maxOpenTransactions',
  '--transaction-idle-timeout-ms': 'transactionIdleTimeoutMs',
  '--acquire-timeout-ms': 'acquireTimeoutMs',
  '--shutdown-grace-ms': 'shutdownGraceMs',
  '--log-level': 'logLevel',
  '--tls-cert': 'tlsCert',
  '--tls-key': 'tlsKey',
  '--tls-client-ca': 'tlsClientCa',
  '--auth': 'auth',
  '--allow-insecure-password': 'allowInsecurePassword',
  '--jwks-url': 'jwksUrl',
  '--jwt-issuer': 'jwtIssuer',
  '--jwt-audience': 'jwtAudience',
  '--jwt-user-claim': 'jwtUserClaim',
  '--jwt-algorithms': 'jwtAlgorithms',
  '--session-ttl-ms': 'sessionTtlMs',
  '--auth-cache-ms': 'authCacheMs',
  '--auth-failure-limit': 'authFailureLimit',
  '--idempotency-window-ms': 'idempotencyWindowMs',
  '--max-connections': 'maxConnections',
  '--idle-connection-timeout-ms': 'idleConnectionTimeoutMs',
  '--max-concurrent-streams': 'maxConcurrentStreams',
  '--max-transactions-per-principal': 'maxTransactionsPerPrincipal',
  '--max-prepared-statements': 'maxPreparedStatements',
  '--prepared-statement-ttl-ms': 'preparedStatementTtlMs',
  '--auth-max-delay-ms': 'authMaxDelayMs',
  '--max-copy-bytes': 'maxCopyBytes',
  '--database-application-name': 'databaseApplicationName',
};

function usage(): string {
  const lines = Object.entries(flagNames).map(([flag, key]) => {
    const def = (serverDefaults as unknown as Record<string, unknown>)[key];
    const shown = def === undefined ? '' : ` (default ${Array.isArray(def) ? def.join(',') || 'none' : String(def)})`;
    return `  ${flag.padEnd(32)} env ${envNameOf(key)}${shown}`;
  });
  return `heliosdb ${VERSION}

Usage:
  heliosdb serve [flags]   run the server (embedded PGlite unless --database-url is given)
  heliosdb version         print the version
${adminUsage}

Flags:
${lines.join('\n')}
`;
}

/** Parses `serve` flags over the environment's options. */
export function parseServeArgs(args: string[], env: Record<string, string | undefined> = process.env): ServerOptions {
  const opts: Record<string, unknown> = { ...optionsFromEnv(env) };
  for (let i = 0; i < args.length; i++) {
    let arg = args[i];
    let value: string | undefined;
    const eq = arg.indexOf('=');
    if (eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const key = flagNames[arg];
    if (!key) throw new Error(`unknown flag ${arg}\n\n${usage()}`);
    // Boolean flags may stand alone: --allow-insecure-password
    if (value === undefined && typeof (serverDefaults as unknown as Record<string, unknown>)[key] === 'boolean' && (args[i + 1] === undefined || args[i + 1].startsWith('--'))) {
      value = 'true';
    }
    value ??= args[++i];
    if (value === undefined) throw new Error(`flag ${arg} needs a value`);
    opts[key] = parseOption(key, value);
  }
  return opts as ServerOptions;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'version' || command === '--version') {
    console.log(VERSION);
    return;
  }
  if (command === 'user' || command === 'apikey' || command === 'auth') {
    await adminCommand(command, rest);
    return;
  }
  if (command !== 'serve') {
    console.log(usage());
    if (command && command !== 'help' && command !== '--help') process.exitCode = 2;
    return;
  }
  const server = await startServer(parseServeArgs(rest));
  if (!server.options.databaseUrl && !server.options.dataDir) {
    console.error('heliosdb: using the embedded in-memory PGlite engine (data is lost on exit; --data-dir DIR keeps it, --database-url uses PostgreSQL)');
  }
  if (server.authMode === 'none') {
    console.error(
      `heliosdb: authentication is off (--auth none${server.options.auth ? '' : ', the default on a loopback address'}): every client that reaches ${server.options.host} is trusted; --auth required turns it on`,
    );
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`heliosdb: ${signal} received, draining in-flight calls`);
    server.close().then(
      () => process.exit(0),
      (e) => {
        console.error(e);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`heliosdb: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
