/**
 * The HTTP listener: Connect, gRPC-Web and gRPC (plus plain JSON POSTs) through
 * `@connectrpc/connect-node`, on HTTP/1.1 and cleartext HTTP/2 (h2c) on one port, with CORS for
 * an allowlist of browser origins.
 * @packageDocumentation
 */
import http from 'node:http';
import http2 from 'node:http2';
import type net from 'node:net';
import tls from 'node:tls';
import type { DescService } from '@bufbuild/protobuf';
import { createContextValues, type Interceptor } from '@connectrpc/connect';
import type { Logger } from 'pino';
import { type PeerInfo, peerKey, principalKey } from '../auth/principal.js';
import type { Authenticate } from './grpc-listener.js';
import { createConnectHandler } from './connect-handler.js';
import {
  type ConnectionLimits,
  defaultConnectionLimits,
  headersDeadlineOf,
  limitSessions,
  listenLimited,
  maxIncompleteRequests,
  maxSessionMemoryMb,
  requestTimeoutMs,
} from './connection-limits.js';
import { httpRequestGate } from './http-request-gate.js';
import { type MetricsEndpoint, serveMetrics } from '../telemetry/metrics-endpoint.js';
import { commonNameOf, httpTlsOptions, type ServerTls } from '../tls.js';

/** Headers a browser client may send. */
const allowedHeaders = [
  'Content-Type',
  'Connect-Protocol-Version',
  'Connect-Timeout-Ms',
  'Connect-Accept-Encoding',
  'Connect-Content-Encoding',
  'Grpc-Timeout',
  'Grpc-Accept-Encoding',
  'Grpc-Encoding',
  'X-Grpc-Web',
  'X-User-Agent',
  'Authorization',
  'X-HeliosDB-Application-Name',
  'Idempotency-Key',
].join(', ');

/** Response headers a browser client may read. */
const exposedHeaders = [
  'Grpc-Status',
  'Grpc-Message',
  'Grpc-Status-Details-Bin',
  'Grpc-Encoding',
  'Content-Encoding',
  'Connect-Content-Encoding',
].join(', ');

/** Options of the HTTP listener. */
export interface HttpListenerOptions {
  host: string;
  port: number;
  maxMessageBytes: number;
  corsOrigins: string[];
  /** TLS (h2 and HTTP/1.1 by ALPN), with client certificates when it has a client CA; default cleartext. */
  tls?: ServerTls;
  /** Authenticates every call (a server-side Connect interceptor); default none. */
  authenticate?: Authenticate;
  /** Connection, idle and stream limits; default {@link defaultConnectionLimits}. */
  limits?: ConnectionLimits;
  /**
   * HTTP/1.1: longest time a started request has to arrive whole; HTTP/2: longest time a request
   * may send nothing while the server waits for it (then its stream is reset), ms. Default
   * {@link requestTimeoutMs} (300000).
   */
  requestTimeoutMs?: number;
  /** Requests receiving their body at once before more are refused. Default {@link maxIncompleteRequests} (2000). */
  maxIncompleteRequests?: number;
  /** Serves `GET /metrics` (Prometheus text, authenticated like every call); default none. */
  metrics?: MetricsEndpoint;
}

/** A started HTTP listener. */
export interface HttpListener {
  port: number;
  /** Requests receiving their body now (see {@link maxIncompleteRequests}). */
  readonly incompleteRequests: number;
  /** Stops accepting; waits for open requests up to `graceMs`, then cuts connections. */
  close(graceMs: number): Promise<void>;
}

type NodeHandler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

/** Wraps a handler with CORS for `origins` (`*` allows any). Disallowed origins get no CORS headers. */
export function withCors(origins: string[], next: NodeHandler): NodeHandler {
  const any = origins.includes('*');
  const allowed = new Set(origins);
  return (req, res) => {
    const origin = req.headers.origin;
    const ok = typeof origin === 'string' && (any || allowed.has(origin));
    if (ok) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
      res.setHeader('Access-Control-Expose-Headers', exposedHeaders);
    }
    if (req.method === 'OPTIONS') {
      if (ok) {
        res.setHeader('Access-Control-Allow-Methods', 'POST, GET, OPTIONS');
        res.setHeader('Access-Control-Allow-Headers', allowedHeaders);
        res.setHeader('Access-Control-Max-Age', '7200');
        res.writeHead(204);
      } else {
        res.writeHead(403, { 'Content-Type': 'text/plain' });
      }
      if (ok) res.end();
      else res.end('origin not allowed');
      return;
    }
    next(req, res);
  };
}

/** The peer of a request: its address and the client certificate the TLS layer verified. */
function peerOfRequest(req: http.IncomingMessage | http2.Http2ServerRequest): PeerInfo {
  const socket = req.socket as net.Socket & Partial<tls.TLSSocket>;
  const encrypted = socket.encrypted === true;
  const cn = encrypted && socket.authorized ? commonNameOf(socket.getPeerCertificate?.()) : undefined;
  return { address: socket.remoteAddress ?? '', encrypted, certificateCommonName: cn };
}

