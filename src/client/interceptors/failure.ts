/**
 * What a failed attempt tells: whether it provably never reached the server, whether it failed on
 * the way or with the server's answer, and what the server said (the ErrorDetail's reason,
 * `retry-after`). Browser-safe.
 * @packageDocumentation
 */
import { headers } from '../protocol/headers.js';
import { Code, ConnectError, type StreamRequest, type UnaryRequest } from '@connectrpc/connect';
import { type ErrorDetail, ErrorDetailSchema, ErrorReason } from '../../../gen/heliosdb/v1/error_pb.js';
import { HeliosDBError } from '../errors.js';
import { annotateAttempt, attemptInfoOf } from '../transport/attempt-info.js';

/** The ErrorDetail of a server's answer. */
export function detailOf(e: unknown): ErrorDetail | undefined {
  if (e instanceof ConnectError) return e.findDetails(ErrorDetailSchema)[0];
  return undefined;
}

function codesInChain(e: unknown): string[] {
  const out: string[] = [];
  for (let x = e, depth = 0; x && typeof x === 'object' && depth < 6; x = (x as { cause?: unknown }).cause, depth++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === 'string') out.push(code);
  }
  return out;
}

// grpc-js and connect-node say that a request never left only in error codes and messages (no
// typed field): these are the ones they use for refused connections and streams.
const neverSentCodes = new Set([
  'CONNECT_TIMEOUT',
  'CONNECTION_FAILED',
  'CIRCUIT_OPEN',
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
const neverSentMessage =
  /No connection established|Stream refused|REFUSED_STREAM|Failed to start HTTP\/2 stream|ECONNREFUSED|ENOTFOUND|EAI_AGAIN/;

/** Whether a failed attempt provably never reached the server. */
export function neverSent(e: unknown): boolean {
  const info = attemptInfoOf(e);
  if (info?.sent === false) return true;
  if (codesInChain(e).some((c) => neverSentCodes.has(c))) return true;
  for (let x = e, depth = 0; x && typeof x === 'object' && depth < 6; x = (x as { cause?: unknown }).cause, depth++) {
    const message = (x as { message?: unknown }).message;
    if (typeof message === 'string' && neverSentMessage.test(message)) return true;
  }
  return false;
}

/** The Connect code of an attempt's error. */
export function codeOf(e: unknown): Code {
  if (e instanceof ConnectError) return e.code;
  if (e instanceof HeliosDBError) return e.grpcCode;
  return Code.Unknown;
}

/**
 * Whether an attempt failed on the way (the connection, the stream), not with an answer from the
 * server: no ErrorDetail, and a code transports use for broken connections (connect-node reports
 * a reset connection as ABORTED).
 */
export function isTransportFailure(e: unknown): boolean {
  if (detailOf(e)) return false;
  if (e instanceof HeliosDBError)
    return e.code === 'CONNECT_TIMEOUT' || e.code === 'CONNECTION_FAILED' || e.code === 'CIRCUIT_OPEN' || e.code === 'CONNECTION_ERROR';
  const code = codeOf(e);
  return code === Code.Unavailable || code === Code.Internal || code === Code.Unknown || code === Code.Aborted;
}

/**
 * A CANCELLED the caller did not ask for is a lost connection (connect-node reports an HTTP/2
 * session that died under a stream as RST_STREAM CANCEL): make it UNAVAILABLE, so that it is
 * treated, retried and reported as one.
 */
export function normalizeFailure(req: UnaryRequest | StreamRequest, e: unknown): unknown {
  if (codeOf(e) !== Code.Canceled || detailOf(e) || (req.signal as AbortSignal | undefined)?.aborted) return e;
  const ce = ConnectError.from(e);
  const lost = new ConnectError(`the connection was lost: ${ce.rawMessage}`, Code.Unavailable, ce.metadata, undefined, e);
  const info = attemptInfoOf(e);
  return info ? annotateAttempt(lost, info) : lost;
}

/** The server says the database connection broke mid-statement: not applied, or applied; unknown. */
export function lostMidStatement(e: unknown): boolean {
  return detailOf(e)?.reason === ErrorReason.BACKEND_CONNECTION_LOST;
}

/** The server refused a call sent as a read: it writes. */
export function isNotARead(e: unknown): boolean {
  return detailOf(e)?.reason === ErrorReason.NOT_A_READ;
}

/** The server refused the call's idempotency key: the statement cannot carry one. */
export function isNotKeyable(e: unknown): boolean {
  return detailOf(e)?.reason === ErrorReason.NOT_KEYABLE;
}

/** A `retry-after` response header (seconds, or an HTTP date), in ms. */
export function retryAfterHeader(e: unknown): number | undefined {
  const v = e instanceof ConnectError ? e.metadata.get(headers.retryAfter) : null;
  if (!v) return undefined;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}
