/**
 * StreamQuery: a query's rows read from a portal a batch at a time and sent as they come, with
 * backpressure end to end (the portal is read further only once the client has taken what was
 * sent), a header first and the final stats last. A client that leaves closes the portal at
 * once, whatever state the stream is in.
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { Code, type ServiceImpl } from '@connectrpc/connect';
import type { FieldDef } from 'pg';
import { type DatabaseService, type StreamQueryResponse, StreamQueryResponseSchema, ErrorReason } from '@heliosdb/client/wire';
import { RowFormat } from '@heliosdb/client/wire';
import { principalOf } from '../auth/principal.js';
import { guardSteps } from '../call/run.js';
import { runSubmittable } from '../call/run.js';
import { withConnection } from '../call/scope.js';
import { serverError } from '../errors.js';
import { type CommandSink, PgCommand } from '../pg/pg-command.js';
import { columnsOf, parseCommandTag, RowEncoder } from '../result-encoder.js';
import type { ServiceContext } from './context.js';
import { watchCredential } from './credential-watch.js';
import { PushQueue } from './push-queue.js';

/** Messages waiting for the client beyond which the database connection is no longer read. */
const maxQueuedMessages = 4;
/**
 * Messages waiting for the client below which the portal is read further: the database produces
 * the next rows while the client takes the last ones, instead of each waiting for the other.
 */
const resumeBelowMessages = 2;

/** The StreamQuery handler. */
export function streamQueryHandler(c: ServiceContext): ServiceImpl<typeof DatabaseService>['streamQuery'] {
  const { options, typeNames } = c.deps;
  return async function* streamQuery(req, ctx) {
    c.requireSql(req.sql);
    const values = c.params(req.params);
    const [checked] = c.check([req.sql], ctx, req.transactionId, 'stream', { claimedRead: req.readOnly });
    const format = req.rowFormat || RowFormat.VALUES;
    const batchBytes = Math.min(req.batchBytes || 1024 * 1024, c.batchBytesCap);
    const batchRows = req.batchRows || 10_000;
    // Rows per fetch: few at first, then as many as fit in fetchBytes at the largest row seen, so a
    // stream of large rows holds little in this process whatever its row count.
    const maxFetchRows = Math.min(batchRows, 2000);
    const fetchBytes = 4 * batchBytes;
    const fetchRows = Math.min(maxFetchRows, 64);
    let largestRow = 0;
    const queue = new PushQueue<StreamQueryResponse>();
    const encoder = new RowEncoder(format);
    let fields: FieldDef[] = [];
    let headerSent = false;
    let cmd: PgCommand | undefined;
    let suspended = false;
    let consumerGone = false;
    let t0 = 0;
    let tag = { command: '', rowsAffected: 0n };
    let rowsSent = 0n;
    const header = () => {
      if (headerSent) return;
      headerSent = true;
      queue.push(create(StreamQueryResponseSchema, { event: { case: 'header', value: { columns: columnsOf(fields, typeNames.get) } } }));
    };
    const sink: CommandSink = {
      onFields(f) {
        fields = f;
        encoder.setFields(f);
        header();
      },
      // Rows still arriving after the client left are dropped: nothing takes them any more.
      onRow(cells) {
        if (!consumerGone) added(encoder.add(cells));
      },
      onRawRow(row) {
        if (!consumerGone) added(encoder.addRaw(row));
      },
      onComplete(t) {
        tag = parseCommandTag(t);
        // A portal read in several Executes reports only the last Execute's rows in its tag
        // (SELECT, and INSERT/UPDATE/DELETE ... RETURNING alike): count what was streamed.
        if (fields.length > 0 && /\d$/.test(t)) tag.rowsAffected = rowsSent;
      },
    };
    /** A row of `size` encoded bytes was added: sends the batch once it is full. */
    const added = (size: number) => {
      rowsSent++;
      if (size > c.batchBytesCap) {
        throw serverError(
          Code.ResourceExhausted,
          `a row of ${size} bytes does not fit in one message (limit ${options.maxMessageBytes} bytes); raise --max-message-bytes`,
          { reason: ErrorReason.ROW_TOO_LARGE },
        );
      }
      if (size > largestRow) largestRow = size;
      if (encoder.bytes >= batchBytes || encoder.rowCount >= batchRows) {
        queue.push(create(StreamQueryResponseSchema, { event: { case: 'rows', value: encoder.take() } }));
        // The client reads slower than the database sends: stop reading the database until it catches up.
        if (queue.length >= maxQueuedMessages) cmd?.pauseInput();
      }
    };
    // Read further once the client has taken most of what was sent.
    queue.onTaken = () => {
      if (queue.length >= resumeBelowMessages) return;
      cmd?.resumeInput();
      if (suspended) {
        suspended = false;
        cmd?.resume();
      }
    };
    const done = withConnection(
      c.scope,
      ctx,
      req.transactionId,
      async (conn, scope) => {
        const steps = guardSteps(checked.guard, scope.frame);
        cmd = new PgCommand({ text: req.sql, values, fetchRows, sink, prelude: steps.prelude, postlude: steps.postlude });
        cmd.onSuspended = () => {
          if (!cmd) return;
          cmd.fetchRows = Math.max(1, Math.min(maxFetchRows, Math.floor(fetchBytes / Math.max(1, largestRow))));
          if (queue.length < resumeBelowMessages) cmd.resume();
          else suspended = true;
        };
        // A client that leaves while the portal waits for it to read (backpressure) must not hold
        // the connection: close the portal at once.
        const onAbort = () => {
          consumerGone = true;
          cmd?.close();
        };
        ctx.signal.addEventListener('abort', onAbort, { once: true });
        t0 = performance.now();
        try {
          await runSubmittable(c.deps.backend, conn, cmd, ctx.signal);
        } finally {
          ctx.signal.removeEventListener('abort', onAbort);
          if (!consumerGone)
            await typeNames.resolve(
              conn,
              fields.map((f) => f.dataTypeID),
            );
        }
      },
      { guard: checked.guard, selfCommitting: checked.selfCommitting },
    ).then(
      () => {
        header();
        if (encoder.rowCount > 0) queue.push(create(StreamQueryResponseSchema, { event: { case: 'rows', value: encoder.take() } }));
        queue.push(
          create(StreamQueryResponseSchema, {
            event: {
              case: 'complete',
              value: { command: tag.command, rowsAffected: tag.rowsAffected, executionTimeMs: performance.now() - t0 },
            },
          }),
        );
        queue.end();
      },
      (e) => queue.end(e),
    );
    // A credential revoked while rows still flow ends the stream (UNAUTHENTICATED) within the auth
    // cache window, as a Listen stream does: a slow reader keeps no portal open on a revoked key.
    const unwatch = watchCredential(principalOf(ctx), options.authCacheMs, (e) => {
      consumerGone = true;
      cmd?.close();
      queue.end(e);
    });
    try {
      yield* queue.drain();
    } finally {
      unwatch();
      if (!queue.isEnded) {
        // The consumer left early (cancel, deadline, error): close the portal and free the connection.
        consumerGone = true;
        cmd?.close();
      }
      await done;
    }
  };
}
