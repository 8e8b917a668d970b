/**
 * The streaming calls of DatabaseService over the PostgreSQL protocol: StreamQuery reads a
 * portal `batchRows` rows at a time (pg-cursor: Bind once, then Execute with a row limit, so
 * memory stays bounded and a slow reader holds the database back rather than the client's heap);
 * CopyFrom and CopyTo through pg-copy-streams; Listen on a connection of its own. Leaving early,
 * cancelling or a deadline closes the portal or sends PostgreSQL's cancel request. Node only.
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type { Readable } from 'node:stream';
import type pg from 'pg';
import {
  type CopyFromRequest,
  type CopyFromResponse,
  CopyFromResponseSchema,
  type CopyToRequest,
  type CopyToResponse,
  CopyToResponseSchema,
  type ListenRequest,
  type ListenResponse,
  ListenResponseSchema,
  type StreamQueryRequest,
  type StreamQueryResponse,
  StreamQueryResponseSchema,
} from '../../../gen/heliosdb/v1/database_pb.js';
import { ErrorReason } from '../../../gen/heliosdb/v1/error_pb.js';
import { abortError, type PgBackend, type PgCall } from './pg-backend.js';
import { detailedError, fromPgError } from './pg-errors.js';
import type { PgModules } from './pg-modules.js';
import { columnsOf, compactRows, paramTexts, rawTypes } from './pg-values.js';

/** Rows per batch when the caller leaves it to the transport. */
const defaultBatchRows = 1000;

/** How long leaving a stream waits for the server to stop the statement and close the portal, ms. */
const closeWaitMs = 5000;

/** Whether `p` settles (either way) within `ms`. */
function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    p.then(
      () => {
        clearTimeout(t);
        resolve(true);
      },
      () => {
        clearTimeout(t);
        resolve(true);
      },
    );
  });
}

/** Runs `cleanup` once: when the call's signal aborts (the caller left) or when the generator ends. */
function onceCleanup(call: PgCall, cleanup: (aborted: boolean) => Promise<void>): () => Promise<void> {
  let ran: Promise<void> | undefined;
  const run = (aborted: boolean) => (ran ??= cleanup(aborted).catch(() => {}));
  const onAbort = () => void run(true);
  call.signal.addEventListener('abort', onAbort, { once: true });
  return () => {
    call.signal.removeEventListener('abort', onAbort);
    return run(false);
  };
}

/**
 * The next chunk of a readable stream, `null` at its end. Listens only while waiting (an async
 * iterator would keep a `readable` listener, which stops `resume()` from draining the stream).
 */
function nextChunk(s: Readable): Promise<Buffer | null> {
  const c = s.read() as Buffer | null;
  if (c !== null) return Promise.resolve(c);
  if (s.readableEnded) return Promise.resolve(null);
  if (s.errored) return Promise.reject(s.errored);
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      s.off('readable', onReadable);
      s.off('end', onEnd);
      s.off('error', onError);
    };
    const onReadable = () => {
      const chunk = s.read() as Buffer | null;
      if (chunk === null) return;
      cleanup();
      resolve(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(null);
    };
    const onError = (e: unknown) => {
      cleanup();
      reject(e);
    };
    s.on('readable', onReadable);
    s.on('end', onEnd);
    s.on('error', onError);
  });
}

/** See the file comment. */
export class PgStreams {
  constructor(
    private readonly b: PgBackend,
    private readonly modules: PgModules,
    /** Opens a connection outside the pool (for Listen). */
    private readonly connect: () => Promise<pg.Client>,
  ) {}

