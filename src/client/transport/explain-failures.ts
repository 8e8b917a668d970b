/**
 * The Connect-family transports' (`http://`, `https://`) low-level failures in the user's terms:
 * an http:// URL pointing at the native gRPC port says so (instead of `HTTP 415`), a TLS handshake
 * answered in plaintext says that the server does not speak TLS (an interceptor, innermost), and
 * a passed deadline names the call and its `timeoutMs` instead of "the operation timed out" (a
 * transport wrapper: Connect replaces any error of a call whose deadline passed with its own, after
 * the interceptors). Browser-safe.
 * @packageDocumentation
 */
import { Code, ConnectError, type Interceptor, type StreamResponse, type Transport, type UnaryResponse } from '@connectrpc/connect';
import { explainHttpToGrpcPort, explainTls } from '../connection-messages.js';
import type { HeliosDBErrorCode } from '../error-codes.js';
import { ConnectionError } from '../errors.js';
import { onStreamError } from '../interceptors/response-errors.js';

/** The code of a TLS failure in an error's cause chain (`ERR_SSL_WRONG_VERSION_NUMBER`, a certificate code). */
function tlsCodeOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (
      typeof code === 'string' &&
      (code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || /CERT|SIGNATURE|_ISSUER|SELF_SIGNED/.test(code))
    )
      return code;
  }
  return undefined;
}

/**
 * A failure that no retry can fix, as a ConnectError FAILED_PRECONDITION (so the retry
 * interceptor does not send the call again) carrying the ConnectionError the caller gets.
 */
function permanent(message: string, code: HeliosDBErrorCode, ce: ConnectError): ConnectError {
  const user = new ConnectionError(message, code, { cause: ce, grpcCode: ce.code });
  return new ConnectError(message, Code.FailedPrecondition, ce.metadata, undefined, user);
}

/** Rewrites one failure of a call to `baseUrl`; anything it does not recognise passes unchanged. */
export function explainFailure(e: unknown, baseUrl: string): unknown {
  if (!(e instanceof ConnectError) || e.details.length > 0) return e; // the server's own errors
  const tlsCode = tlsCodeOf(e.cause);
  if (tlsCode) {
    const why = explainTls(`${tlsCode} ${e.rawMessage}`);
    if (why) return permanent(`could not connect to ${baseUrl}: ${why} (${tlsCode})`, 'TLS_ERROR', e);
  }
  const wrongPort = explainHttpToGrpcPort(e.rawMessage, baseUrl);
  if (wrongPort) return permanent(wrongPort, 'WRONG_PROTOCOL', e);
  return e;
}

/** The interceptor of the file comment. Goes innermost, next to the transport, so that every layer above sees the explained error. */
export function explainInterceptor(baseUrl: string): Interceptor {
  return (next) => async (req) => {
    let res;
    try {
      res = await next(req);
    } catch (e) {
      throw explainFailure(e, baseUrl);
    }
    return onStreamError(res, (e) => explainFailure(e, baseUrl));
  };
}

/** A deadline error Connect made itself (no ErrorDetail from the server), with the call's name and `timeoutMs`. */
function deadline(e: unknown, method: string, timeoutMs: number | undefined): unknown {
  if (!(e instanceof ConnectError) || e.code !== Code.DeadlineExceeded || e.details.length > 0 || !timeoutMs) return e;
  return new ConnectError(
    `the ${method} call did not finish within its timeoutMs of ${timeoutMs} ms`,
    Code.DeadlineExceeded,
    e.metadata,
    undefined,
    e,
  );
}

/** Wraps a transport so that its deadline errors name the call and the `timeoutMs` it was given. */
export function explainDeadlines(inner: Transport): Transport {
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues): Promise<UnaryResponse<any, any>> {
      try {
        return await inner.unary(method, signal, timeoutMs, header, input, contextValues);
      } catch (e) {
        throw deadline(e, method.name, timeoutMs);
      }
    },
    async stream(method, signal, timeoutMs, header, input, contextValues): Promise<StreamResponse<any, any>> {
      let res: StreamResponse<any, any>;
      try {
        res = await inner.stream(method, signal, timeoutMs, header, input, contextValues);
      } catch (e) {
        throw deadline(e, method.name, timeoutMs);
      }
      const it = res.message[Symbol.asyncIterator]();
      return {
        ...res,
        message: {
          [Symbol.asyncIterator]: () => ({
            next: () =>
              it.next().catch((e: unknown) => {
                throw deadline(e, method.name, timeoutMs);
              }),
          }),
        },
      };
    },
  };
}
