/**
 * What the service needs to know about a call, whichever listener it came through: Connect's
 * HandlerContext has these fields, and the native gRPC listener builds the same.
 * @packageDocumentation
 */
import { headers } from '@heliosdb/client/wire';
import { ErrorReason } from '@heliosdb/client/wire';
import { Code, ConnectError, type ContextValues } from '@connectrpc/connect';
import type { PeerInfo, Principal } from './auth/principal.js';
import { serverError } from './errors.js';

/** See the file comment. */
export interface CallContext {
  /** Aborted when the client cancels or the deadline passes (reason: a ConnectError). */
  readonly signal: AbortSignal;
  /** Request headers (Connect's Headers, or a view of gRPC metadata). */
  readonly requestHeader: { get(name: string): string | null };
  /** Who the call comes from (native gRPC listener; see `principalOf` in ./auth/principal.ts). */
  principal?: Principal;
  /** The connection it came over (native gRPC listener). */
  peer?: PeerInfo;
  /** Connect's context values (HTTP listener: the principal and peer are kept there). */
  readonly values?: ContextValues;
  /**
   * Authenticates the call again from its headers and replaces `principal` (a long-lived stream,
   * SessionService, on the native gRPC listener); rejects as authentication does.
   */
  reauthenticate?(): Promise<void>;
  /** Milliseconds left before the call's deadline; undefined without one (both listeners). */
  timeoutMs?(): number | undefined;
}

/** Request header carrying the client's application name. */
export const applicationNameHeader = headers.applicationName;

/** The error for a call whose signal aborted: a deadline, or a cancellation by the client. */
export function abortError(signal: AbortSignal): ConnectError {
  const reason: unknown = signal.reason;
  if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) {
    return serverError(Code.DeadlineExceeded, 'the deadline passed; the statement was cancelled in the database', {
      reason: ErrorReason.DEADLINE_EXCEEDED,
      sqlstate: '57014',
    });
  }
  return serverError(Code.Canceled, 'the call was cancelled; the statement was cancelled in the database', {
    reason: ErrorReason.CANCELLED,
    sqlstate: '57014',
  });
}
