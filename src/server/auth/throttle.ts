/**
 * Authentication throttling that slows guessing down without locking anyone out.
 *
 * Failures are counted per client address (see ./client-address.ts) and per credential (the user
 * name of a Login, the key id of an API key), each in a {@link FailureLimiter}. Passwords and
 * bearer tokens are counted apart: a wrong or stale token (a session lost in a restart, say)
 * slows no Login, and nothing slows a valid token.
 *
 * - Passwords ({@link AuthThrottle.checkPassword}): the attempt is counted as in flight before it
 *   is verified, so concurrent guesses count. From the (limit+1)-th attempt on the address or the
 *   user name, it waits (1 s, doubling, at most `maxDelayMs`) and is then verified: a correct
 *   password still succeeds, and resets the user name's count (not the address's). Checks run
 *   through a {@link FairQueue} (a few at a time, round robin per address). Bounded: at most
 *   `maxPendingPerAddress` attempts per address and `maxPendingPerUserAddress` per user name from
 *   one address in the pipeline (waiting or being checked), `maxPending` in all; beyond them, and
 *   when the wait would outlive the call's deadline, the answer is at once RESOURCE_EXHAUSTED with
 *   `retryAfterMs`. No bound counts one user name's attempts from all addresses together: guesses
 *   from elsewhere slow the user's Login down (its wait) but never refuse it at once (issue 11:
 *   a valid credential is never refused because others failed).
 * - Bearer tokens ({@link AuthThrottle.refuseToken}): high-entropy, so they are verified first
 *   and a valid one never waits. Only failures count; the refusal of a failure over the limit is
 *   held back for the delay (a tarpit), at most `maxTarpitPerAddress` per address and
 *   `maxTarpit` in all at a time (beyond: RESOURCE_EXHAUSTED at once).
 *
 * Every check of a password is published on the diagnostics channel {@link authChannel}.
 * @packageDocumentation
 */
import { ErrorReason } from '@heliosdb/client/wire';
import { createHash } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { setTimeout as sleep } from 'node:timers/promises';
import { Code, type ConnectError } from '@connectrpc/connect';
import { abortError } from '../call-context.js';
import { serverError } from '../errors.js';
import { type DeadlineSource, remainingMs } from './call-deadline.js';
import { addressKey } from './client-address.js';
import { defaultCheckConcurrency, FairQueue, QueueFull } from './password-queue.js';
import { type AttemptOutcome, FailureLimiter } from './rate-limit.js';

/**
 * The diagnostics channel `heliosdb:auth`: a {@link PasswordCheckEvent} when a password check
 * starts (for monitoring and tests).
 */
export const authChannel = channel('heliosdb:auth');

/** Published on {@link authChannel} when a password check starts. */
export interface PasswordCheckEvent {
  readonly event: 'password-check';
  /** The address key (IPv4, or an IPv6 /64). */
  readonly address: string;
  /** How long the throttle held the attempt back before queueing it, ms (0: not slowed). */
  readonly waitedMs: number;
  /** Checks running now, this one included. */
  readonly active: number;
}

