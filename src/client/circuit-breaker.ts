/**
 * A circuit breaker per server endpoint: `closed` (calls flow) → `open` after
 * `failureThreshold` consecutive failures of the endpoint itself (connection refused or lost,
 * stream reset, keepalive timeout: not SQL errors, which prove the server is alive); while open,
 * calls to it fail fast (or go to another endpoint) → after `openMs` one probe is let through
 * (`half-open`): its success closes the circuit, its failure opens it again for twice as long (up
 * to `maxOpenMs`). Browser-safe.
 * @packageDocumentation
 */

/** Settings of the circuit breakers (client option `circuitBreaker`). */
export interface CircuitBreakerOptions {
  /** Consecutive endpoint failures that open the circuit. Default `5`. */
  failureThreshold?: number;
  /** How long the circuit stays open before a probe, ms; doubles after each failed probe. Default `1000`. */
  openMs?: number;
  /** Longest open period, ms. Default `30000`. */
  maxOpenMs?: number;
}

/** Defaults of {@link CircuitBreakerOptions}. */
export const circuitBreakerDefaults: Required<CircuitBreakerOptions> = { failureThreshold: 5, openMs: 1000, maxOpenMs: 30_000 };

/** Where a circuit stands. */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** A snapshot of one endpoint's circuit, in `client.pool.getStats().endpoints`. */
export interface CircuitStats {
  state: CircuitState;
  /** Endpoint failures in a row (reset by a success). */
  consecutiveFailures: number;
  /** Times the circuit opened. */
  opened: number;
  /** Calls refused while it was open (failed fast, or sent to another endpoint). */
  rejected: number;
  /** When an open circuit lets its next probe through (ms since the epoch); 0 unless open. */
  retryAt: number;
}

/** See the file comment. `enabled: false` makes it a counter that never opens. */
export class CircuitBreaker {
  private state: CircuitState = 'closed';
  private failures = 0;
  private opened = 0;
  private rejected = 0;
  private openUntil = 0;
  private openFor: number;
  private probing = false;
  private probeAt = 0;
  private readonly opts: Required<CircuitBreakerOptions>;
  /** Called on every change of state (`half-open` when the probe is let through). Default none. */
  onTransition: ((from: CircuitState, to: CircuitState) => void) | undefined;

  constructor(
    options: CircuitBreakerOptions | false = {},
    private readonly now: () => number = Date.now,
  ) {
    this.opts = options === false ? { ...circuitBreakerDefaults, failureThreshold: Infinity } : { ...circuitBreakerDefaults, ...options };
    if (!(this.opts.failureThreshold >= 1))
      throw new RangeError(`circuitBreaker.failureThreshold must be at least 1, got ${this.opts.failureThreshold}`);
    if (!(this.opts.openMs > 0) || !(this.opts.maxOpenMs >= this.opts.openMs)) {
      throw new RangeError(`circuitBreaker needs 0 < openMs (${this.opts.openMs}) <= maxOpenMs (${this.opts.maxOpenMs})`);
    }
    this.openFor = this.opts.openMs;
  }

  /** The state now (an open circuit whose time is up reads as half-open). */
  get current(): CircuitState {
    if (this.state === 'open' && this.now() >= this.openUntil) return 'half-open';
    return this.state;
  }

  /** Whether a call may go to the endpoint now, without taking the half-open probe slot. */
  available(): boolean {
    const s = this.current;
    return s === 'closed' || (s === 'half-open' && !this.probeBusy());
  }

  /** A probe is out (one whose outcome never came back counts for at most `maxOpenMs`). */
  private probeBusy(): boolean {
    return this.probing && this.now() - this.probeAt < this.opts.maxOpenMs;
  }

  /**
   * Takes permission for one call: true when closed, or for the single probe of a half-open
   * circuit; false (counted as rejected) otherwise.
   */
  tryAcquire(): boolean {
    const s = this.current;
    if (s === 'closed') return true;
    if (s === 'half-open' && !this.probeBusy()) {
      this.moveTo('half-open');
      this.probing = true;
      this.probeAt = this.now();
      return true;
    }
    this.rejected++;
    return false;
  }

  /** Milliseconds until an open circuit lets a probe through; 0 when it would now. */
  retryInMs(): number {
    return this.state === 'open' ? Math.max(0, this.openUntil - this.now()) : 0;
  }

  /** The endpoint answered (any answer from the server itself, SQL errors included). */
  onSuccess(): void {
    this.failures = 0;
    this.probing = false;
    if (this.state !== 'closed') {
      this.moveTo('closed');
      this.openFor = this.opts.openMs;
    }
  }

  /** The endpoint failed (connection refused or lost, reset, keepalive or connect timeout). */
  onFailure(): void {
    this.failures++;
    const wasProbe = this.state === 'half-open' || this.current === 'half-open';
    this.probing = false;
    if (wasProbe) {
      this.openFor = Math.min(this.openFor * 2, this.opts.maxOpenMs);
      this.trip();
    } else if (this.state === 'closed' && this.failures >= this.opts.failureThreshold) {
      this.trip();
    }
  }

  /** A call that took the probe slot ended without telling anything (cancelled by its caller). */
  onNeutral(): void {
    this.probing = false;
  }

  private moveTo(to: CircuitState): void {
    const from = this.state;
    this.state = to;
    if (from !== to) this.onTransition?.(from, to);
  }

  private trip(): void {
    this.moveTo('open');
    this.opened++;
    this.openUntil = this.now() + this.openFor;
  }

  stats(): CircuitStats {
    const state = this.current;
    return {
      state,
      consecutiveFailures: this.failures,
      opened: this.opened,
      rejected: this.rejected,
      retryAt: state === 'open' ? this.openUntil : 0,
    };
  }
}
