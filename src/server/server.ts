/**
 * `startServer`: the HeliosDB server with both listeners on one service implementation.
 * @packageDocumentation
 */
import type * as grpc from '@grpc/grpc-js';
import pino, { type Logger } from 'pino';
import { Health, HealthCheckResponse_ServingStatus as Status } from '../../gen/grpc/health/v1/health_pb.js';
import { DatabaseService } from '../../gen/heliosdb/v1/database_pb.js';
import { type Backend, createBackend } from './backend.js';
import { createDatabaseService } from './database-service.js';
import { createHealthService, HealthState } from './health-service.js';
import { startGrpcListener } from './grpc-listener.js';
import { type HttpListener, startHttpListener } from './http-listener.js';
import { type ResolvedServerOptions, resolveOptions, type ServerOptions } from './options.js';
import { SessionManager } from './sessions.js';
import { TypeNames } from './type-names.js';

/** A running server. */
export interface HeliosServer {
  /** `grpc://host:port` of the native gRPC listener. */
  readonly grpcUrl: string;
  /** `http://host:port` of the HTTP listener (Connect, gRPC-Web, JSON); undefined when disabled. */
  readonly httpUrl: string | undefined;
  /** Bound ports (useful with port 0). */
  readonly port: number;
  readonly httpPort: number | undefined;
  /** `pglite` or `postgresql`. */
  readonly engine: string;
  /** The options in force. */
  readonly options: ResolvedServerOptions;
  /** Open interactive transactions. */
  openTransactions(): number;
  /** Database pool counters. */
  poolStats(): { total: number; idle: number; waiting: number };
  /** Graceful shutdown: stop accepting, drain in-flight calls, roll back open transactions. */
  close(): Promise<void>;
}

/** Options of {@link startServer}: the server options plus an optional logger. */
export interface StartServerOptions extends ServerOptions {
  /** A pino logger to use instead of one made from `logLevel`. */
  logger?: Logger;
}

/** Starts the HeliosDB server. Explicit options win over defaults (the CLI adds `HELIOSDB_*`). */
export async function startServer(options: StartServerOptions = {}): Promise<HeliosServer> {
  const { logger, ...rest } = options;
  const opts = resolveOptions(rest);
  const log = logger ?? pino({ level: opts.logLevel, base: { service: 'heliosdb' } });
  const backend: Backend = await createBackend(opts, log);
  const engineVersion = await backend.version();
  const sessions = new SessionManager(backend, opts.transactionIdleTimeoutMs, opts.maxOpenTransactions, log);
  const health = new HealthState(new Set([DatabaseService.typeName]));
  const services = [
    {
      service: DatabaseService,
      impl: createDatabaseService({ backend, sessions, options: opts, typeNames: new TypeNames(), engineVersion, log }),
    },
    { service: Health, impl: createHealthService(health) },
  ];
  let grpcServer: grpc.Server;
  let port: number;
  let httpListener: HttpListener | undefined;
  try {
    ({ server: grpcServer, port } = await startGrpcListener(
      { host: opts.host, port: opts.port, maxMessageBytes: opts.maxMessageBytes },
      services,
      log,
    ));
    if (opts.httpPort >= 0) {
      httpListener = await startHttpListener(
        { host: opts.host, port: opts.httpPort, maxMessageBytes: opts.maxMessageBytes, corsOrigins: opts.corsOrigins },
        services,
        log,
      );
    }
  } catch (e) {
    await backend.close();
    throw e;
  }
  const hostForUrl = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const grpcUrl = `grpc://${hostForUrl}:${port}`;
  const httpUrl = httpListener ? `http://${hostForUrl}:${httpListener.port}` : undefined;
  log.info({ grpc: grpcUrl, http: httpUrl, engine: backend.engine, engineVersion }, 'HeliosDB server listening');
  let closing: Promise<void> | undefined;
  return {
    grpcUrl,
    httpUrl,
    port,
    httpPort: httpListener?.port,
    engine: backend.engine,
    options: opts,
    openTransactions: () => sessions.size,
    poolStats: () => backend.stats(),
    close() {
      closing ??= (async () => {
        health.set(Status.NOT_SERVING);
        const grace = opts.shutdownGraceMs;
        const grpcDone = new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            grpcServer.forceShutdown();
            resolve();
          }, grace);
          grpcServer.tryShutdown(() => {
            clearTimeout(t);
            resolve();
          });
        });
        await Promise.all([grpcDone, httpListener?.close(grace)]);
        await sessions.closeAll();
        await backend.close();
        log.info('HeliosDB server stopped');
      })();
      return closing;
    },
  };
}