/** Options of {@link AuthThrottle}. */
export interface AuthThrottleOptions {
  /** Failures allowed per address and per credential before attempts wait (`authFailureLimit`). Default 5. */
  freeFailures?: number;
  /** Longest wait, ms (`authMaxDelayMs`). Default 30000. */
  maxDelayMs?: number;
  /** First wait, ms. Default 1000. */
  baseDelayMs?: number;
  /** Failures are forgotten this long after the last one, ms. Default 900000 (15 min). */
  forgetAfterMs?: number;
  /** Most addresses, and most credentials, remembered. Default 10000 each. */
  maxTracked?: number;
  /** Password attempts one address may have waiting or being checked. Default 8. */
  maxPendingPerAddress?: number;
  /** Password attempts one user name may have waiting or being checked from one address. Default 8. */
  maxPendingPerUserAddress?: number;
  /** Password attempts waiting or being checked in all. Default 1024. */
  maxPending?: number;
  /** Held-back refusals of bearer tokens per address. Default 64. */
  maxTarpitPerAddress?: number;
  /** Held-back refusals of bearer tokens in all. Default 4096. */
  maxTarpit?: number;
  /** Password checks run at once. Default {@link defaultCheckConcurrency}. */
  checkConcurrency?: number;
  /** The clock, ms. Default `Date.now`. */
  clock?: () => number;
  /** Waits `ms` or until `signal` aborts (rejecting). Default: node:timers/promises setTimeout. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** One authentication attempt. */
export interface AuthAttempt {
  /** The client's address, as the listener reports it. */
  address: string;
  /** The call's signal: a wait ends when it aborts. */
  signal?: AbortSignal;
  /** Where the call's deadline can be read. */
  deadline?: DeadlineSource;
}

/** Counters of an {@link AuthThrottle}. */
export interface AuthThrottleStats {
  /** Password attempts waiting or being checked. */
  pending: number;
  /** Bearer refusals being held back. */
  tarpitted: number;
  /** Keys remembered by each limiter. */
  tracked: { passwordAddresses: number; users: number; tokenAddresses: number; apiKeys: number };
  /** Password checks running and queued, and the most ever run at once. */
  checks: { active: number; waiting: number; peakActive: number };
}

/** See the file comment. */
export class AuthThrottle {
  /** Wrong passwords per client address (a success does not clear them). */
  readonly passwordAddresses: FailureLimiter;
  /** Wrong passwords per user name (a success clears them). */
  readonly users: FailureLimiter;
  /** Refused bearer tokens per client address. */
  readonly tokenAddresses: FailureLimiter;
  /** Refused API keys per key id (a verified key clears them). */
  readonly apiKeys: FailureLimiter;
  private readonly checks: FairQueue;
  private readonly tarpit = new Map<string, number>();
  private tarpitted = 0;
  private pending = 0;
  /** Attempts in the pipeline per (address, user name) pair; at most `maxPending` entries. */
  private readonly pairs = new Map<string, number>();
  private readonly o: Required<AuthThrottleOptions>;

  constructor(options: AuthThrottleOptions = {}) {
    this.o = {
      freeFailures: 5,
      maxDelayMs: 30_000,
      baseDelayMs: 1000,
      forgetAfterMs: 900_000,
      maxTracked: 10_000,
      maxPendingPerAddress: 8,
      maxPendingPerUserAddress: 8,
      maxPending: 1024,
      maxTarpitPerAddress: 64,
      maxTarpit: 4096,
      checkConcurrency: defaultCheckConcurrency,
      clock: Date.now,
      sleep: (ms, signal) => sleep(ms, undefined, { signal }),
      ...options,
    };
    const { freeFailures, maxDelayMs, baseDelayMs, forgetAfterMs, maxTracked, clock } = this.o;
    const common = { freeFailures, maxDelayMs, baseDelayMs, forgetAfterMs, maxTracked, clock };
    this.passwordAddresses = new FailureLimiter({ ...common, resetOnSuccess: false });
    this.users = new FailureLimiter({ ...common, resetOnSuccess: true });
    this.tokenAddresses = new FailureLimiter({ ...common, resetOnSuccess: false });
    this.apiKeys = new FailureLimiter({ ...common, resetOnSuccess: true });
    this.checks = new FairQueue({
      concurrency: this.o.checkConcurrency,
      maxQueuedPerKey: this.o.maxPendingPerAddress,
      maxQueued: this.o.maxPending,
    });
  }

  /**
   * Verifies `user`'s password with `check` under the throttle: counts the attempt, waits when the
   * address or the user name is over the limit, queues the check fairly, and records the
   * outcome. Resolves with `check`'s answer; throws RESOURCE_EXHAUSTED (reason
   * `AUTH_RATE_LIMITED`) when a bound is reached or the wait would outlive the deadline, and the
   * call's abort error when it is cancelled while waiting.
   */
  async checkPassword(a: AuthAttempt & { user: string }, check: () => Promise<boolean>): Promise<boolean> {
    if (a.signal?.aborted) throw abortError(a.signal);
    const addr = addressKey(a.address);
    const user = credentialKey(a.user);
    // From here to the reservation nothing awaits: the check and the count are one step.
    const wait = Math.max(this.passwordAddresses.waitMs(addr), this.users.waitMs(user));
    const later = Math.max(1000, wait);
    if (this.pending >= this.o.maxPending) throw limited('the server is checking too many passwords right now', later);
    if (this.passwordAddresses.inFlight(addr) >= this.o.maxPendingPerAddress)
      throw limited('too many login attempts from this client are in progress', later);
    const pair = `${addr} ${user}`;
    const ofPair = this.pairs.get(pair) ?? 0;
    if (ofPair >= this.o.maxPendingPerUserAddress)
      throw limited('too many login attempts for this user from this client are in progress', later);
    this.refuseBeyondDeadline(a, wait);
    this.passwordAddresses.begin(addr);
    this.users.begin(user);
    this.pairs.set(pair, ofPair + 1);
    this.pending++;
    let outcome: AttemptOutcome = 'abandoned';
    try {
      if (wait > 0) await this.pause(wait, a.signal);
      const ok = await this.checks
        .run(
          addr,
          () => {
            if (authChannel.hasSubscribers) {
              const event: PasswordCheckEvent = {
                event: 'password-check',
                address: addr,
                waitedMs: wait,
                active: this.checks.stats().active,
              };
              authChannel.publish(event);
            }
            return check();
          },
          a.signal,
        )
        .catch((e: unknown) => {
          if (e instanceof QueueFull) throw limited('the server is checking too many passwords right now', 1000);
          if (a.signal?.aborted) throw abortError(a.signal);
          throw e;
        });
      outcome = ok ? 'success' : 'failure';
      return ok;
    } finally {
      this.pending--;
      const left = (this.pairs.get(pair) ?? 1) - 1;
      if (left > 0) this.pairs.set(pair, left);
      else this.pairs.delete(pair);
      this.passwordAddresses.end(addr, outcome);
      this.users.end(user, outcome);
    }
  }

