/**
 * The client parts over the Connect protocol family (Connect binary or JSON, gRPC-Web) on the
 * server's HTTP listener, shared by the browser and Node: the URL check, the transport choice, the
 * concurrency limiter that stands in for the pool, and the metrics interceptor. Each platform
 * supplies the transport constructors (`@connectrpc/connect-web` or `@connectrpc/connect-node`).
 * Browser-safe.
 * @packageDocumentation
 */
import type { Interceptor, Transport } from '@connectrpc/connect';
import { createClientAuth } from '../interceptors/auth-interceptor.js';
import type { ClientParts } from './client-parts.js';
import { ConcurrencyLimiter, limitTransport } from './concurrency-limiter.js';
import type { ResolvedConnectionConfig } from '../config.js';
import { HeliosDBError } from '../errors.js';
import { metricsInterceptor, QueryMetrics } from '../metrics.js';
import type { PoolStats } from '../pool-stats.js';
import { singleEndpointStats } from './single-endpoint-stats.js';
import { createBreakerInterceptor } from '../interceptors/breaker-interceptor.js';
import { createRetryInterceptor } from '../interceptors/retry-interceptor.js';
import { resolveRetryOptions } from '../interceptors/retry-options.js';
import { isLoopbackHostname } from '../tls-options.js';
import { explainDeadlines, explainInterceptor } from './explain-failures.js';
import { ClientEvents } from '../telemetry/client-events.js';
import { tracingInterceptors } from '../telemetry/client-telemetry.js';

/** What a Connect-family transport constructor is given. */
export interface ConnectTransportInit {
  /** `http(s)://host:port[/prefix]`, no trailing slash. */
  baseUrl: string;
  interceptors: Interceptor[];
}

/** The platform's transport constructors. */
export interface ConnectTransportFactories {
  /** The Connect protocol; `binary` false means JSON. */
  connect(init: ConnectTransportInit & { binary: boolean }): Transport;
  /** The gRPC-Web protocol (binary). */
  grpcWeb(init: ConnectTransportInit): Transport;
  /** Closes the platform's connections after the calls in flight are done (Node); default nothing. */
  close?(): void | Promise<void>;
}

/** Parses an `http://` / `https://` URL into a Connect base URL; anything else is a config error. */
export function connectBaseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new HeliosDBError(
      `invalid url ${JSON.stringify(raw)}: expected http://host:port or https://host:port (the server's HTTP listener, 7701 by default)`,
      'INVALID_CONFIG',
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new HeliosDBError(`unsupported url scheme ${url.protocol} in ${raw}: expected http:// or https://`, 'INVALID_CONFIG');
  }
  if (url.search || url.hash) throw new HeliosDBError(`the url ${raw} may not have a query or fragment`, 'INVALID_CONFIG');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** The most calls in flight: `maxConcurrentCalls`, or `maxConnections * maxStreamsPerConnection` when that is 0. */
export function concurrencyOf(config: ResolvedConnectionConfig): number {
  return config.maxConcurrentCalls > 0 ? config.maxConcurrentCalls : config.maxConnections * config.maxStreamsPerConnection;
}

/** Builds the parts for a resolved config whose URL is http(s)://. */
export function createConnectParts(config: ResolvedConnectionConfig, factories: ConnectTransportFactories): ClientParts {
  const baseUrl = connectBaseUrl(config.url);
  if (config.urls && config.urls.length > 1) {
    throw new HeliosDBError(
      'several urls need native gRPC (grpc:// or grpcs://, Node): over http:// and https:// the platform owns the connections; put a load balancer in front of the servers instead',
      'INVALID_CONFIG',
    );
  }
  const metrics = new QueryMetrics();
  const auth = createClientAuth(config, baseUrl.startsWith('https:'), isLoopbackHostname(new URL(baseUrl).hostname));
  // Retries outermost of ours (each attempt re-runs the breaker, credentials and metrics); the
  // transport's failures are put in the user's terms innermost, so every layer sees them so.
  const endpoint = new URL(baseUrl).origin;
  const events = new ClientEvents();
  const retry = createRetryInterceptor(resolveRetryOptions(config.retry), { headerTimeouts: true, events });
  const breaker = createBreakerInterceptor(endpoint, config.circuitBreaker, events);
  const init: ConnectTransportInit = {
    baseUrl,
    interceptors: [
      ...config.interceptors,
      ...tracingInterceptors(config),
      retry.interceptor,
      breaker.interceptor,
      ...(auth ? [auth.interceptor] : []),
      metricsInterceptor(metrics),
      explainInterceptor(baseUrl),
    ],
  };
  let transport: Transport;
  switch (config.protocol) {
    case 'connect':
      transport = factories.connect({ ...init, binary: true });
      break;
    case 'connect-json':
      transport = factories.connect({ ...init, binary: false });
      break;
    case 'grpc-web':
      transport = factories.grpcWeb(init);
      break;
    default:
      throw new HeliosDBError(
        `unknown protocol ${JSON.stringify(config.protocol)}: expected 'connect', 'connect-json' or 'grpc-web'`,
        'INVALID_CONFIG',
      );
  }
  const limiter = new ConcurrencyLimiter({
    maxConcurrentCalls: concurrencyOf(config),
    acquisitionTimeoutMs: config.acquisitionTimeoutMs,
    events,
  });
  auth?.bind(transport);
  const pool = {
    getStats(): PoolStats {
      const counters = limiter.getStats();
      return singleEndpointStats(endpoint, counters, breaker.stats(), retry.stats(), 0);
    },
  };
  return {
    // Outside the limiter: a deadline error names the timeoutMs the caller gave, not what was left after waiting.
    transport: explainDeadlines(limitTransport(transport, limiter)),
    pool,
    metrics,
    events,
    async close() {
      await auth?.close();
      await limiter.close();
      await factories.close?.();
    },
  };
}
