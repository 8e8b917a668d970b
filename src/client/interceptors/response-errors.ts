/**
 * Seeing the errors of a response that streams: a stream's failure arrives while its messages are
 * read, after the call itself has returned. Browser-safe.
 * @packageDocumentation
 */
import type { StreamResponse, UnaryResponse } from '@connectrpc/connect';

/**
 * `res` with `onError` applied to an error its message stream throws (`onError` returns the error
 * to throw instead); a unary response as it is.
 */
export function onStreamError<R extends UnaryResponse | StreamResponse>(res: R, onError: (e: unknown) => unknown): R {
  if (!res.stream) return res;
  const inner = res.message;
  return {
    ...res,
    message: (async function* () {
      try {
        yield* inner;
      } catch (e) {
        throw onError(e);
      }
    })(),
  };
}
