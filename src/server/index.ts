/**
 * `@heliosdb/server`: the programmatic API of the HeliosDB server, for embedding it in a
 * Node.js process (tests, local development, a custom launcher). The `heliosdb serve` command is
 * built on the same API.
 *
 * ```ts
 * import { startServer } from '@heliosdb/server';
 *
 * const server = await startServer({ port: 0, httpPort: 0 });
 * console.log(server.grpcUrl, server.httpUrl);
 * await server.close();
 * ```
 *
 * Node.js only: the server uses native gRPC, HTTP/2 and PGlite or PostgreSQL.
 * @packageDocumentation
 * @module @heliosdb/server
 */
export { type HeliosServer, type StartServerOptions, startServer } from './server.js';
export { optionsFromEnv, type ResolvedServerOptions, type ServerOptions, serverDefaults } from './options.js';