  async *streamQuery(req: StreamQueryRequest, call: PgCall): AsyncGenerator<StreamQueryResponse> {
    const Cursor = await this.modules.cursor();
    const readOnly = req.readOnly && !req.transactionId;
    const lease = await this.b.lease(req.transactionId, readOnly, call);
    const { conn } = lease;
    const cursor = new Cursor(req.sql, paramTexts(req.params), { rowMode: 'array', types: rawTypes });
    let reading: Promise<unknown> | undefined;
    const finish = onceCleanup(call, async (aborted) => {
      // A read in flight: cancel it, and wait for the statement to stop before the portal closes.
      // A server that answers neither within closeWaitMs loses the connection (it is closed).
      if (aborted && reading) {
        this.b.cancel(conn);
        if (!(await settlesWithin(reading, closeWaitMs))) conn.broken = true;
      }
      if (!conn.broken && !(await settlesWithin(cursor.close(), closeWaitMs))) conn.broken = true;
      if (conn.broken) conn.client.end().catch(() => {});
      await lease.done();
    });
    const t0 = performance.now();
    try {
      conn.client.query(cursor as unknown as pg.Submittable);
      const n = req.batchRows > 0 ? req.batchRows : defaultBatchRows;
      let total = 0;
      let headerSent = false;
      for (;;) {
        if (call.signal.aborted) throw abortError(call.signal);
        reading = cursor.read(n);
        let rows: (string | null)[][];
        try {
          rows = (await reading) as (string | null)[][];
        } catch (e) {
          if (call.signal.aborted) throw abortError(call.signal);
          throw fromPgError(e, this.b.endpoint, { sentAsRead: readOnly });
        } finally {
          reading = undefined;
        }
        const fields = cursor._result.fields;
        if (!headerSent) {
          headerSent = true;
          await this.b.resolveTypes(
            conn,
            fields.map((f) => f.dataTypeID),
          );
          yield create(StreamQueryResponseSchema, { event: { case: 'header', value: { columns: columnsOf(fields, this.b.types.get) } } });
        }
        if (rows.length > 0) {
          total += rows.length;
          yield create(StreamQueryResponseSchema, { event: { case: 'rows', value: compactRows(fields, rows) } });
        }
        // Fewer rows than asked for: the portal ran to its end.
        if (rows.length < n) break;
      }
      await finish();
      // The portal's last Execute reports only its own rows: the total is what was read.
      const command = cursor._result.command ?? 'SELECT';
      const fieldCount = cursor._result.fields.length;
      yield create(StreamQueryResponseSchema, {
        event: {
          case: 'complete',
          value: {
            command,
            rowsAffected: BigInt(fieldCount > 0 ? total : (cursor._result.rowCount ?? 0)),
            executionTimeMs: performance.now() - t0,
          },
        },
      });
    } finally {
      await finish();
    }
  }

  async copyFrom(requests: AsyncIterable<CopyFromRequest>, call: PgCall): Promise<CopyFromResponse> {
    const { from } = await this.modules.copyStreams();
    const it = requests[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done || !first.value.sql) {
      throw detailedError(Code.InvalidArgument, 'CopyFrom: the first message must name the COPY ... FROM STDIN statement', {
        reason: ErrorReason.INVALID_REQUEST,
      });
    }
    if (first.value.resolveOnly) {
      // PostgreSQL keeps no record of a COPY's outcome: the caller reports it as unknown
      // (AmbiguousResultError), never as not applied, so the data is not sent twice.
      throw new ConnectError(
        'the outcome of a COPY whose answer was lost cannot be settled over postgres:// (PostgreSQL keeps no idempotency records): check the table',
        Code.Unimplemented,
      );
    }
    const t0 = performance.now();
    return this.b.withConn(first.value.transactionId, false, call, (conn) =>
      this.b.run(conn, call, async () => {
        const stream = conn.client.query(from(first.value.sql));
        const ended = new Promise<void>((resolve, reject) => {
          stream.on('finish', resolve);
          stream.on('error', reject);
        });
        ended.catch(() => {});
        const write = (data: Uint8Array) =>
          data.byteLength === 0 || stream.write(data) ? Promise.resolve() : new Promise<void>((r) => stream.once('drain', () => r()));
        try {
          await write(first.value.data);
          for (;;) {
            const m = await it.next();
            if (m.done) break;
            await write(m.value.data);
          }
        } catch (e) {
          // The caller's data failed (or it left): PostgreSQL gets CopyFail and nothing is copied.
          stream.destroy(e instanceof Error ? e : new Error(String(e)));
          await ended.catch(() => {});
          throw call.signal.aborted ? abortError(call.signal) : e;
        }
        stream.end();
        try {
          await ended;
        } catch (e) {
          throw fromPgError(e, this.b.endpoint);
        }
        return create(CopyFromResponseSchema, { rowsAffected: BigInt(stream.rowCount), executionTimeMs: performance.now() - t0 });
      }),
    );
  }

