/**
 * Query metrics: per-operation counters and latency percentiles, collected by a Connect
 * interceptor, so they work the same on every transport. Browser-safe.
 * @packageDocumentation
 */
import type { Interceptor } from '@connectrpc/connect';

/** Metrics of one operation (RPC method). */
export interface OperationMetrics {
  count: number;
  errors: number;
  /** Latency percentiles over the most recent 4096 calls, ms. */
  p50: number;
  p95: number;
  p99: number;
  meanMs: number;
}

const WINDOW = 4096;

class Series {
  count = 0;
  errors = 0;
  total = 0;
  readonly samples = new Float64Array(WINDOW);
  add(ms: number, failed: boolean): void {
    this.samples[this.count % WINDOW] = ms;
    this.count++;
    this.total += ms;
    if (failed) this.errors++;
  }
  snapshot(): OperationMetrics {
    const n = Math.min(this.count, WINDOW);
    const sorted = Array.from(this.samples.subarray(0, n)).sort((a, b) => a - b);
    const at = (q: number) => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.floor(q * n))]);
    return { count: this.count, errors: this.errors, p50: at(0.5), p95: at(0.95), p99: at(0.99), meanMs: this.count ? this.total / this.count : 0 };
  }
}

/** Collected metrics of one client. */
export class QueryMetrics {
  private readonly series = new Map<string, Series>();

  /** Records one call. */
  record(operation: string, ms: number, failed: boolean): void {
    let s = this.series.get(operation);
    if (!s) this.series.set(operation, (s = new Series()));
    s.add(ms, failed);
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

/** An interceptor that records each call's latency (streams: until the last message). */
export function metricsInterceptor(metrics: QueryMetrics): Interceptor {
  return (next) => async (req) => {
    const t0 = performance.now();
    const name = req.method.name;
    let res;
    try {
      res = await next(req);
    } catch (e) {
      metrics.record(name, performance.now() - t0, true);
      throw e;
    }
    if (!res.stream) {
      metrics.record(name, performance.now() - t0, false);
      return res;
    }
    const inner = res.message;
    return {
      ...res,
      message: (async function* () {
        let failed = true;
        try {
          yield* inner;
          failed = false;
        } finally {
          metrics.record(name, performance.now() - t0, failed);
        }
      })(),
    };
  };
}
