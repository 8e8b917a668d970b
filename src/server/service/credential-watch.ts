/**
 * Re-validates the credential of a long-lived call (a Listen stream) while it runs: every
 * `--auth-cache-ms` (at least {@link minRecheckMs}) it asks {@link Principal.stillValid}, and once
 * the credential no longer holds (API key revoked, session ended by logout or a password change,
 * user deleted, access token expired) it hands the call UNAUTHENTICATED (reason
 * `UNAUTHENTICATED`) to end with, so a revoked credential keeps no channel open longer than a new
 * call with it would be served.
 * @packageDocumentation
 */
import { Code, type ConnectError } from '@connectrpc/connect';
import { ErrorReason } from '@heliosdb/client/wire';
import type { Principal } from '../auth/principal.js';
import { serverError } from '../errors.js';

/** The shortest interval between two re-checks of one call, ms (with `--auth-cache-ms 0`). */
export const minRecheckMs = 250;

/**
 * Calls `onInvalid` once with UNAUTHENTICATED when `principal`'s credential stops holding,
 * checking every `cacheMs` (at least {@link minRecheckMs}). Returns the function that stops
 * watching. Anonymous principals (no {@link Principal.stillValid}) are not watched.
 */
export function watchCredential(principal: Principal, cacheMs: number, onInvalid: (e: ConnectError) => void): () => void {
  const stillValid = principal.stillValid;
  if (!stillValid) return () => {};
  let stopped = false;
  const timer = setInterval(
    () => {
      void stillValid().then((ok) => {
        if (ok || stopped) return;
        stop();
        onInvalid(
          serverError(
            Code.Unauthenticated,
            'the credential of this call is no longer valid (API key revoked, session ended or user deleted): call again with a valid one',
            { reason: ErrorReason.UNAUTHENTICATED },
          ),
        );
      });
    },
    Math.max(minRecheckMs, cacheMs),
  );
  timer.unref();
  const stop = () => {
    stopped = true;
    clearInterval(timer);
  };
  return stop;
}
