/**
 * The pool statistics of a transport with one endpoint (Connect over `http://`, `postgres://`):
 * its counters, its circuit breaker and its retries, in the shape every transport reports.
 * Browser-safe.
 * @packageDocumentation
 */
import type { CircuitStats } from '../circuit-breaker.js';
import type { RetryStats } from '../interceptors/retry-policy.js';
import type { PoolCounters, PoolStats } from '../pool-stats.js';

/** `connections`: the endpoint's open connections (0 where the platform owns them). */
export function singleEndpointStats(
  endpoint: string,
  counters: PoolCounters,
  breaker: CircuitStats,
  retry: RetryStats,
  connections: number,
): PoolStats {
  return {
    ...counters,
    endpoints: [
      {
        url: endpoint,
        circuit: breaker.state,
        consecutiveFailures: breaker.consecutiveFailures,
        circuitOpened: breaker.opened,
        circuitRejected: breaker.rejected,
        retryAt: breaker.retryAt,
        connections,
        inFlight: counters.inFlight,
        retryTokens: retry.budgets[endpoint],
      },
    ],
    retries: retry.retries,
    retriesThrottled: retry.retriesThrottled,
    ambiguousResults: retry.ambiguousResults,
    totalCount: counters.totalConnections,
    idleCount: counters.idleConnections,
    waitingCount: counters.waiting,
  };
}
