/**
 * `startServer`: the HeliosDB server with both listeners on one service implementation.
 * @packageDocumentation
 */
import type * as grpc from '@grpc/grpc-js';
import pino, { type Logger } from 'pino';
import { Health } from '@heliosdb/client/wire';
import { AuthService } from '@heliosdb/client/wire';
import { DatabaseService, SessionService } from '@heliosdb/client/wire';
import { createAuthService } from './auth/auth-service.js';
import { Authenticator } from './auth/authenticator.js';
import { JwtVerifier } from './auth/jwt.js';
import { mockScramKey } from './auth/scram.js';
import { AuthThrottle } from './auth/throttle.js';
import { openAuthData } from './auth/setup.js';
import type { AuthAdmin } from './auth/store.js';
import { type Backend, createBackend } from './backend.js';
import { LoginResolver } from './backend/logins.js';
import { Idempotency } from './idempotency.js';
import { NotificationHub } from './notifications.js';
import { createDatabaseService } from './service/database-service.js';
import { createSessionService } from './service/session.js';
import { loadSqlParser } from './sql/analyze.js';
import { createHealthService, HealthState } from './health-service.js';
import { startGrpcListener } from './listeners/grpc-listener.js';
import { type HttpListener, startHttpListener } from './listeners/http-listener.js';
import { type ResolvedServerOptions, resolveOptions, type ServerOptions } from './options.js';
import { type PgWireListener, startPgWireListener } from './pgwire/listener.js';
import { SessionManager } from './sessions.js';
import { traceService } from './telemetry/call-tracing.js';
import { ServerMetrics } from './telemetry/server-metrics.js';
import { TypeNames } from './type-names.js';
import { grpcServerCredentials, loadServerTls } from './tls.js';
import { CqlAuth } from './cql/auth.js';
import { type CqlListener, startCqlListener } from './cql/listener.js';

