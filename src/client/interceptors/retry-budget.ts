/**
 * gRPC's retry throttling: a token bucket per endpoint, so that an outage costs a few retries and
 * never a storm. Browser-safe.
 * @packageDocumentation
 */

/** gRPC's retry throttling: see RetryOptions.budget. */
export class RetryBudget {
  tokens: number;
  constructor(
    readonly maxTokens: number,
    readonly tokenRatio: number,
  ) {
    this.tokens = maxTokens;
  }
  /** A failed attempt. */
  onFailure(): void {
    this.tokens = Math.max(0, this.tokens - 1);
  }
  /** A successful call. */
  onSuccess(): void {
    if (this.tokens < this.maxTokens) this.tokens = Math.min(this.maxTokens, this.tokens + this.tokenRatio);
  }
  /** Whether a retry may be sent now. */
  allows(): boolean {
    return this.tokens > this.maxTokens / 2;
  }
}
