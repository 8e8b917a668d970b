/**
 * CopyFrom and CopyTo: PostgreSQL's COPY with the client as the data's source or sink, over
 * streaming RPCs. On PostgreSQL the data streams through pg-copy-streams with backpressure both
 * ways; the embedded engine can only read COPY data from memory, so there a COPY FROM is
 * gathered whole (up to `--max-copy-bytes`) and run from a blob. COPY TO is a read (it runs in a
 * READ ONLY transaction in auto-commit); COPY FROM is a write, keyed like any other.
 * @packageDocumentation
 */
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { create } from '@bufbuild/protobuf';
import { Code, type ServiceImpl } from '@connectrpc/connect';
import { from as copyFromStream, to as copyToStream } from 'pg-copy-streams';
import {
  type CopyFromRequest,
  CopyFromRequestSchema,
  CopyFromResponseSchema,
  type CopyToResponse,
  CopyToResponseSchema,
  type DatabaseService,
  ErrorReason,
} from '@heliosdb/client/wire';
import { principalOf } from '../auth/principal.js';
import type { BackendConnection } from '../backend.js';
import { abortError } from '../call-context.js';
import { type CallScope, withConnection } from '../call/scope.js';
import { serverError, toConnectError } from '../errors.js';
import { replaceCopyStdio } from '../sql/analyze.js';
import type { ServiceContext } from './context.js';
import { PushQueue } from './push-queue.js';

type Handlers = Pick<ServiceImpl<typeof DatabaseService>, 'copyFrom' | 'copyTo'>;

/** Chunks of a COPY TO sent per message, bytes, unless the client asks for less. */
const defaultChunkBytes = 256 * 1024;

