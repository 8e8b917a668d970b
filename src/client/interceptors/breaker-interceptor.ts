/**
 * A circuit breaker as an interceptor, for transports with one endpoint the platform connects to
 * (Connect over fetch or Node's HTTP stack). The Node gRPC pool keeps its own per endpoint.
 * Browser-safe.
 * @packageDocumentation
 */
import { Code, type Interceptor, type StreamRequest, type UnaryRequest } from '@connectrpc/connect';
import { CircuitBreaker, type CircuitBreakerOptions, type CircuitStats } from '../circuit-breaker.js';
import { ConnectionError } from '../errors.js';
import type { ClientEvents } from '../telemetry/client-events.js';
import { annotateAttempt } from '../transport/attempt-info.js';
import { codeOf, isTransportFailure, normalizeFailure } from './failure.js';
import { onStreamError } from './response-errors.js';

/** The error of a call refused because the endpoint's circuit is open. */
export function circuitOpenError(endpoint: string, retryInMs: number): ConnectionError {
  return new ConnectionError(
    `the circuit breaker of ${endpoint} is open after repeated connection failures; the next probe in ${retryInMs} ms`,
    'CIRCUIT_OPEN',
    {
      grpcCode: Code.Unavailable,
      retryable: true,
      retryAfterMs: retryInMs,
    },
  );
}

/** A circuit breaker for a single endpoint, as an interceptor (placed inside the retry interceptor). */
export function createBreakerInterceptor(
  endpoint: string,
  options: CircuitBreakerOptions | false,
  events?: ClientEvents,
): { interceptor: Interceptor; stats(): CircuitStats } {
  const breaker = new CircuitBreaker(options);
  if (events) breaker.onTransition = (from, to) => events.emit('circuitStateChange', { endpoint, from, to });
  const observe = (req: UnaryRequest | StreamRequest, caught: unknown) => {
    const e = normalizeFailure(req, caught);
    if (codeOf(e) === Code.Canceled || codeOf(e) === Code.DeadlineExceeded) breaker.onNeutral();
    else if (isTransportFailure(e)) breaker.onFailure();
    else breaker.onSuccess();
  };
  const interceptor: Interceptor = (next) => async (req) => {
    if (!breaker.tryAcquire()) throw annotateAttempt(circuitOpenError(endpoint, breaker.retryInMs()), { sent: false, endpoint });
    let res;
    try {
      res = await next(req);
    } catch (e) {
      observe(req, e);
      throw e;
    }
    breaker.onSuccess();
    return onStreamError(res, (e) => {
      observe(req, e);
      return e;
    });
  };
  return { interceptor, stats: () => breaker.stats() };
}
