/**
 * `GET /metrics` on the HTTP listener: the server's Prometheus metrics (./server-metrics.ts) in
 * the text exposition format. When the server requires authentication, so does this: the scraper
 * sends a bearer token (an API key) like any client, or a client certificate; without one it gets
 * 401. On a server without authentication it is open, as every call is.
 * @packageDocumentation
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import { Code, ConnectError } from '@connectrpc/connect';
import type { Logger } from 'pino';
import type { PeerInfo } from '../auth/principal.js';
import type { CallInfo } from '../auth/authenticator.js';

/** The path metrics are served on. */
export const metricsPath = '/metrics';

/** The service and method name a scrape is authenticated (and counted) as. */
export const metricsCall = { service: 'heliosdb.Metrics', method: 'Scrape' } as const;

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** What the endpoint needs. */
export interface MetricsEndpoint {
  /** The exposition text and its content type. */
  scrape(): Promise<{ contentType: string; body: string }>;
  /** Authenticates a scrape (throws UNAUTHENTICATED without valid credentials when they are required). */
  authenticate?(call: CallInfo): Promise<unknown>;
}

/**
 * Serves `/metrics` when `req` asks for it; returns false for any other path (the caller handles
 * it). `peerOf` tells the authenticator where the request came from.
 */
export function serveMetrics(
  endpoint: MetricsEndpoint,
  req: NodeRequest,
  res: NodeResponse,
  peerOf: (req: NodeRequest) => PeerInfo,
  log: Logger,
): boolean {
  if ((req.url ?? '').split('?', 1)[0] !== metricsPath) return false;
  void (async () => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' });
      res.end('use GET\n');
      return;
    }
    try {
      await endpoint.authenticate?.({
        ...metricsCall,
        headers: { get: (name) => headerOf(req, name) },
        peer: peerOf(req),
      });
    } catch (e) {
      const ce = ConnectError.from(e);
      const status = ce.code === Code.Unauthenticated ? 401 : ce.code === Code.PermissionDenied ? 403 : 503;
      res.writeHead(status, { 'Content-Type': 'text/plain', ...(status === 401 ? { 'WWW-Authenticate': 'Bearer' } : {}) });
      res.end(`${ce.rawMessage}\n`);
      return;
    }
    try {
      const { contentType, body } = await endpoint.scrape();
      res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
      if (req.method === 'HEAD') res.end();
      else res.end(body);
    } catch (err) {
      log.warn({ err }, 'collecting metrics failed');
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end('collecting metrics failed\n');
    }
  })();
  return true;
}

function headerOf(req: NodeRequest, name: string): string | null {
  const v = req.headers[name.toLowerCase()];
  return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
}
