/**
 * The retry decisions of one client: after a failed attempt, whether to send it again and when
 * (by the call's kind, the failure, the retry budget of its endpoint and its deadline), and the
 * error a call ends with (AmbiguousResultError when a write's fate stays unknown). Shared by the
 * unary and the streaming retry paths. Browser-safe.
 * @packageDocumentation
 */
import { headers } from '../protocol/headers.js';
import { Code, ConnectError, type StreamRequest, type UnaryRequest } from '@connectrpc/connect';
import { ErrorReason } from '../../../gen/heliosdb/v1/error_pb.js';
import type { CallKind } from '../call-kind.js';
import { AmbiguousResultError, HeliosDBError } from '../errors.js';
import { attemptInfoOf } from '../transport/attempt-info.js';
import { codeOf, detailOf, isTransportFailure, lostMidStatement, neverSent, retryAfterHeader } from './failure.js';
import { RetryBudget } from './retry-budget.js';
import { noteRetry, type RetryNote } from '../telemetry/call-observer.js';
import type { ClientEvents } from '../telemetry/client-events.js';
import { type ResolvedRetryOptions, retryDelayFor } from './retry-options.js';

/** Counters of a client's retries. */
export interface RetryStats {
  /** Attempts sent again. */
  retries: number;
  /** Retries not sent because the endpoint's retry budget was spent. */
  retriesThrottled: number;
  /** Writes whose outcome stayed unknown (each threw AmbiguousResultError). */
  ambiguousResults: number;
  /** The retry budget per endpoint: tokens left. */
  budgets: Record<string, number>;
}

/** What earlier attempts of one call learnt. */
export interface AttemptState {
  attempt: number;
  /** A write may have been applied without its answer coming back. */
  maybeApplied: boolean;
  startedAt: number;
}

/** The verdict on a failed attempt. */
export type Decision = { retry: true; delay: number; deadline: number | undefined; endpoint: string } | { retry: false };

type AnyRequest = UnaryRequest | StreamRequest;

/** Waits `ms`; false when `signal` aborted first. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The call's absolute deadline: from the transport's note, or from the protocol's timeout header. */
function deadlineOf(req: AnyRequest, e: unknown, startedAt: number, headerRead: boolean): number | undefined {
  const noted = attemptInfoOf(e)?.deadline;
  if (noted !== undefined) return noted;
  if (!headerRead) return undefined;
  const ms = Number(req.header.get(headers.connectTimeout));
  if (ms > 0) return startedAt + ms;
  const grpc = /^(\d+)([HMSmun])$/.exec(req.header.get(headers.grpcTimeout) ?? '');
  if (grpc) {
    const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }[grpc[2] as 'H'];
    return startedAt + Number(grpc[1]) * unit;
  }
  return undefined;
}

/** See the file comment. */
export class RetryPolicy {
  private readonly budgets = new Map<string, RetryBudget>();
  private retries = 0;
  private retriesThrottled = 0;
  private ambiguousResults = 0;
  /** Budgets below their maximum: successes need to refill them. */
  private depleted = 0;

  /**
   * `headerTimeouts`: the transport puts the call's timeout in the request header (the Connect
   * transports) rather than noting its deadline on errors.
   */
  constructor(
    readonly options: ResolvedRetryOptions,
    private readonly headerTimeouts: boolean,
    private readonly events?: ClientEvents,
  ) {}

  /** Tells the call's observers (its span) and the client's `retry` listeners that `req` is sent again. */
  noteRetry(req: AnyRequest, note: RetryNote): void {
    noteRetry(req, note);
    this.events?.emit('retry', { method: req.method.name, ...note });
  }

  /** A call succeeded: the budgets earn tokens back. */
  credit(): void {
    if (this.depleted === 0) return;
    this.depleted = 0;
    for (const b of this.budgets.values()) {
      b.onSuccess();
      if (b.tokens < b.maxTokens) this.depleted++;
    }
  }