/** The handlers. */
export function copyHandlers(c: ServiceContext): Handlers {
  const { backend, options } = c.deps;

  /** Opens and closes the READ ONLY block a COPY TO runs in outside a transaction. */
  async function inReadOnlyBlock<T>(conn: BackendConnection, scope: CallScope, fn: () => Promise<T>): Promise<T> {
    if (scope.frame === 'transaction') return fn();
    await conn.query(scope.principal.readOnly ? 'BEGIN READ ONLY; SELECT 1' : 'BEGIN READ ONLY');
    const out = await fn();
    await conn.query('ROLLBACK');
    return out;
  }

  return {
    async copyFrom(requests, ctx) {
      const it = requests[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done)
        throw serverError(Code.InvalidArgument, 'CopyFrom needs a first message with the COPY statement', {
          reason: ErrorReason.INVALID_REQUEST,
        });
      const head: CopyFromRequest = first.value;
      c.requireSql(head.sql);
      // The fingerprint is the statement's, whatever data follows (and whether it only settles).
      const fingerprinted = { ...head, data: new Uint8Array(0), resolveOnly: false };
      const keyed = c.keyedCall(fingerprinted, ctx, 'CopyFrom', CopyFromRequestSchema, CopyFromResponseSchema);
      if (head.resolveOnly) {
        if (!keyed)
          throw serverError(Code.InvalidArgument, 'resolve_only needs an idempotency key (outside a transaction)', {
            reason: ErrorReason.INVALID_REQUEST,
          });
        return (await c.deps.idempotency.settle(ctx.signal, keyed, 'the COPY', () =>
          serverError(
            Code.NotFound,
            'the COPY with this idempotency key was not applied, and now never will be: send it again (with a new key)',
            { reason: ErrorReason.NOT_APPLIED },
          ),
        )) as never;
      }
      c.check([head.sql], ctx, head.transactionId, 'copyFrom', { keyed: !!keyed });
      if (principalOf(ctx).readOnly) {
        throw serverError(Code.PermissionDenied, 'COPY FROM writes, and the API key is read-only', {
          reason: ErrorReason.READ_ONLY_PRINCIPAL,
          sqlstate: '25006',
        });
      }
      async function* chunks(): AsyncGenerator<Uint8Array> {
        if (head.data.length > 0) yield head.data;
        for (let r = await it.next(); !r.done; r = await it.next()) {
          if (r.value.sql)
            throw serverError(Code.InvalidArgument, 'only the first CopyFrom message may name the statement', {
              reason: ErrorReason.INVALID_REQUEST,
            });
          if (r.value.data.length > 0) yield r.value.data;
        }
      }
      return withConnection(
        c.scope,
        ctx,
        head.transactionId,
        async (conn) => {
          const t0 = performance.now();
          if (backend.copyFromBlob) {
            // The embedded engine: gathered whole, then run from a blob.
            const parts: Uint8Array[] = [];
            let size = 0;
            for await (const chunk of chunks()) {
              size += chunk.length;
              if (size > options.maxCopyBytes) {
                throw serverError(
                  Code.ResourceExhausted,
                  `COPY FROM on the embedded engine reads its data from memory, at most ${options.maxCopyBytes} bytes (--max-copy-bytes); send less per COPY`,
                  { reason: ErrorReason.COPY_TOO_LARGE },
                );
              }
              parts.push(chunk);
            }
            const data = Buffer.concat(parts);
            const r = await backend.copyFromBlob(conn, replaceCopyStdio(head.sql, '/dev/blob'), data);
            return { rowsAffected: BigInt(r.rowCount), executionTimeMs: performance.now() - t0 };
          }
          const stream = copyFromStream(head.sql);
          const onAbort = () => stream.destroy(new Error('the client cancelled the COPY'));
          ctx.signal.addEventListener('abort', onAbort, { once: true });
          try {
            conn.query(stream as never);
            await pipeline(Readable.from(chunks(), { objectMode: false }), stream);
          } catch (e) {
            throw toConnectError(e);
          } finally {
            ctx.signal.removeEventListener('abort', onAbort);
          }
          return { rowsAffected: BigInt(stream.rowCount ?? 0), executionTimeMs: performance.now() - t0 };
        },
        { keyed },
      );
    },

    async *copyTo(req, ctx) {
      c.requireSql(req.sql);
      if (req.params.length > 0)
        throw serverError(Code.InvalidArgument, 'COPY takes no parameters: write the values into the statement', {
          reason: ErrorReason.INVALID_REQUEST,
        });
      c.check([req.sql], ctx, req.transactionId, 'copyTo');
      const chunkBytes = Math.min(req.chunkBytes || defaultChunkBytes, c.batchBytesCap);
      const queue = new PushQueue<CopyToResponse>();
      // Set when the client leaves before the end: the COPY is cancelled and its output drained,
      // never left half-read (PostgreSQL blocked writing to a connection nobody reads, or the
      // embedded engine's one session held, for good).
      let abandon: (() => void) | undefined;
      let abandoned = false;
      const done = withConnection(
        c.scope,
        ctx,
        req.transactionId,
        (conn, scope) =>
          inReadOnlyBlock(conn, scope, async () => {
            const t0 = performance.now();
            const s = copyToStream(req.sql);
            let wake: (() => void) | undefined;
            abandon = () => {
              if (abandoned) return;
              abandoned = true;
              wake?.();
              void backend.cancel(conn).catch(() => {});
            };
            ctx.signal.addEventListener('abort', abandon, { once: true });
            // Chunks are gathered up to chunkBytes (whole rows in text and csv), and the stream is
            // read further only once the client has taken what was sent.
            let pending: Buffer[] = [];
            let pendingBytes = 0;
            const flush = () => {
              if (pendingBytes === 0) return;
              queue.push(create(CopyToResponseSchema, { event: { case: 'data', value: Buffer.concat(pending, pendingBytes) } }));
              pending = [];
              pendingBytes = 0;
            };
            try {
              conn.query(s as never);
              for await (const chunk of s as AsyncIterable<Buffer>) {
                if (abandoned) continue; // drained to the end (or to the cancel's error)
                pending.push(chunk);
                pendingBytes += chunk.length;
                if (pendingBytes >= chunkBytes) {
                  flush();
                  if (queue.length > 2) {
                    await new Promise<void>((r) => {
                      wake = r;
                      queue.onEmpty = () => {
                        queue.onEmpty = undefined;
                        r();
                      };
                    });
                    wake = undefined;
                  }
                }
              }
              if (abandoned) throw abortError(ctx.signal);
              flush();
            } catch (e) {
              throw toConnectError(e);
            } finally {
              ctx.signal.removeEventListener('abort', abandon);
            }
            return { rowsAffected: BigInt(s.rowCount ?? 0), executionTimeMs: performance.now() - t0 };
          }),
        { guard: 'read' },
      ).then(
        (complete) => {
          queue.push(create(CopyToResponseSchema, { event: { case: 'complete', value: complete } }));
          queue.end();
        },
        (e) => queue.end(e),
      );
      try {
        yield* queue.drain();
      } finally {
        if (!queue.isEnded) abandon?.();
        await done;
      }
    },
  };
}
