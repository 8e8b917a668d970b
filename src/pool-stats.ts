/**
 * The connection pool's statistics shape (seed section 6), the same for the Node channel pool
 * and the browser's concurrency limiter. Browser-safe.
 * @packageDocumentation
 */

/** A snapshot of pool statistics. */
export interface PoolStats {
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

/** What `client.pool` offers. */
export interface PoolHandle {
  /** Current statistics. */
  getStats(): PoolStats;
}
