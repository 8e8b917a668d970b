/**
 * What a transport tells the interceptors about an attempt: the facts it attaches to an attempt's
 * error (where it went, whether it left the client, its deadline), and the endpoint a retry should
 * avoid. Browser-safe.
 * @packageDocumentation
 */
import { createContextKey } from '@connectrpc/connect';

/** Facts a transport attaches to an attempt's error. */
export interface AttemptInfo {
  /** The endpoint (server URL) the attempt went to. */
  endpoint?: string;
  /** False when the request provably never left the client. */
  sent?: boolean;
  /** The call's absolute deadline (ms since the epoch), when it has one. */
  deadline?: number;
}

const attemptInfos = new WeakMap<object, AttemptInfo>();

/** Attaches {@link AttemptInfo} to an error (transports call this); returns the error. */
export function annotateAttempt<E>(error: E, info: AttemptInfo): E {
  if (error && typeof error === 'object') attemptInfos.set(error, { ...attemptInfos.get(error), ...info });
  return error;
}

/** The {@link AttemptInfo} of an error, if a transport attached any. */
export function attemptInfoOf(error: unknown): AttemptInfo | undefined {
  return error && typeof error === 'object' ? attemptInfos.get(error) : undefined;
}

/** Context value: the endpoint a retry should avoid (the one the failed attempt went to). */
export const avoidEndpoint = createContextKey<string | undefined>(undefined, { description: 'heliosdb endpoint to avoid' });