  /** After a failed attempt: whether to send again, and the wait. `state` carries what earlier attempts learnt. */
  decide(req: AnyRequest, kind: CallKind, keyed: boolean, e: unknown, state: AttemptState): Decision {
    const code = codeOf(e);
    const transport = isTransportFailure(e);
    // Never sent, for a reason another attempt can fix (not a saturated pool or a closed client).
    const never = neverSent(e) && (transport || code === Code.Unavailable);
    const detail = detailOf(e);
    const durable = kind === 'write' || kind === 'commit';
    if (durable && !never && (transport || lostMidStatement(e) || code === Code.DeadlineExceeded)) state.maybeApplied = true;
    if (code === Code.Canceled || code === Code.DeadlineExceeded) return { retry: false };
    // Failed logins slowed down on purpose are for the caller to see, never retried here.
    if (detail?.reason === ErrorReason.AUTH_RATE_LIMITED) return { retry: false };
    const transient = never || transport || detail?.retryable === true || lostMidStatement(e);
    if (!transient) return { retry: false };
    let resend: boolean;
    if (never || kind === 'safe' || (durable && keyed)) resend = true;
    // Unkeyed auto-commit write: only when the server says it did not run (retryable, e.g. a serialization failure).
    else if (kind === 'write') resend = !transport && !lostMidStatement(e) && detail?.retryable === true;
    else resend = false;
    const endpoint = this.endpointOf(req, e);
    const budget = this.budgetOf(endpoint);
    // A call refused by an open circuit was no attempt: it costs no token.
    if (budget && !(e instanceof HeliosDBError && e.code === 'CIRCUIT_OPEN')) {
      budget.onFailure();
      this.depleted++;
    }
    if (!resend || state.attempt + 1 >= this.options.maxAttempts) return { retry: false };
    if (budget && !budget.allows()) {
      this.retriesThrottled++;
      return { retry: false };
    }
    const retryAfter = (e instanceof HeliosDBError ? e.retryAfterMs : detail?.retryAfterMs) || retryAfterHeader(e);
    const delay = retryDelayFor(state.attempt, this.options, retryAfter);
    const deadline = deadlineOf(req, e, state.startedAt, this.headerTimeouts);
    // No retry that could not even start before the deadline.
    if (deadline !== undefined && Date.now() + delay + 5 >= deadline) return { retry: false };
    return { retry: true, delay, deadline, endpoint };
  }

  /** Counts a retry about to be sent, and prepares the request for it (its timeout, the endpoint to avoid). */
  onRetry(req: AnyRequest, d: Decision & { retry: true }, avoid: (endpoint: string) => void): void {
    this.retries++;
    avoid(d.endpoint);
    if (d.deadline !== undefined && this.headerTimeouts) {
      // Connect transports send the timeout header per attempt: the time left.
      const left = Math.max(1, Math.floor(d.deadline - Date.now()));
      if (req.header.has(headers.connectTimeout)) req.header.set(headers.connectTimeout, String(left));
      if (req.header.has(headers.grpcTimeout)) req.header.set(headers.grpcTimeout, `${left}m`);
    }
  }

  /** The error a call ends with: the last failure, or AmbiguousResultError when a write's fate is unknown. */
  finalError(req: AnyRequest, kind: CallKind, e: unknown, maybeApplied: boolean, key: string | undefined, attempts: number): unknown {
    if (!maybeApplied) return e;
    // A definitive answer from the server (with a key it is the recorded outcome) settles it; a
    // deadline or cancellation it reports may have cut a wait for an earlier attempt short.
    const code = codeOf(e);
    if (detailOf(e) && !lostMidStatement(e) && code !== Code.DeadlineExceeded && code !== Code.Canceled) return e;
    this.ambiguousResults++;
    const what = kind === 'commit' ? 'the commit' : 'the write';
    const why = key
      ? `its idempotency key could not settle it within ${attempts} attempt${attempts === 1 ? '' : 's'} (the retry budget, the deadline or maxAttempts ran out)`
      : 'it was sent without an idempotency key (retry.idempotencyKeys is off, or the statement cannot carry one)';
    const cause = e instanceof Error ? e.message : String(e);
    const amb = new AmbiguousResultError(
      `the outcome of ${what} is unknown: the request may have reached the server, but its answer was lost (${cause}), and ${why}. Check whether it was applied before doing it again`,
      { cause: e, grpcCode: codeOf(e), idempotencyKey: key },
    );
    // A call that ends with its deadline reports the deadline's reason: attach the verdict to it
    // (toHeliosError unwraps a HeliosDBError cause).
    const reason = (req.signal as AbortSignal | undefined)?.aborted ? req.signal.reason : undefined;
    if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) reason.cause = amb;
    return amb;
  }

  /** The counters. */
  stats(): RetryStats {
    const budgets: Record<string, number> = {};
    for (const [k, b] of this.budgets) budgets[k] = Math.round(b.tokens * 100) / 100;
    return { retries: this.retries, retriesThrottled: this.retriesThrottled, ambiguousResults: this.ambiguousResults, budgets };
  }

  private budgetOf(endpoint: string): RetryBudget | undefined {
    const o = this.options.budget;
    if (!o) return undefined;
    let b = this.budgets.get(endpoint);
    if (!b) this.budgets.set(endpoint, (b = new RetryBudget(o.maxTokens, o.tokenRatio)));
    return b;
  }

  private endpointOf(req: AnyRequest, e: unknown): string {
    const noted = attemptInfoOf(e)?.endpoint;
    if (noted) return noted;
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/]+/i.exec(req.url);
    return m ? m[0] : req.url;
  }
}
