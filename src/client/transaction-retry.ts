/**
 * When and how long `client.transaction` waits before running a failed transaction again:
 * exponential backoff with jitter (the design document's formula
 * `delay = min(maxDelay, baseDelay * 2 ^ attempt)`, then a random share of it). Browser-safe.
 * @packageDocumentation
 */
import { DeadlockDetectedError, type HeliosDBError, SerializationFailureError } from './errors.js';

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
export function retryDelayMs(retry: number, base: number, max: number, retryAfterMs: number | undefined, random: () => number = Math.random): number {
  const ceiling = Math.min(max, base * 2 ** Math.max(0, retry - 1));
  const delay = ceiling / 2 + random() * (ceiling / 2);
  return Math.max(Math.round(delay), retryAfterMs ?? 0);
}
