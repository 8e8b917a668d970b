/**
 * The connection pool's statistics shape, the same for the Node channel pool
 * and the browser's concurrency limiter. Browser-safe.
 * @packageDocumentation
 */

/** One server endpoint of the pool (several with `urls`, or a DNS name with several addresses). */
export interface EndpointStats {
  /** The endpoint's URL. */
  url: string;
  /** Its circuit breaker: `closed` (in use), `open` (failing fast, calls go elsewhere), `half-open` (one probe allowed). */
  circuit: 'closed' | 'open' | 'half-open';
  /** Connection failures in a row. */
  consecutiveFailures: number;
  /** Times its circuit opened. */
  circuitOpened: number;
  /** Calls refused or routed elsewhere while it was open. */
  circuitRejected: number;
  /** When an open circuit lets its next probe through (ms since the epoch); 0 unless open. */
  retryAt: number;
  /** Connections to it open now (0 where the platform owns connections). */
  connections: number;
  /** Calls in flight on it. */
  inFlight: number;
  /** Its retry budget: tokens left (retries are sent while more than half remain). */
  retryTokens: number | undefined;
}

/** The pool's own counters (the connection pool or the concurrency limiter, before endpoints and retries). */
export interface PoolCounters {
  /** Connections (HTTP/2 channels) open now. */
  totalConnections: number;
  /** Connections with at least one call in flight. */
  activeConnections: number;
  /** Connections with no call in flight. */
  idleConnections: number;
  /** Calls in flight over all connections. */
  inFlight: number;
  /** Calls waiting for a connection (every connection saturated and the pool at its maximum). */
  waiting: number;
  /** Acquisitions served at once by an existing connection. */
  poolHits: number;
  /** Acquisitions that had to open a connection or wait. */
  poolMisses: number;
  /** Connections opened since the pool started. */
  created: number;
  /** Connections closed since the pool started (recycled, unhealthy, shrunk, or at close). */
  closed: number;
  /** Health checks that failed (each replaced its connection). */
  healthCheckFailures: number;
  /** Acquisitions that gave up after `acquisitionTimeoutMs`. */
  acquisitionTimeouts: number;
}

/** A snapshot of pool statistics: the counters, each endpoint with its circuit breaker, and retries. */
export interface PoolStats extends PoolCounters {
  /** Each server endpoint, with its circuit breaker. */
  endpoints: EndpointStats[];
  /** Attempts sent again by the retry interceptor. */
  retries: number;
  /** Retries not sent because the endpoint's retry budget was spent. */
  retriesThrottled: number;
  /** Writes whose outcome stayed unknown (AmbiguousResultError). */
  ambiguousResults: number;
  /** pg-pool's name: connections open now (`totalConnections`; 0 where the platform owns connections). */
  totalCount: number;
  /** pg-pool's name: connections open and not in use (`idleConnections`). */
  idleCount: number;
  /** pg-pool's name: calls waiting for a connection or call slot (`waiting`). */
  waitingCount: number;
}

/** What `client.pool` offers. */
export interface PoolHandle {
  /** Current statistics. */
  getStats(): PoolStats;
}
