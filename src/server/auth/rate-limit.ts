/**
 * Counts failed authentications per key (a client address, or a credential: a user name, an API
 * key id) and says how long the next attempt must wait before it is checked.
 *
 * - Attempts are counted before they are verified: {@link FailureLimiter.begin} reserves a place
 *   ("in flight") and returns that attempt's wait, so concurrent attempts count as if they had
 *   already failed; {@link FailureLimiter.end} settles it (failure, success or abandoned).
 * - The k-th attempt over `freeFailures` (failures plus attempts in flight) waits
 *   `baseDelayMs * 2^(k-1)`, at most `maxDelayMs`.
 * - A success resets the key's failures when `resetOnSuccess` (credentials), not otherwise
 *   (addresses). Failures are forgotten `forgetAfterMs` after the last one.
 * - Memory is bounded: at most `maxTracked` keys. Keys below the limit are forgotten first (oldest
 *   first), so flooding the limiter with fresh keys cannot wash out a penalised one; only when
 *   every tracked key is penalised does the oldest penalised key go.
 *
 * Everything here is synchronous: a check and its reservation happen in one turn of the event
 * loop, so no concurrent attempt can slip between them.
 * @packageDocumentation
 */

/** Options of {@link FailureLimiter}. */
export interface FailureLimiterOptions {
  /** Failures (and attempts in flight) allowed before attempts wait. Default 5. */
  freeFailures?: number;
  /** First delay, ms (never more than `maxDelayMs`). Default 1000. */
  baseDelayMs?: number;
  /** Longest delay, ms. Default 30000. */
  maxDelayMs?: number;
  /** Failures are forgotten this long after the last one, ms. Default 900000 (15 min). */
  forgetAfterMs?: number;
  /** Most keys remembered. Default 10000. */
  maxTracked?: number;
  /** Whether a success clears the key's failures (credentials: yes; client addresses: no). Default true. */
  resetOnSuccess?: boolean;
  /** The clock, ms (tests pass a fake one). Default `Date.now`. */
  clock?: () => number;
}

/** How an attempt begun with {@link FailureLimiter.begin} ended. */
export type AttemptOutcome = 'failure' | 'success' | 'abandoned';

interface Entry {
  failures: number;
  inFlight: number;
  lastFailure: number;
  touched: number;
}

/** See the file comment. */
export class FailureLimiter {
  /** Keys with fewer than `freeFailures` failures, least recently touched first. */
  private readonly fresh = new Map<string, Entry>();
  /** Keys at or over the limit, least recently touched first. */
  private readonly penalised = new Map<string, Entry>();
  private readonly o: Required<FailureLimiterOptions>;

  constructor(options: FailureLimiterOptions = {}) {
    this.o = {
      freeFailures: 5,
      baseDelayMs: 1000,
      maxDelayMs: 30_000,
      forgetAfterMs: 900_000,
      maxTracked: 10_000,
      resetOnSuccess: true,
      clock: Date.now,
      ...options,
    };
    this.o.baseDelayMs = Math.min(this.o.baseDelayMs, this.o.maxDelayMs);
  }

  /** The delay of the `over`-th attempt over the limit (0 when `over` is 0 or less). */
  delayFor(over: number): number {
    if (over <= 0) return 0;
    return Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** Math.min(over - 1, 30));
  }

  /** The wait an attempt starting now would get (counting those in flight), without reserving a place. */
  waitMs(key: string): number {
    const e = this.lookup(key, this.o.clock());
    return this.delayFor((e ? e.failures + e.inFlight : 0) + 1 - this.o.freeFailures);
  }

  /** Reserves a place for an attempt (counted before it is verified) and returns its wait, ms. */
  begin(key: string): number {
    const now = this.o.clock();
    const e = this.lookup(key, now) ?? { failures: 0, inFlight: 0, lastFailure: now, touched: now };
    const wait = this.delayFor(e.failures + e.inFlight + 1 - this.o.freeFailures);
    e.inFlight++;
    this.place(key, e, now);
    return wait;
  }

  /** Settles an attempt begun with {@link begin}. */
  end(key: string, outcome: AttemptOutcome): void {
    const now = this.o.clock();
    // The record may have been forgotten meanwhile (memory bound): a failure starts a new one.
    const e = this.lookup(key, now) ?? { failures: 0, inFlight: 1, lastFailure: now, touched: now };
    e.inFlight = Math.max(0, e.inFlight - 1);
    if (outcome === 'failure') {
      e.failures++;
      e.lastFailure = now;
    } else if (outcome === 'success' && this.o.resetOnSuccess) e.failures = 0;
    this.place(key, e, now);
  }

  /**
   * Records a failure that was verified without a reservation (bearer tokens are checked first)
   * and returns how long its refusal should be held back, ms (0 while under the limit).
   */
  fail(key: string): number {
    const now = this.o.clock();
    const e = this.lookup(key, now) ?? { failures: 0, inFlight: 0, lastFailure: now, touched: now };
    e.failures++;
    e.lastFailure = now;
    this.place(key, e, now);
    return this.delayFor(e.failures - this.o.freeFailures);
  }

  /** Records a success without a reservation: clears the key's failures when `resetOnSuccess`. */
  succeed(key: string): void {
    if (!this.o.resetOnSuccess) return;
    const now = this.o.clock();
    const e = this.lookup(key, now);
    if (!e) return;
    e.failures = 0;
    this.place(key, e, now);
  }

  /** Failures counted for `key` (0 when unknown or forgotten). */
  failures(key: string): number {
    return this.lookup(key, this.o.clock())?.failures ?? 0;
  }

  /** Attempts of `key` begun and not yet ended. */
  inFlight(key: string): number {
    return this.lookup(key, this.o.clock())?.inFlight ?? 0;
  }

  /** Keys tracked. */
  get size(): number {
    return this.fresh.size + this.penalised.size;
  }

  /** The live entry of `key`, with failures older than `forgetAfterMs` dropped. */
  private lookup(key: string, now: number): Entry | undefined {
    this.sweep(now);
    const e = this.fresh.get(key) ?? this.penalised.get(key);
    if (e && e.failures > 0 && now - e.lastFailure > this.o.forgetAfterMs) e.failures = 0;
    return e;
  }

  /** Stores `e` as the most recently touched key of its tier (or drops it when it holds nothing), then enforces the bound. */
  private place(key: string, e: Entry, now: number): void {
    this.fresh.delete(key);
    this.penalised.delete(key);
    if (e.failures === 0 && e.inFlight === 0) return;
    e.touched = now;
    (e.failures >= this.o.freeFailures ? this.penalised : this.fresh).set(key, e);
    while (this.size > this.o.maxTracked) {
      const victim = this.oldest(this.fresh, key) ?? this.oldest(this.penalised, key);
      if (victim === undefined) break;
      this.fresh.delete(victim);
      this.penalised.delete(victim);
    }
  }

  /** The least recently touched key of `tier` other than `except`. */
  private oldest(tier: Map<string, Entry>, except: string): string | undefined {
    for (const k of tier.keys()) if (k !== except) return k;
    return undefined;
  }

  /** Drops keys untouched for `forgetAfterMs` (the tiers are in touch order, so only their fronts are looked at). */
  private sweep(now: number): void {
    for (const tier of [this.fresh, this.penalised]) {
      for (const [k, e] of tier) {
        if (now - e.touched <= this.o.forgetAfterMs || e.inFlight > 0) break;
        tier.delete(k);
      }
    }
  }
}
