#!/usr/bin/env node
/**
 * The `heliosdb` command: `heliosdb serve [flags]` runs the server. Every flag can also be set
 * with its `HELIOSDB_*` environment variable; flags win. `heliosdb user ...`, `heliosdb apikey ...`
 * and `heliosdb auth init` manage users and API keys in a PostgreSQL database (see ./admin.ts).
 * @packageDocumentation
 */
import { startServer } from '../server.js';
import { VERSION } from '../version.js';
import { adminCommand, adminUsage } from './admin.js';
import { createLogger } from './log.js';
import { flagsHelp, parseServeArgs, UsageError } from './serve-args.js';

function usage(): string {
  return `heliosdb ${VERSION}

Usage:
  heliosdb serve [flags]   run the server (embedded PGlite unless --database-url is given)
  heliosdb version         print the version
${adminUsage}

Flags of heliosdb serve:
${flagsHelp()}
`;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'version' || command === '--version') {
    console.log(VERSION);
    return;
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    console.log(usage());
    return;
  }
  if (command === 'user' || command === 'apikey' || command === 'auth') {
    await adminCommand(command, rest);
    return;
  }
  if (command !== 'serve') throw new UsageError(`unknown command ${command}`);
  const { options, help } = parseServeArgs(rest);
  if (help) {
    console.log(usage());
    return;
  }
  const logger = createLogger(options.logLevel ?? 'info');
  const server = await startServer({ ...options, logger });
  if (!server.options.databaseUrl && !server.options.dataDir) {
    logger.info(
      'using the embedded in-memory PGlite engine: data is lost on exit (--data-dir DIR keeps it, --database-url uses PostgreSQL)',
    );
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      // A second Ctrl-C (or signal) does not wait for the drain.
      logger.warn(`${signal} again: exiting now`);
      process.exit(130);
    }
    stopping = true;
    logger.info(`${signal} received: draining calls in flight (again to exit at once)`);
    server.close().then(
      () => process.exit(0),
      (e) => {
        logger.error({ err: e }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`heliosdb: ${e instanceof Error ? e.message : String(e)}`);
  if (e instanceof UsageError) console.error(`\nrun heliosdb --help for every command and flag`);
  process.exit(e instanceof UsageError ? 2 : 1);
});
