/**
 * Query metrics: per-operation counters and latency percentiles, collected by a Connect
 * interceptor, so they work the same on every transport. Browser-safe.
 * @packageDocumentation
 */
import { Code, ConnectError, type Interceptor, type StreamRequest, type UnaryRequest } from '@connectrpc/connect';

/** Metrics of one operation (RPC method). */
export interface OperationMetrics {
  /** Calls, whatever their outcome. */
  count: number;
  /** Calls that failed (not counting those the caller cancelled). */
  errors: number;
  /** Calls the caller ended early: a stream left with `break` or `cancel()`, an aborted AbortSignal. Neither successes nor errors. */
  cancelled: number;
  /** Latency percentiles over the most recent 4096 calls, ms. */
  p50: number;
  p95: number;
  p99: number;
  meanMs: number;
}

const WINDOW = 4096;

/** How a call ended. */
export type CallOutcome = 'ok' | 'error' | 'cancelled';

class Series {
  count = 0;
  errors = 0;
  cancelled = 0;
  total = 0;
  readonly samples = new Float64Array(WINDOW);
  add(ms: number, outcome: CallOutcome): void {
    this.samples[this.count % WINDOW] = ms;
    this.count++;
    this.total += ms;
    if (outcome === 'error') this.errors++;
    else if (outcome === 'cancelled') this.cancelled++;
  }
  snapshot(): OperationMetrics {
    const n = Math.min(this.count, WINDOW);
    const sorted = Array.from(this.samples.subarray(0, n)).sort((a, b) => a - b);
    const at = (q: number) => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.floor(q * n))]);
    return {
      count: this.count,
      errors: this.errors,
      cancelled: this.cancelled,
      p50: at(0.5),
      p95: at(0.95),
      p99: at(0.99),
      meanMs: this.count ? this.total / this.count : 0,
    };
  }
}

/** Collected metrics of one client. */
export class QueryMetrics {
  private readonly series = new Map<string, Series>();

  /** Records one call: its outcome, or `true` for a failure and `false` for a success. */
  record(operation: string, ms: number, outcome: CallOutcome | boolean): void {
    let s = this.series.get(operation);
    if (!s) this.series.set(operation, (s = new Series()));
    s.add(ms, outcome === true ? 'error' : outcome === false ? 'ok' : outcome);
  }

  /** Metrics by operation name (e.g. `Query`, `StreamQuery`, `Commit`). */
  snapshot(): Record<string, OperationMetrics> {
    const out: Record<string, OperationMetrics> = {};
    for (const [k, s] of this.series) out[k] = s.snapshot();
    return out;
  }

  /** Forgets everything recorded. */
  reset(): void {
    this.series.clear();
  }
}

/**
 * How a failed call ended: cancelled when its request's signal was aborted by the caller (a
 * stream left early, an AbortSignal), an error otherwise (a deadline is an error). The signal is
 * read only here, on the failure path: a transport may make it lazily.
 */
function failureOutcome(req: UnaryRequest | StreamRequest): CallOutcome {
  const signal = req.signal as AbortSignal | undefined;
  if (!signal?.aborted) return 'error';
  return ConnectError.from(signal.reason).code === Code.DeadlineExceeded ? 'error' : 'cancelled';
}

/**
 * An interceptor that records each call's latency (streams: until the last message) and outcome:
 * a stream its consumer stopped reading (`break`, `cancel()`) counts as cancelled, not failed.
 */
export function metricsInterceptor(metrics: QueryMetrics): Interceptor {
  return (next) => async (req) => {
    const t0 = performance.now();
    const name = req.method.name;
    let res;
    try {
      res = await next(req);
    } catch (e) {
      metrics.record(name, performance.now() - t0, failureOutcome(req));
      throw e;
    }
    if (!res.stream) {
      metrics.record(name, performance.now() - t0, 'ok');
      return res;
    }
    const inner = res.message;
    return {
      ...res,
      message: (async function* () {
        // A consumer that stops reading (return() without an error) cancelled the stream.
        let outcome: CallOutcome = 'cancelled';
        try {
          yield* inner;
          outcome = 'ok';
        } catch (e) {
          outcome = failureOutcome(req);
          throw e;
        } finally {
          metrics.record(name, performance.now() - t0, outcome);
        }
      })(),
    };
  };
}