/** A running server. */
export interface HeliosServer {
  /** `grpc://host:port` of the native gRPC listener (`grpcs://` with TLS). */
  readonly grpcUrl: string;
  /** `http://host:port` of the HTTP listener (Connect, gRPC-Web, JSON; `https://` with TLS); undefined when disabled. */
  readonly httpUrl: string | undefined;
  /** Users and API keys in this server's database (the same as the `heliosdb user` / `apikey` commands). */
  readonly auth: AuthAdmin;
  /** `none` or `required`. */
  readonly authMode: 'none' | 'required';
  /** Bound ports (useful with port 0). */
  readonly port: number;
  readonly httpPort: number | undefined;
  /** Port of the CQL listener (docs/cql.md); undefined when disabled. */
  readonly cqlPort: number | undefined;
  /** `postgres://host:port` of the PostgreSQL wire-protocol listener; undefined when disabled. */
  readonly pgUrl: string | undefined;
  /** Bound port of the PostgreSQL wire-protocol listener; undefined when disabled. */
  readonly pgPort: number | undefined;
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

/** A listener that could not start, in the user's terms. */
function listenError(e: unknown, host: string): unknown {
  const err = e as NodeJS.ErrnoException & { port?: number };
  if (err?.code === 'EADDRINUSE') {
    return new Error(
      `${host}:${err.port ?? '?'} is already in use (another heliosdb serve, or another program, listens there): stop it, or choose other ports with --port, --http-port, --pg-port and --cql-port (0 picks a free one)`,
    );
  }
  if (err?.code === 'EACCES')
    return new Error(
      `not allowed to listen on ${host}:${err.port ?? '?'} (ports below 1024 need privileges): choose another with --port / --http-port`,
    );
  if (err?.code === 'EADDRNOTAVAIL') return new Error(`${host} is not an address of this machine: choose another --host`);
  return e;
}

/** Whether `host` only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Starts the HeliosDB server. Explicit options win over defaults (the CLI adds `HELIOSDB_*`). */
export async function startServer(options: StartServerOptions = {}): Promise<HeliosServer> {
  const { logger, ...rest } = options;
  const opts = resolveOptions(rest);
  const log = logger ?? pino({ level: opts.logLevel, base: { service: 'heliosdb' } });
  const loopback = isLoopbackHost(opts.host);
  if (!opts.auth && !loopback) {
    throw new Error(
      `refusing to listen on ${opts.host} without authentication: pass --auth required (users, API keys, OAuth 2.0 or client certificates), or --auth none to run an open server deliberately`,
    );
  }
  const authMode = opts.auth ?? 'none';
  const serverTls = loadServerTls(opts);
  const jwt = opts.jwksUrl
    ? new JwtVerifier({
        jwksUrl: opts.jwksUrl,
        issuer: opts.jwtIssuer ?? '',
        audience: opts.jwtAudience ?? '',
        userClaim: opts.jwtUserClaim,
        algorithms: opts.jwtAlgorithms,
      })
    : undefined;
  await loadSqlParser();
  const backend: Backend = await createBackend(opts, log);
  let authData: Awaited<ReturnType<typeof openAuthData>>;
  try {
    authData = await openAuthData(opts, backend);
  } catch (e) {
    await backend.close();
    throw e;
  }
  const authenticator = new Authenticator({
    data: authData.data,
    mode: authMode,
    jwt,
    cacheMs: opts.authCacheMs,
    throttle: new AuthThrottle({ freeFailures: opts.authFailureLimit, maxDelayMs: opts.authMaxDelayMs }),
    log,
  });
  let metrics: ServerMetrics | undefined;
  const authenticate = async (call: Parameters<Authenticator['authenticate']>[0]) => {
    try {
      return await authenticator.authenticate(call);
    } catch (e) {
      metrics?.refused(call.service, call.method, e);
      throw e;
    }
  };
  const engineVersion = await backend.version();
  const sessions = new SessionManager(
    backend,
    {
      idleTimeoutMs: opts.transactionIdleTimeoutMs,
      maxOpen: opts.maxOpenTransactions,
      // The embedded engine is one session: any open transaction makes everyone wait anyway.
      maxPerPrincipal:
        backend.engine === 'pglite'
          ? opts.maxOpenTransactions
          : opts.maxTransactionsPerPrincipal > 0
            ? opts.maxTransactionsPerPrincipal
            : Math.max(1, Math.floor(opts.poolSize / 2)),
    },
    log,
  );
  const logins = new LoginResolver(backend.engine, async () => authData.serverKey ?? (authData.serverKey = await authData.readServerKey()));
  const idempotency = new Idempotency(backend, opts.idempotencyWindowMs, log);
  // Before any call can hold a connection (the embedded engine has one).
  await idempotency.init();
  const hub = new NotificationHub(backend, logins, log);
  const health = new HealthState(new Set([DatabaseService.typeName]));
  const database = createDatabaseService(
    {
      backend,
      sessions,
      logins,
      idempotency,
      options: opts,
      typeNames: new TypeNames(),
      engineVersion,
      authRequired: authMode === 'required',
      log,
    },
    hub,
  );
  metrics = new ServerMetrics({ pool: () => backend.stats(), openTransactions: () => sessions.size });
  const services = [
    {
      service: DatabaseService,
      impl: metrics.instrument(DatabaseService, traceService(DatabaseService, database.impl)),
    },
    { service: Health, impl: metrics.instrument(Health, createHealthService(health)) },
    {
      service: AuthService,
      impl: metrics.instrument(
        AuthService,
        createAuthService({
          data: authData.data,
          authenticator,
          sessionTtlMs: opts.sessionTtlMs,
          allowInsecurePassword: opts.allowInsecurePassword,
          log,
        }),
      ),
    },
  ];
  const registry = metrics.registry;
  let grpcServer: grpc.Server | undefined;
  let port: number;
  let httpListener: HttpListener | undefined;
  let cqlListener: CqlListener | undefined;
  // A server on a random gRPC port (tests, embedded use) takes a random CQL port too, unless told.
  const cqlPort = rest.cqlPort ?? (opts.port === 0 ? 0 : opts.cqlPort);
  let pgListener: PgWireListener | undefined;
  try {
    ({ server: grpcServer, port } = await startGrpcListener(
      {
        host: opts.host,
        port: opts.port,
        maxMessageBytes: opts.maxMessageBytes,
        credentials: grpcServerCredentials(serverTls),
        authenticate,
        limits: {
          maxConnections: opts.maxConnections,
          idleConnectionTimeoutMs: opts.idleConnectionTimeoutMs,
          maxConcurrentStreams: opts.maxConcurrentStreams,
        },
      },
      // Sessions (multiplexed unary calls over one bidi stream) only on the native gRPC listener.
      [...services, { service: SessionService, impl: createSessionService(database.impl, log) }],
      log,
    ));
    if (opts.httpPort >= 0) {
      httpListener = await startHttpListener(
        {
          host: opts.host,
          port: opts.httpPort,
          maxMessageBytes: opts.maxMessageBytes,
          corsOrigins: opts.corsOrigins,
          tls: serverTls,
          authenticate,
          metrics: {
            scrape: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
            authenticate,
          },
          limits: {
            maxConnections: opts.maxConnections,
            idleConnectionTimeoutMs: opts.idleConnectionTimeoutMs,
            maxConcurrentStreams: opts.maxConcurrentStreams,
          },
        },
        services,
        log,
      );
    }
    if (cqlPort >= 0) {
      cqlListener = await startCqlListener({
        host: opts.host,
        port: cqlPort,
        tls: serverTls,
        auth:
          authMode === 'required'
            ? new CqlAuth({
                authenticator,
                data: authData.data,
                allowInsecurePassword: opts.allowInsecurePassword,
                authCacheMs: opts.authCacheMs,
                log,
              })
            : undefined,
        scope: { backend, sessions, logins, idempotency, log },
        maxFrameBytes: opts.maxMessageBytes,
        maxConnections: opts.maxConnections,
        idleConnectionTimeoutMs: opts.idleConnectionTimeoutMs,
        maxConcurrentStreams: opts.maxConcurrentStreams,
        maxPreparedStatements: opts.maxPreparedStatements,
        preparedStatementTtlMs: opts.preparedStatementTtlMs,
        authCacheMs: opts.authCacheMs,
        log,
      });
    }
    // --pg-port follows --port 0 (a free port) unless given itself.
    const pgPort = rest.pgPort ?? (opts.port === 0 ? 0 : opts.pgPort);
    if (pgPort >= 0) {
      pgListener = await startPgWireListener({
        host: opts.host,
        port: pgPort,
        backend,
        logins,
        hub,
        auth: {
          mode: authMode,
          authenticator,
          data: authData.data,
          allowInsecurePassword: opts.allowInsecurePassword,
          mockKey: mockScramKey(authData.serverKey),
          log,
        },
        options: opts,
        serverTls,
        log,
      });
    }
  } catch (e) {
    grpcServer?.forceShutdown();
    await httpListener?.close(0);
    await authData.close();
    await backend.close();
    throw listenError(e, opts.host);
  }
  const hostForUrl = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const grpcUrl = `${serverTls ? 'grpcs' : 'grpc'}://${hostForUrl}:${port}`;
  const httpUrl = httpListener ? `${serverTls ? 'https' : 'http'}://${hostForUrl}:${httpListener.port}` : undefined;
  const pgUrl = pgListener ? `postgres://${hostForUrl}:${pgListener.port}` : undefined;
  log.info(
    {
      grpc: grpcUrl,
      http: httpUrl,
      cql: cqlListener ? `${hostForUrl}:${cqlListener.port}` : undefined,
      pg: pgUrl,
      engine: backend.engine,
      engineVersion,
      tls: !!serverTls,
      mutualTls: !!serverTls?.clientCa,
      auth: authMode,
    },
    'HeliosDB server listening',
  );
  if (authMode === 'none') {
    if (loopback)
      log.warn('authentication is off: any local process can connect (--auth required turns it on; the default only on loopback)');
    else
      log.warn(
        { host: opts.host },
        'authentication is off on a non-loopback address (--auth none): anyone who can reach this host can connect',
      );
  }
  // On PostgreSQL callers never run as the server's own login (each user has a login role), so
  // its privileges are no caller's; the embedded engine is one superuser session for everyone.
  if (authMode === 'required' && backend.engine === 'pglite') {
    log.warn(
      'the embedded engine is one superuser session: roles apply to ordinary statements, but they are no boundary against crafted SQL; use PostgreSQL for untrusted callers (docs/security.md)',
    );
  }
  if (!serverTls && !loopback)
    log.warn(
      { host: opts.host },
      'TLS is off on a non-loopback address: credentials and data cross the network in clear (--tls-cert, --tls-key)',
    );
  let closing: Promise<void> | undefined;
  return {
    grpcUrl,
    httpUrl,
    port,
    httpPort: httpListener?.port,
    cqlPort: cqlListener?.port,
    pgUrl,
    pgPort: pgListener?.port,
    engine: backend.engine,
    options: opts,
    auth: authData.admin,
    authMode,
    openTransactions: () => sessions.size,
    poolStats: () => backend.stats(),
    close() {
      closing ??= (async () => {
        health.shutDown();
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
        // Open transactions end now, not after the drain: no new call can continue them, and
        // in-flight calls may be waiting for the connections they hold (PGlite has only one).
        await Promise.all([
          grpcDone,
          httpListener?.close(grace),
          cqlListener?.close(),
          pgListener?.close(),
          sessions.closeAll(),
          hub.close(),
        ]);
        await sessions.closeAll(); // any begun during the drain
        database.close();
        await authData.close();
        await backend.close();
        log.info('HeliosDB server stopped');
      })();
      return closing;
    },
  };
}
