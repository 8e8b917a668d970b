/**
 * When and how long `client.transaction` waits before running a failed transaction again:
 * exponential backoff with jitter (the design document's formula
 * `delay = min(maxDelay, baseDelay * 2 ^ attempt)`, then a random share of it). Browser-safe.
 * @packageDocumentation
 */
import { DeadlockDetectedError, type HeliosDBError, SerializationFailureError, TransactionError } from './errors.js';

/** Retry settings of `client.transaction`. */
export interface TransactionRetryOptions {
  /**
   * How many times the whole callback runs again after a serialization failure (40001) or a
   * deadlock (40P01). **Each retry repeats everything the callback does, including its side
   * effects outside the database.** `0` disables retrying. Default `3`.
   */
  maxRetries?: number;
  /** Backoff before the first retry, ms; it doubles with each retry. Default `20`. */
  retryBaseDelayMs?: number;
  /** Longest backoff, ms. Default `1000`. */
  retryMaxDelayMs?: number;
  /** Called before each retry with the error, the retry number (1-based) and the wait. Default none. */
  onRetry?: (error: HeliosDBError, retry: number, delayMs: number) => void;
}

/** Defaults of {@link TransactionRetryOptions}. */
export const transactionRetryDefaults = { maxRetries: 3, retryBaseDelayMs: 20, retryMaxDelayMs: 1000 } as const;

/** Whether a transaction that failed with `error` should run again. */
export function isTransactionConflict(error: unknown): error is SerializationFailureError | DeadlockDetectedError {
  return error instanceof SerializationFailureError || error instanceof DeadlockDetectedError;
}

/**
 * The wait before retry number `retry` (1-based): `min(max, base * 2^(retry-1))`, of which a
 * random half to all is used ("equal jitter"), and never less than the server's `retryAfterMs`.
 */
export function retryDelayMs(
  retry: number,
  base: number,
  max: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(max, base * 2 ** Math.max(0, retry - 1));
  const delay = ceiling / 2 + random() * (ceiling / 2);
  return Math.max(Math.round(delay), retryAfterMs ?? 0);
}

/** What {@link runTransaction} needs of a transaction. */
export interface RunnableTransaction {
  readonly finished: boolean;
  /** The conflict that doomed it, when a statement failed with one (the callback may have caught it). */
  readonly conflict: HeliosDBError | undefined;
  commit(): Promise<unknown>;
  rollback(): Promise<unknown>;
}

/**
 * `client.transaction(fn)`: begins a transaction, runs `fn`, commits; after a serialization
 * failure or deadlock, rolls back and runs it all again (see {@link TransactionRetryOptions}).
 * `onRetry` counts retries for the client's stats.
 */
export async function runTransaction<T extends RunnableTransaction, R>(
  begin: () => Promise<T>,
  fn: (tx: T) => Promise<R> | R,
  options: TransactionRetryOptions,
  countRetry: () => void,
): Promise<R> {
  if (typeof fn !== 'function') {
    throw new TypeError('client.transaction(fn, options) needs a callback; use client.begin(options) for a transaction object');
  }
  const maxRetries = options.maxRetries ?? transactionRetryDefaults.maxRetries;
  if (!Number.isInteger(maxRetries) || maxRetries < 0) throw new RangeError(`maxRetries must be a non-negative integer, got ${maxRetries}`);
  const base = options.retryBaseDelayMs ?? transactionRetryDefaults.retryBaseDelayMs;
  const max = options.retryMaxDelayMs ?? transactionRetryDefaults.retryMaxDelayMs;
  for (let attempt = 0; ; attempt++) {
    const tx = await begin();
    try {
      const result = await fn(tx);
      if (!tx.finished) await tx.commit();
      return result;
    } catch (e) {
      if (!tx.finished) await tx.rollback().catch(() => {});
      // A conflict the callback caught still dooms the transaction: its later statements (or the
      // commit) fail with "transaction aborted".
      const conflict = isTransactionConflict(e)
        ? e
        : e instanceof TransactionError && e.code === 'TRANSACTION_ABORTED'
          ? tx.conflict
          : undefined;
      if (!conflict || attempt >= maxRetries) throw e;
      const retry = attempt + 1;
      const delay = retryDelayMs(retry, base, max, conflict.retryAfterMs);
      countRetry();
      try {
        options.onRetry?.(conflict, retry, delay);
      } catch {
        // A failing hook must not stop the retry.
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
