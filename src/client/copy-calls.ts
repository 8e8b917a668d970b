/**
 * `copyFrom` and `copyTo` over a {@link QueryRunner}: the CopyFrom client-streaming RPC (a keyed
 * write in auto-commit: when its answer is lost, the key settles whether it was applied, without
 * sending the data again) and the CopyTo server-streaming RPC. Browser-safe (browsers cannot send
 * a streaming request: copyFrom fails there with UNSUPPORTED_IN_BROWSER).
 * @packageDocumentation
 */
import { Code, ConnectError } from '@connectrpc/connect';
import type { CopyFromRequest } from '../../gen/heliosdb/v1/database_pb.js';
import { ErrorDetailSchema, ErrorReason } from '../../gen/heliosdb/v1/error_pb.js';
import { type CopyResult, type CopySource, type CopyToStream, copyMessages, isReplayable } from './copy.js';
import { AmbiguousResultError, ConnectionError, HeliosDBError } from './errors.js';
import type { QueryRunner } from './query-runner.js';
import { newIdempotencyKey } from './idempotency-key.js';
import { isTransportFailure, neverSent } from './interceptors/failure.js';
import type { CallOptions } from './types.js';

/** Options of `copyFrom`. */
export interface CopyFromOptions extends CallOptions {
  /** Bytes per message sent. Default 256 KiB. */
  chunkBytes?: number;
}

/** Options of `copyTo`. */
export interface CopyToOptions extends CallOptions {
  /** Preferred bytes per chunk received. Default: the server's (256 KiB). */
  chunkBytes?: number;
}

function mayHaveApplied(e: unknown): boolean {
  if (neverSent(e)) return false;
  const ce = e instanceof ConnectError ? e : undefined;
  const reason = ce?.findDetails(ErrorDetailSchema)[0]?.reason;
  return isTransportFailure(e) || reason === ErrorReason.BACKEND_CONNECTION_LOST || ce?.code === Code.DeadlineExceeded;
}

/** Runs `COPY ... FROM STDIN` with `source` as its data; see the file comment. */
export async function copyFrom(runner: QueryRunner, sql: string, source: CopySource, options: CopyFromOptions = {}): Promise<CopyResult> {
  runner.check();
  const why = runner.hooks.noRequestStreams;
  if (why)
    throw new HeliosDBError(
      `copyFrom is not available here: ${why}. Use executeMany (or a multi-row INSERT) instead, or run the COPY from Node over grpc://`,
      'UNSUPPORTED_IN_BROWSER',
    );
  const t0 = performance.now();
  const retry = runner.config.retry;
  const keyed = runner.transactionId === '' && retry !== false && (retry?.idempotencyKeys ?? true);
  /** The source's own failure (it threw): nothing was applied, and it is the caller's error to see. */
  let sourceError: { error: unknown } | undefined;
  const send = async (key: string): Promise<CopyResult> => {
    sourceError = undefined;
    async function* requests(): AsyncGenerator<Partial<CopyFromRequest>> {
      yield { sql, transactionId: runner.transactionId, idempotencyKey: key };
      try {
        for await (const data of copyMessages(source, options.chunkBytes)) yield { data };
      } catch (e) {
        sourceError = { error: e };
        throw e;
      }
    }
    const r = await runner.rpc.copyFrom(requests() as never, runner.callOptions(options));
    return { rowCount: Number(r.rowsAffected), executionTimeMs: r.executionTimeMs };
  };
  let key = keyed ? newIdempotencyKey() : '';
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await send(key);
        runner.emit('copyFrom', sql, undefined, t0, result.rowCount);
        return result;
      } catch (e) {
        if (sourceError) throw sourceError.error;
        if (attempt > 0 || options.signal?.aborted) throw e;
        if (neverSent(e) && isReplayable(source)) continue;
        if (!keyed || !mayHaveApplied(e)) throw e;
        // The answer was lost: settle it by its key, without the data.
        let settled: { rowsAffected: bigint; executionTimeMs: number };
        try {
          async function* settle(): AsyncGenerator<Partial<CopyFromRequest>> {
            yield { sql, idempotencyKey: key, resolveOnly: true };
          }
          // Bookkeeping after the call's own deadline: a deadline of its own.
          const timeoutMs = options.timeoutMs ? Math.max(options.timeoutMs, 5000) : undefined;
          settled = await runner.rpc.copyFrom(settle() as AsyncIterable<CopyFromRequest>, runner.callOptions({ ...options, timeoutMs }));
        } catch (s) {
          const detail = s instanceof ConnectError ? s.findDetails(ErrorDetailSchema)[0] : undefined;
          if (detail?.reason === ErrorReason.NOT_APPLIED) {
            if (isReplayable(source)) {
              key = newIdempotencyKey();
              continue;
            }
            throw new ConnectionError(
              `the COPY was not applied (its connection was lost before it committed): ${(e as Error).message}; send it again`,
              'NOT_APPLIED',
              {
                cause: e,
                retryable: true,
              },
            );
          }
          throw new AmbiguousResultError(
            `the outcome of the COPY is unknown: its answer was lost (${(e as Error).message}) and settling it by its idempotency key failed too (${(s as Error).message})`,
            {
              cause: e,
              idempotencyKey: key,
            },
          );
        }
        const result = { rowCount: Number(settled.rowsAffected), executionTimeMs: settled.executionTimeMs };
        runner.emit('copyFrom', sql, undefined, t0, result.rowCount);
        return result;
      }
    }
  } catch (e) {
    throw runner.fail('copyFrom', sql, undefined, t0, e);
  }
}

/** Runs `COPY ... TO STDOUT`; see {@link CopyToStream}. The call starts when the stream is first read. */
export function copyTo(runner: QueryRunner, sql: string, options: CopyToOptions = {}): CopyToStream {
  runner.check();
  const ac = new AbortController();
  const onAbort = () => ac.abort(options.signal?.reason);
  let result: CopyResult | undefined;
  let started = false;
  return {
    get result() {
      return result;
    },
    cancel() {
      ac.abort();
    },
    async *[Symbol.asyncIterator]() {
      if (started) throw new TypeError('a copyTo stream can be read once');
      started = true;
      const t0 = performance.now();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.signal?.aborted) onAbort();
      let completed = false;
      try {
        const res = runner.rpc.copyTo(
          { sql, transactionId: runner.transactionId, chunkBytes: options.chunkBytes ?? 0 },
          { ...runner.callOptions(options), signal: ac.signal },
        );
        for await (const m of res) {
          if (m.event.case === 'data') yield m.event.value;
          else if (m.event.case === 'complete') {
            completed = true;
            result = { rowCount: Number(m.event.value.rowsAffected), executionTimeMs: m.event.value.executionTimeMs };
          }
        }
        runner.emit('copyTo', sql, undefined, t0, result?.rowCount ?? 0);
      } catch (e) {
        if (ac.signal.aborted && !options.signal?.aborted) return; // cancel(): just end
        throw runner.fail('copyTo', sql, undefined, t0, e);
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
        // Leaving early cancels the COPY on the server.
        if (!completed) ac.abort();
      }
    },
  };
}