  /**
   * Records a bearer token that failed verification (with its API key id, if it has one) and
   * throws `refusal`: at once while the address and the key id are under the limit, after the
   * delay (tarpit) over it, or RESOURCE_EXHAUSTED at once when the tarpit is full or the delay
   * would outlive the deadline.
   */
  async refuseToken(a: AuthAttempt & { apiKeyId?: string }, refusal: Error): Promise<never> {
    const addr = addressKey(a.address);
    const delay = Math.max(this.tokenAddresses.fail(addr), a.apiKeyId === undefined ? 0 : this.apiKeys.fail(a.apiKeyId));
    if (delay === 0) throw refusal;
    const held = this.tarpit.get(addr) ?? 0;
    if (held >= this.o.maxTarpitPerAddress || this.tarpitted >= this.o.maxTarpit)
      throw limited('too many failed authentication attempts from this client', delay);
    this.refuseBeyondDeadline(a, delay);
    this.tarpit.set(addr, held + 1);
    this.tarpitted++;
    try {
      await this.pause(delay, a.signal);
    } finally {
      this.tarpitted--;
      const n = (this.tarpit.get(addr) ?? 1) - 1;
      if (n > 0) this.tarpit.set(addr, n);
      else this.tarpit.delete(addr);
    }
    throw refusal;
  }

  /** Records a verified API key: its id's failures are cleared (the address's are not). */
  apiKeySucceeded(apiKeyId: string): void {
    this.apiKeys.succeed(apiKeyId);
  }

  /** Counters, for monitoring and tests. */
  stats(): AuthThrottleStats {
    return {
      pending: this.pending,
      tarpitted: this.tarpitted,
      tracked: {
        passwordAddresses: this.passwordAddresses.size,
        users: this.users.size,
        tokenAddresses: this.tokenAddresses.size,
        apiKeys: this.apiKeys.size,
      },
      checks: this.checks.stats(),
    };
  }

  /** Throws RESOURCE_EXHAUSTED when a wait of `ms` would outlive the call's deadline. */
  private refuseBeyondDeadline(a: AuthAttempt, ms: number): void {
    if (ms <= 0) return;
    const left = remainingMs(a.deadline ?? {});
    if (left !== undefined && ms >= left) {
      throw limited(
        `too many failed authentication attempts: this one would be checked only after ${seconds(ms)}, beyond the call's deadline; try again with a longer deadline`,
        ms,
        true,
      );
    }
  }

  private async pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.o.sleep(ms, signal);
    } catch (e) {
      if (signal?.aborted) throw abortError(signal);
      throw e;
    }
  }
}

/** A fixed-size key for a user name (names can be long; they are not kept in clear). */
function credentialKey(credential: string): string {
  return createHash('sha256').update(credential).digest('base64url');
}

function seconds(ms: number): string {
  const s = Math.max(1, Math.ceil(ms / 1000));
  return `${s} s`;
}

/** RESOURCE_EXHAUSTED, reason `AUTH_RATE_LIMITED`: "<what>; try again in N s" (or `what` alone when `whole`). */
function limited(what: string, retryAfterMs: number, whole = false): ConnectError {
  return serverError(Code.ResourceExhausted, whole ? what : `${what}; try again in ${seconds(retryAfterMs)}`, {
    reason: ErrorReason.AUTH_RATE_LIMITED,
    retryable: true,
    retryAfterMs: Math.ceil(retryAfterMs),
  });
}