  async *copyTo(req: CopyToRequest, call: PgCall): AsyncGenerator<CopyToResponse> {
    if (req.params.length > 0) {
      throw detailedError(Code.InvalidArgument, 'COPY takes no parameters: write the values into the statement', {
        reason: ErrorReason.INVALID_PARAMETER,
      });
    }
    const { to } = await this.modules.copyStreams();
    const lease = await this.b.lease(req.transactionId, false, call);
    const { conn } = lease;
    const t0 = performance.now();
    const stream = conn.client.query(to(req.sql));
    let ended = false;
    const finish = onceCleanup(call, async (aborted) => {
      if (aborted && !ended) {
        // Cancel, then read what is still coming until PostgreSQL ends the COPY, so that the
        // connection is ready for its next statement (a transaction's stays usable).
        this.b.cancel(conn);
        try {
          while ((await nextChunk(stream)) !== null);
        } catch {
          // The cancel's error: the COPY is over.
        }
      }
      await lease.done();
    });
    try {
      try {
        for (;;) {
          const chunk = await nextChunk(stream);
          if (chunk === null) break;
          yield create(CopyToResponseSchema, { event: { case: 'data', value: chunk } });
        }
      } catch (e) {
        if (call.signal.aborted) throw abortError(call.signal);
        throw fromPgError(e, this.b.endpoint);
      }
      ended = true;
      await finish();
      yield create(CopyToResponseSchema, {
        event: { case: 'complete', value: { rowsAffected: BigInt(stream.rowCount), executionTimeMs: performance.now() - t0 } },
      });
    } finally {
      await finish();
    }
  }

  async *listen(req: ListenRequest, call: PgCall): AsyncGenerator<ListenResponse> {
    if (req.channels.length === 0) {
      throw detailedError(Code.InvalidArgument, 'listen needs at least one channel', { reason: ErrorReason.INVALID_REQUEST });
    }
    let client: pg.Client;
    try {
      client = await this.connect();
    } catch (e) {
      throw fromPgError(e, this.b.endpoint);
    }
    const queue: ListenResponse[] = [];
    let failure: unknown;
    let wake: (() => void) | undefined;
    const push = () => {
      wake?.();
      wake = undefined;
    };
    client.on('notification', (n) => {
      queue.push(
        create(ListenResponseSchema, {
          event: { case: 'notification', value: { channel: n.channel, payload: n.payload ?? '', processId: n.processId } },
        }),
      );
      push();
    });
    const lost = (e?: unknown) => {
      failure ??= fromPgError(e ?? new Error('Connection terminated'), this.b.endpoint);
      push();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    const finish = onceCleanup(call, async () => {
      push();
      await client.end();
    });
    try {
      for (const ch of req.channels) await client.query(`LISTEN "${ch.replace(/"/g, '""')}"`);
      yield create(ListenResponseSchema, { event: { case: 'ready', value: {} } });
      while (!call.signal.aborted) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (failure) throw failure;
        await new Promise<void>((r) => {
          wake = r;
        });
      }
    } catch (e) {
      if (call.signal.aborted) throw abortError(call.signal);
      throw fromPgError(e, this.b.endpoint);
    } finally {
      await finish();
    }
  }
}
