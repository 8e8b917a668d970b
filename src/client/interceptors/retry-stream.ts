/**
 * Retries of server-streaming calls (StreamQuery, CopyTo, Listen, health Watch): sent again only
 * before their first row (or their completion) was delivered, never after. Browser-safe.
 * @packageDocumentation
 */
import type { StreamRequest, StreamResponse } from '@connectrpc/connect';
import { type CallKind, callKindOf, claimRead, type SqlMessage } from '../call-kind.js';
import { avoidEndpoint } from '../transport/attempt-info.js';
import { isNotARead, normalizeFailure } from './failure.js';
import { type RetryPolicy, sleep } from './retry-policy.js';

/** Sends `req` through `next`, again while nothing was delivered and `policy` allows it. */
export async function retryStream(
  policy: RetryPolicy,
  next: (r: StreamRequest) => Promise<StreamResponse>,
  req: StreamRequest,
): Promise<StreamResponse> {
  // Connect's request iterable is single-use: keep its messages for the next attempt.
  const source = req.message;
  let cache: unknown[] | undefined;
  (req as { message: AsyncIterable<unknown> }).message = {
    async *[Symbol.asyncIterator]() {
      if (!cache) {
        const c: unknown[] = [];
        for await (const m of source) c.push(m);
        cache = c;
        claimRead(req.method, callKindOf(req.method, c[0]), c[0] as SqlMessage);
      }
      yield* cache;
    },
  };
  let notARead = false;
  let kind: CallKind = 'other';
  const kindOf = (m: unknown): CallKind => (notARead ? 'other' : callKindOf(req.method, m));
  /** A stream sent as a read that writes: sent again as a write (not retried once sent). */
  const reclassify = (e: unknown): boolean => {
    const m = cache?.[0] as SqlMessage | undefined;
    if (!m?.readOnly || !isNotARead(e)) return false;
    m.readOnly = false;
    notARead = true;
    kind = 'other';
    return true;
  };
  const state = { attempt: 0, maybeApplied: false, startedAt: Date.now() };
  /** After a failure: waits and returns true when the call is to be sent again. */
  const again = async (e: unknown): Promise<boolean> => {
    const d = policy.decide(req, kind, false, e, state);
    if (!d.retry || !(await sleep(d.delay, req.signal))) return false;
    state.attempt++;
    policy.noteRetry(req, { attempt: state.attempt + 1, delayMs: d.delay, error: e });
    policy.onRetry(req, d, (endpoint) => req.contextValues.set(avoidEndpoint, endpoint));
    return true;
  };
  const open = async (): Promise<StreamResponse> => {
    for (;;) {
      try {
        const res = await next(req);
        if (cache?.[0]) kind = kindOf(cache[0]);
        return res;
      } catch (caught) {
        const e = normalizeFailure(req, caught);
        if (cache?.[0]) kind = kindOf(cache[0]);
        if (reclassify(e)) continue;
        if (!(await again(e))) throw e;
      }
    }
  };
  const first = await open();
  return {
    ...first,
    message: (async function* () {
      let res = first;
      let headerDelivered = false;
      let rowsDelivered = false;
      for (;;) {
        try {
          for await (const m of res.message as AsyncIterable<{ event?: { case?: string } }>) {
            if (m?.event?.case === 'header') {
              if (headerDelivered) continue; // the retry's header: the consumer has one
              headerDelivered = true;
            } else {
              rowsDelivered = true;
            }
            yield m;
          }
          policy.credit();
          return;
        } catch (caught) {
          const e = normalizeFailure(req, caught);
          if (rowsDelivered) throw e;
          if (!reclassify(e) && !(await again(e))) throw e;
          res = await open();
        }
      }
    })(),
  } as StreamResponse;
}