/** The server-side interceptor that authenticates every call before its handler runs. */
function authInterceptor(authenticate: Authenticate): Interceptor {
  return (next) => async (req) => {
    const peer = req.contextValues.get(peerKey) ?? { address: '', encrypted: false };
    const principal = await authenticate({
      service: req.service.typeName,
      method: req.method.name,
      headers: req.header,
      peer,
      signal: req.signal,
    });
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}

/** Starts the HTTP listener serving `services`. */
export async function startHttpListener(
  opts: HttpListenerOptions,
  services: { service: DescService; impl: object }[],
  log: Logger,
): Promise<HttpListener> {
  const adapter = createConnectHandler(
    {
      routes: (router) => {
        for (const s of services) router.service(s.service, s.impl as never);
      },
      readMaxBytes: opts.maxMessageBytes,
      writeMaxBytes: opts.maxMessageBytes,
      ...(opts.authenticate
        ? {
            contextValues: (req: http.IncomingMessage | http2.Http2ServerRequest) => createContextValues().set(peerKey, peerOfRequest(req)),
            interceptors: [authInterceptor(opts.authenticate)],
          }
        : {}),
      connect: true,
      grpc: true,
      grpcWeb: true,
    },
    log,
  ) as NodeHandler;
  const metrics = opts.metrics;
  const served: NodeHandler = metrics
    ? (req, res) => {
        if (!serveMetrics(metrics, req, res, peerOfRequest, log)) adapter(req, res);
      }
    : adapter;
  const handler = withCors(opts.corsOrigins, served);
  const limits = opts.limits ?? defaultConnectionLimits;
  const idleMs = limits.idleConnectionTimeoutMs;
  const headersMs = headersDeadlineOf(limits);
  const stallMs = opts.requestTimeoutMs ?? requestTimeoutMs;
  // Node wants an HTTP/1.1 request's deadline no shorter than its headers' one.
  const requestMs = Math.max(stallMs, headersMs);
  // Counts and limits requests still receiving their body, before the handler runs.
  const gate = httpRequestGate({ maxIncompleteRequests: opts.maxIncompleteRequests ?? maxIncompleteRequests, stallMs, log });
  const h1 = http.createServer(
    {
      maxHeaderSize: 16 * 1024,
      // Slow-header protection: the headers of each request within headersMs, the whole request
      // within requestMs (Node checks both every connectionsCheckingInterval).
      headersTimeout: headersMs,
      requestTimeout: requestMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersMs / 2))),
      // A keep-alive connection between requests is idle.
      keepAliveTimeout: idleMs,
    },
    gate.h1(handler as http.RequestListener),
  );
  // h1 never listens itself (the net server below hands it sockets), and Node starts an HTTP
  // server's connection tracking on 'listening': without it closeIdleConnections() does nothing
  // (close would wait out every keep-alive timeout) and headersTimeout/requestTimeout never fire.
  h1.emit('listening');
  const h2 = http2.createServer(
    { maxHeaderListPairs: 128, maxSessionMemory: maxSessionMemoryMb, settings: { maxConcurrentStreams: limits.maxConcurrentStreams } },
    gate.h2(handler as never),
  );
  const h2Sessions = limitSessions(h2, { idleMs, headersMs });
  h2.on('sessionError', (err) => log.debug({ err }, 'HTTP/2 session error'));
  const preface = Buffer.from('PRI * HTTP/2.0');
  // TLS: a tls.Server that never listens itself; it is handed the sockets accepted below, and its
  // server-side TLSSockets go to h2 or h1 by ALPN (it also enforces the client certificate and
  // the 10 s handshake limit).
  let tlsServer: tls.Server | undefined;
  if (opts.tls) {
    tlsServer = tls.createServer(httpTlsOptions(opts.tls), (secure) => {
      if (secure.alpnProtocol === 'h2') h2.emit('connection', secure);
      else h1.emit('connection', secure);
    });
    // A tls.Server leaves the failed socket to this listener (Http2SecureServer destroys it, a
    // bare tls.Server does not): without destroy() a handshake timeout would only be logged.
    tlsServer.on('tlsClientError', (err, socket) => {
      log.debug({ err }, 'TLS handshake failed');
      socket.destroy();
    });
  }
  // One port for both: h2c clients open with the HTTP/2 preface, everyone else speaks HTTP/1.1.
  // With TLS, ALPN chooses instead; a client certificate is required when there is a client CA.
  // The cap on connections counts raw sockets, so it holds for TLS and cleartext alike.
  const listener = await listenLimited(
    { host: opts.host, port: opts.port, maxConnections: limits.maxConnections, name: 'http', log },
    (socket) => {
      if (tlsServer) {
        tlsServer.emit('connection', socket);
        return;
      }
      // A socket that sends nothing is idle before it is HTTP/1.1 or HTTP/2 (a silent socket is
      // neither server's yet, so neither's timeouts hold it).
      const silent = setTimeout(() => socket.destroy(), headersMs);
      silent.unref();
      socket.once('close', () => clearTimeout(silent));
      socket.once('data', (chunk) => {
        clearTimeout(silent);
        socket.pause();
        socket.unshift(chunk);
        const isH2 = chunk.subarray(0, preface.length).equals(preface.subarray(0, Math.min(preface.length, chunk.length)));
        if (isH2) {
          // The HTTP/2 session reads the unshifted preface from the socket's buffer and then the
          // socket's handle directly; resuming the socket here would steal its bytes (GOAWAY 2).
          h2.emit('connection', socket);
        } else {
          h1.emit('connection', socket);
          socket.resume();
        }
      });
    },
  );
  const { server, sockets, port } = listener;
  return {
    port,
    get incompleteRequests() {
      return gate.incomplete;
    },
    async close(graceMs: number) {
      server.close();
      h1.close(); // closes idle keep-alive connections and stops the connection checker
      h1.closeIdleConnections();
      for (const session of h2Sessions) session.close();
      const deadline = Date.now() + graceMs;
      while (sockets.size > 0 && Date.now() < deadline) {
        h1.closeIdleConnections();
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const s of sockets) s.destroy();
    },
  };
}
