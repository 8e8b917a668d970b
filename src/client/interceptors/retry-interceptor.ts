/**
 * Retries that never duplicate a write: one Connect interceptor for every transport (native gRPC
 * in Node, Connect and gRPC-Web in Node and in browsers). Browser-safe.
 *
 * What is sent again, after a backoff `min(maxDelayMs, baseDelayMs * exponentialBase^n)` plus a
 * random share (`jitter`) and never sooner than the server's `retry_after_ms`:
 * - anything the server provably never received (connection refused, stream refused, the
 *   circuit open, a connection that could not be opened in time);
 * - reads (statements that are SELECT, VALUES, TABLE, SHOW, EXPLAIN, or WITH without a data
 *   change) and calls without effects (Prepare, GetServerInfo, health checks, BeginTransaction,
 *   Rollback), after a lost connection or when the server marks the error retryable;
 * - server-streaming queries, only before their first row was delivered;
 * - writes only through idempotency keys: every auto-commit statement that is not a read, and
 *   every Commit, carries a key the server records with its outcome, so a repeat returns the
 *   first result instead of running again (see the server's idempotency.ts).
 * Statements inside a transaction are sent again only when they never left; serialization
 * failures re-run whole transactions in `client.transaction`, not here.
 *
 * Never: past the call's deadline, after the caller cancelled, or when the endpoint's retry
 * budget (a token bucket as in gRPC's retry throttling) is spent. A write whose outcome stays
 * unknown fails with {@link AmbiguousResultError}.
 * @packageDocumentation
 */
import type { Interceptor, StreamRequest, StreamResponse } from '@connectrpc/connect';
import { type CallKind, callKindOf, claimRead, keyableMessage, type SqlMessage } from '../call-kind.js';
import { newIdempotencyKey } from '../idempotency-key.js';
import type { ClientEvents } from '../telemetry/client-events.js';
import { avoidEndpoint } from '../transport/attempt-info.js';
import { isNotARead, isNotKeyable, normalizeFailure } from './failure.js';
import type { ResolvedRetryOptions } from './retry-options.js';
import { RetryPolicy, type RetryStats, sleep } from './retry-policy.js';
import { retryStream } from './retry-stream.js';

/** What {@link createRetryInterceptor} returns. */
export interface RetryControl {
  interceptor: Interceptor;
  stats(): RetryStats;
}

/**
 * Builds the retry interceptor. `headerTimeouts`: the transport puts the call's timeout in the
 * request header (the Connect transports) rather than noting its deadline on errors.
 */
export function createRetryInterceptor(
  options: ResolvedRetryOptions,
  init: { headerTimeouts: boolean; events?: ClientEvents },
): RetryControl {
  const policy = new RetryPolicy(options, init.headerTimeouts, init.events);
  const interceptor: Interceptor = (next) => async (req) => {
    // A streaming request (CopyFrom) cannot be sent again: its caller settles it by its key.
    if (req.stream && req.method.methodKind !== 'server_streaming') return next(req);
    if (req.stream) return retryStream(policy, next as (r: StreamRequest) => Promise<StreamResponse>, req);
    const method = req.method;
    const message = req.message as SqlMessage;
    let kind: CallKind = callKindOf(method, message);
    let key: string | undefined;
    const keyIt = () => {
      if (options.idempotencyKeys && (kind === 'write' || kind === 'commit') && keyableMessage(method, message)) {
        key = message.idempotencyKey ||= newIdempotencyKey();
      }
    };
    keyIt();
    claimRead(method, kind, message);
    /** Sends the call again at once as what the server said it is (a write; or without a key). */
    const reclassify = (e: unknown): boolean => {
      if (isNotARead(e) && message.readOnly) {
        message.readOnly = false;
        kind = 'write';
        keyIt();
        return true;
      }
      if (isNotKeyable(e) && message.idempotencyKey) {
        message.idempotencyKey = '';
        key = undefined;
        return true;
      }
      return false;
    };
    const state = { attempt: 0, maybeApplied: false, startedAt: Date.now() };
    for (;;) {
      try {
        const res = await next(req);
        policy.credit();
        return res;
      } catch (caught) {
        const e = normalizeFailure(req, caught);
        // Refused before it ran: sent again at once, as what it is (no attempt spent).
        if (reclassify(e)) continue;
        const d = policy.decide(req, kind, key !== undefined, e, state);
        if (!d.retry || !(await sleep(d.delay, req.signal)))
          throw policy.finalError(req, kind, e, state.maybeApplied, key, state.attempt + 1);
        state.attempt++;
        policy.noteRetry(req, { attempt: state.attempt + 1, delayMs: d.delay, error: e });
        policy.onRetry(req, d, (endpoint) => req.contextValues.set(avoidEndpoint, endpoint));
      }
    }
  };
  return { interceptor, stats: () => policy.stats() };
}
