/**
 * The client's `retry` option: its settings, defaults and the backoff between attempts.
 * Browser-safe.
 * @packageDocumentation
 */

/** Retry settings (client option `retry`; `false` turns retries and idempotency keys off). */
export interface RetryOptions {
  /** Most attempts of one call, the first included. Default `4`. */
  maxAttempts?: number;
  /** Wait before the first retry, ms. Default `100`. */
  baseDelayMs?: number;
  /** Longest wait between attempts, ms (before jitter). Default `2000`. */
  maxDelayMs?: number;
  /** Growth of the wait per retry: `delay = min(maxDelayMs, baseDelayMs * exponentialBase^retry)`. Default `2`. */
  exponentialBase?: number;
  /** Random extra wait, as a share of the delay (`delay + random() * jitter * delay`), 0 to 1. Default `0.2`. */
  jitter?: number;
  /**
   * Send an idempotency key with every auto-commit write and every Commit, so that they can be
   * retried without ever applying twice. `false`: writes are retried only when they provably never
   * left, and a lost answer is an {@link AmbiguousResultError}. Default `true`.
   */
  idempotencyKeys?: boolean;
  /**
   * The retry budget of each endpoint, gRPC's retry throttling: a bucket of `maxTokens` tokens;
   * each failed attempt takes one, each success gives back `tokenRatio`; retries are sent only
   * while more than half the tokens remain. So an outage costs a few retries, not a storm.
   * `false` turns it off. Default `{ maxTokens: 10, tokenRatio: 0.1 }`.
   */
  budget?: { maxTokens?: number; tokenRatio?: number } | false;
}

/** Resolved {@link RetryOptions}. */
export interface ResolvedRetryOptions {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  exponentialBase: number;
  jitter: number;
  idempotencyKeys: boolean;
  budget: { maxTokens: number; tokenRatio: number } | false;
}

/** Defaults of {@link RetryOptions}. */
export const retryDefaults: ResolvedRetryOptions = {
  maxAttempts: 4,
  baseDelayMs: 100,
  maxDelayMs: 2000,
  exponentialBase: 2,
  jitter: 0.2,
  idempotencyKeys: true,
  budget: { maxTokens: 10, tokenRatio: 0.1 },
};

/** Applies the defaults to the client's `retry` option; `false` means one attempt and no keys. */
export function resolveRetryOptions(options: RetryOptions | false | undefined): ResolvedRetryOptions {
  if (options === false) return { ...retryDefaults, maxAttempts: 1, idempotencyKeys: false };
  const r: ResolvedRetryOptions = { ...retryDefaults };
  for (const [k, v] of Object.entries(options ?? {})) if (v !== undefined) (r as unknown as Record<string, unknown>)[k] = v;
  if (r.budget !== false)
    r.budget = { ...(retryDefaults.budget as object), ...(options?.budget || {}) } as { maxTokens: number; tokenRatio: number };
  if (!Number.isInteger(r.maxAttempts) || r.maxAttempts < 1)
    throw new RangeError(`retry.maxAttempts must be an integer >= 1, got ${r.maxAttempts}`);
  if (!(r.baseDelayMs >= 0) || !(r.maxDelayMs >= r.baseDelayMs))
    throw new RangeError(`retry needs 0 <= baseDelayMs (${r.baseDelayMs}) <= maxDelayMs (${r.maxDelayMs})`);
  if (!(r.exponentialBase >= 1)) throw new RangeError(`retry.exponentialBase must be >= 1, got ${r.exponentialBase}`);
  if (!(r.jitter >= 0 && r.jitter <= 1)) throw new RangeError(`retry.jitter must be between 0 and 1, got ${r.jitter}`);
  if (r.budget && (!(r.budget.maxTokens > 0) || !(r.budget.tokenRatio > 0)))
    throw new RangeError('retry.budget needs maxTokens > 0 and tokenRatio > 0');
  return r;
}

/**
 * The wait before retry number `retry` (0 for the first retry):
 * `min(maxDelayMs, baseDelayMs * exponentialBase^retry)`, plus `random() * jitter` of that, and
 * never less than the server's `retryAfterMs`.
 */
export function retryDelayFor(retry: number, o: ResolvedRetryOptions, retryAfterMs?: number, random: () => number = Math.random): number {
  const delay = Math.min(o.maxDelayMs, o.baseDelayMs * o.exponentialBase ** retry);
  return Math.max(Math.round(delay + random() * o.jitter * delay), retryAfterMs ?? 0);
}
