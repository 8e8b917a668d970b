/**
 * Slows down credential guessing: after `freeFailures` failed authentications from one client
 * address, further attempts from it are refused without being checked until a delay passes that
 * doubles with every further failure (capped). A success clears the address's record. Memory is
 * bounded: at most `maxTracked` addresses are remembered (the oldest are forgotten first).
 * @packageDocumentation
 */

/** Options of {@link FailureLimiter}. */
export interface FailureLimiterOptions {
  /** Failures allowed before attempts are delayed. Default 5. */
  freeFailures?: number;
  /** First delay, ms. Default 1000. */
  baseDelayMs?: number;
  /** Longest delay, ms. Default 300000. */
  maxDelayMs?: number;
  /** A record with no failure for this long is forgotten, ms. Default 900000. */
  forgetAfterMs?: number;
  /** Most addresses remembered. Default 10000. */
  maxTracked?: number;
}

interface Entry {
  failures: number;
  blockedUntil: number;
  last: number;
}

/** See the file comment. */
export class FailureLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly o: Required<FailureLimiterOptions>;

  constructor(options: FailureLimiterOptions = {}) {
    this.o = { freeFailures: 5, baseDelayMs: 1000, maxDelayMs: 300_000, forgetAfterMs: 900_000, maxTracked: 10_000, ...options };
  }

  /** Milliseconds the address must still wait before its next attempt is checked; 0 when it may try now. */
  waitMs(address: string, now = Date.now()): number {
    const e = this.entries.get(address);
    if (!e) return 0;
    if (now - e.last > this.o.forgetAfterMs) {
      this.entries.delete(address);
      return 0;
    }
    return Math.max(0, e.blockedUntil - now);
  }

  /** Records a failed attempt. */
  fail(address: string, now = Date.now()): void {
    let e = this.entries.get(address);
    if (e) this.entries.delete(address); // re-insert: the map's order is least recently failed first
    else e = { failures: 0, blockedUntil: 0, last: now };
    e.failures++;
    e.last = now;
    const over = e.failures - this.o.freeFailures;
    if (over >= 0) e.blockedUntil = now + Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** Math.min(over, 30));
    this.entries.set(address, e);
    while (this.entries.size > this.o.maxTracked) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  /** Records a success: the address starts afresh. */
  succeed(address: string): void {
    this.entries.delete(address);
  }

  /** Addresses tracked (for tests). */
  get size(): number {
    return this.entries.size;
  }
}
