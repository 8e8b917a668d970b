/**
 * Limits both listeners apply to client connections before any call is authenticated: how many
 * connections a listener holds at once, how long a connection may sit without a call, how long a
 * new connection has to send its first request headers, and how much one HTTP/2 connection may
 * hold.
 * @packageDocumentation
 */
import type http2 from 'node:http2';
import net from 'node:net';
import type { Logger } from 'pino';
import { serverDefaults } from '../options.js';

/** The connection limits of one listener (the server options of the same names). */
export interface ConnectionLimits {
  /** Most client connections the listener holds at once; further ones are closed on accept. */
  maxConnections: number;
  /** A connection without a call in progress for this long is closed, ms. */
  idleConnectionTimeoutMs: number;
  /** Most calls (HTTP/2 streams) in progress on one connection. */
  maxConcurrentStreams: number;
}

/** The limits when a listener is given none: the server options' defaults (1000, 300000 ms, 100). */
export const defaultConnectionLimits: ConnectionLimits = {
  maxConnections: serverDefaults.maxConnections,
  idleConnectionTimeoutMs: serverDefaults.idleConnectionTimeoutMs,
  maxConcurrentStreams: serverDefaults.maxConcurrentStreams,
};

/**
 * Longest time a new connection has to send its first complete request headers (HTTP/1.1
 * headers, an HTTP/2 HEADERS frame), ms: slow-header ("slowloris") protection. The effective
 * value is the smaller of this and the idle timeout, since a connection that sent nothing is idle.
 */
export const headersTimeoutMs = 10_000;

/**
 * How long a started request may take, ms. HTTP/1.1: the longest time its whole request may take
 * (Node's `requestTimeout`; HTTP/1.1 carries unary calls only). HTTP/2 and gRPC: the longest time
 * a request may send nothing while the server waits for it: the timer restarts with every byte
 * (gRPC listener: every message), and does not run while the handler is not reading, so a
 * client-streaming call that keeps sending (a long CopyFrom) is never cut.
 */
export const requestTimeoutMs = 300_000;

/**
 * Most requests one listener receives at once that have not arrived whole (headers sent, body
 * not yet ended). Over it, a connection that already has such a request is refused new ones
 * (HTTP/2: RST_STREAM REFUSED_STREAM; gRPC listener: UNAVAILABLE; HTTP/1.1: 503) before any
 * handler runs, unless they turn out to have arrived whole right away (HTTP/2: with what was read
 * with them; gRPC unary calls: within 100 ms). A connection without one may always start one, so
 * the count passes the cap by at most one per connection, and clients that send their requests
 * whole keep being served while others hold it.
 */
export const maxIncompleteRequests = 2000;

/**
 * gRPC listener: most calls one connection may leave unfinished (the server ended them before
 * their request ended: refused over {@link maxIncompleteRequests}, cut for sending nothing,
 * cancelled mid-request) before the connection is closed. grpc-js cannot reset one stream, so
 * such a stream stays open until the client closes it.
 */
export const maxAbandonedStreams = 8;

/** Memory nghttp2 may hold for one HTTP/2 connection (headers, queued frames), MB; both listeners. */
export const maxSessionMemoryMb = 64;

/** The slow-header deadline in force for `limits`. */
export function headersDeadlineOf(limits: ConnectionLimits): number {
  return Math.max(1, Math.min(headersTimeoutMs, limits.idleConnectionTimeoutMs));
}

/** A listening socket that holds at most `maxConnections` client connections. */
export interface LimitedListener {
  readonly server: net.Server;
  /** Client connections open now (raw sockets, TLS or not). */
  readonly sockets: ReadonlySet<net.Socket>;
  readonly port: number;
}

/** How often a flood of refused connections is logged at most, ms. */
const dropLogIntervalMs = 10_000;

/**
 * Listens on `host:port` and hands each accepted socket to `onSocket`. Node's own
 * `net.Server.maxConnections` closes a connection over the cap right after accept, before any byte
 * is read from it; the refusals are logged as one warning per 10 s at most.
 */
export async function listenLimited(
  opts: { host: string; port: number; maxConnections: number; name: string; log: Logger },
  onSocket: (socket: net.Socket) => void,
): Promise<LimitedListener> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    onSocket(socket);
  });
  server.maxConnections = Math.max(1, opts.maxConnections);
  let dropped = 0;
  let lastLog = 0;
  server.on('drop', () => {
    dropped++;
    const now = Date.now();
    if (now - lastLog >= dropLogIntervalMs) {
      lastLog = now;
      opts.log.warn(
        { listener: opts.name, maxConnections: server.maxConnections, refused: dropped },
        'connection limit reached: refusing new connections',
      );
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // `[::1]` is how a URL writes an IPv6 host; net.Server wants it bare.
    server.listen(opts.port, opts.host.replace(/^\[(.*)\]$/, '$1'), () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  return { server, sockets, port: (server.address() as net.AddressInfo).port };
}

/** Deadlines {@link limitSessions} applies to the HTTP/2 sessions of a server, ms. */
export interface SessionDeadlines {
  /** A session without an open stream is closed after this long. */
  idleMs: number;
  /** A new session has this long to open its first stream (a complete HEADERS block). */
  headersMs: number;
}

/**
 * Applies `deadlines` to the HTTP/2 sessions of `h2`: pings and SETTINGS do not keep a session
 * busy, an open stream (such as a health Watch) does. Node's `Http2Session.setTimeout` counts any
 * frame as activity, so this is done here (requests that stop sending: ./http-request-gate.ts).
 * Returns the sessions it tracks.
 */
export function limitSessions(h2: http2.Http2Server, deadlines: SessionDeadlines): Set<http2.ServerHttp2Session> {
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    let open = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => closeSession(session), ms);
      timer.unref();
    };
    arm(deadlines.headersMs);
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      open++;
      clearTimeout(timer);
      timer = undefined;
      stream.once('close', () => {
        open--;
        if (open === 0 && !session.closed && !session.destroyed) arm(deadlines.idleMs);
      });
    });
    session.once('close', () => {
      clearTimeout(timer);
      sessions.delete(session);
    });
  });
  return sessions;
}

/** Ends a session with GOAWAY; destroys it if the peer does not let it finish within a second. */
function closeSession(session: http2.ServerHttp2Session): void {
  if (session.closed || session.destroyed) return;
  session.close();
  setTimeout(() => session.destroy(), 1000).unref();
}
