/**
 * The CQL listener (`heliosdb serve --cql-port`): a TCP (or TLS) server speaking the Cassandra
 * native protocol v4, one {@link CqlConnection} per client, prepared statements shared between
 * them, SCHEMA_CHANGE events to the connections that registered for them.
 * @packageDocumentation
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { serverDefaults } from '../options.js';
import { commonNameOf, httpTlsOptions, type ServerTls, tlsHandshakeTimeoutMs } from '../tls.js';
import type { ScopeDeps } from '../call/scope.js';
import type { CqlAuth } from './auth.js';
import { CqlConnection } from './connection.js';
import { PreparedCache } from './prepared.js';

/** Options of {@link startCqlListener}. */
export interface CqlListenerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** TLS for every connection; undefined: plain TCP. */
  readonly tls: ServerTls | undefined;
  /** Undefined: no authentication. */
  readonly auth: CqlAuth | undefined;
  readonly scope: ScopeDeps;
  /** The largest frame body accepted, bytes. */
  readonly maxFrameBytes: number;
  /** At most this many client connections (0: no limit). */
  readonly maxConnections: number;
  /** A connection with no request in progress this long is closed, ms. Default the server option's (300000). */
  readonly idleConnectionTimeoutMs?: number;
  /** Most requests in progress on one connection. Default the server option's (100). */
  readonly maxConcurrentStreams?: number;
  /** Prepared statements remembered per principal. Default the server option's (1000). */
  readonly maxPreparedStatements?: number;
  /** A prepared statement unused this long is forgotten, ms. Default the server option's. */
  readonly preparedStatementTtlMs?: number;
  /** How often an open connection's credential is asked again, ms. Default the server option's (5000). */
  readonly authCacheMs?: number;
  /** system.local's data_center (what drivers' localDataCenter must name). Default `datacenter1`. */
  readonly dataCenter?: string;
  readonly log: Logger;
}

/** A running CQL listener. */
export interface CqlListener {
  readonly port: number;
  /** Open client connections. */
  connections(): number;
  close(): Promise<void>;
}

/** The Cassandra release system.local reports (the schema tables of 3.x are the ones answered). */
export const releaseVersion = '3.11.16';

/**
 * How long a new connection has to finish its STARTUP and authentication, ms (at most the idle
 * timeout); a TLS handshake has {@link tlsHandshakeTimeoutMs} before that.
 */
export const cqlHandshakeTimeoutMs = 10_000;

/** Starts the listener. */
export async function startCqlListener(o: CqlListenerOptions): Promise<CqlListener> {
  const open = new Set<CqlConnection>();
  const prepared = new PreparedCache(
    o.maxPreparedStatements ?? serverDefaults.maxPreparedStatements,
    o.preparedStatementTtlMs ?? serverDefaults.preparedStatementTtlMs,
  );
  const idleTimeoutMs = Math.max(1, o.idleConnectionTimeoutMs ?? serverDefaults.idleConnectionTimeoutMs);
  const onSocket = (socket: net.Socket, encrypted: boolean) => {
    if (o.maxConnections > 0 && open.size >= o.maxConnections) {
      // Full: the oldest connection still without a principal makes room, so connections that
      // never authenticate cannot keep authenticated clients out; none: the new one is refused.
      let evicted = false;
      for (const c of open)
        if (!c.isAuthenticated) {
          c.close();
          open.delete(c);
          evicted = true;
          break;
        }
      if (!evicted) {
        socket.destroy();
        return;
      }
    }
    socket.setNoDelay(true);
    const cn = encrypted ? commonNameOf((socket as tls.TLSSocket).getPeerCertificate?.()) : undefined;
    const conn = new CqlConnection(
      socket,
      { address: socket.remoteAddress ?? '', encrypted, ...(cn ? { certificateCommonName: cn } : {}) },
      {
        scope: o.scope,
        auth: o.auth,
        prepared,
        maxFrameBytes: o.maxFrameBytes,
        maxInFlight: Math.max(1, o.maxConcurrentStreams ?? serverDefaults.maxConcurrentStreams),
        idleTimeoutMs,
        handshakeTimeoutMs: cqlHandshakeTimeoutMs,
        authCacheMs: o.authCacheMs ?? serverDefaults.authCacheMs,
        dataCenter: o.dataCenter ?? 'datacenter1',
        releaseVersion,
        log: o.log,
        onSchemaChange(c) {
          prepared.invalidate(c);
          for (const other of open) other.sendEvent(c);
        },
      },
    );
    open.add(conn);
    socket.on('close', () => open.delete(conn));
  };
  const server = o.tls ? tls.createServer(httpTlsOptions(o.tls), (s) => onSocket(s, true)) : net.createServer((s) => onSocket(s, false));
  server.on('error', (e) => o.log.error({ err: e }, 'CQL listener error'));
  // A handshake that fails or passes tlsHandshakeTimeoutMs is reported here; Node leaves its socket open.
  server.on('tlsClientError', (_e: Error, s: tls.TLSSocket) => s.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections: () => open.size,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of open) c.close();
      }),
  };
}
