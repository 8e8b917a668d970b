/**
 * What the retry interceptor tells the layers outside it about one call: each attempt it sends
 * again (a span event, a client event). Keyed by the request object, which every interceptor
 * passes on as it is. Browser-safe.
 * @packageDocumentation
 */

/** One retry of a call. */
export interface RetryNote {
  /** The attempt about to be sent: 2 for the first retry. */
  attempt: number;
  /** The backoff waited before it, ms. */
  delayMs: number;
  /** What the previous attempt failed with. */
  error: unknown;
}

type Observer = (note: RetryNote) => void;

const observers = new WeakMap<object, Observer[]>();

/** Calls `fn` for every retry of the call `req` starts. */
export function observeRetries(req: object, fn: Observer): void {
  const list = observers.get(req);
  if (list) list.push(fn);
  else observers.set(req, [fn]);
}

/** Reports a retry of `req` (the retry interceptor calls this); an observer that throws is ignored. */
export function noteRetry(req: object, note: RetryNote): void {
  const list = observers.get(req);
  if (!list) return;
  for (const fn of list) {
    try {
      fn(note);
    } catch {
      // Observers must not change the call.
    }
  }
}
