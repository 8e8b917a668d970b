/**
 * `ResultStream`: the rows of a StreamQuery call as an async iterable, read batch by batch with
 * backpressure, so a result of any size runs in bounded memory. Browser-safe.
 * @packageDocumentation
 */
import type { Column, Rows } from '../../gen/heliosdb/v1/value_pb.js';
import type { StreamQueryResponse } from '../../gen/heliosdb/v1/database_pb.js';
import { CancelledError, HeliosDBError } from './errors.js';
import type { CallOptions, Field } from './types.js';

/** Options of `stream`. */
export interface StreamOptions extends CallOptions {
  /** Rows as objects keyed by column name, or as arrays. Default: the client's `rowMode` (`'object'`). */
  rowMode?: 'object' | 'array';
  /**
   * Preferred rows per batch (one message). Default `0`: the server chooses (10 000). A batch also
   * closes at `batchBytes`.
   */
  batchRows?: number;
  /** Preferred bytes per batch. Default `0`: the server chooses (1 MiB, always capped well under the message limit). */
  batchBytes?: number;
  /**
   * Deadline of the whole stream, ms, from the call to the last row; it cancels the query on the
   * server. Default: the client's `timeoutMs` (`0`, none).
   */
  timeoutMs?: number;
  /** Aborting it stops the stream and cancels the query on the server; the loop throws `CancelledError`. Default none. */
  signal?: AbortSignal;
}

/**
 * The statistics of a stream that ended: read to its end (`complete: true`), or left early
 * (`break`, `return`, a throw in the loop, `cancel()`, an aborted signal) or failed
 * (`complete: false`: the rows received until then).
 */
export interface StreamStats {
  /** The command tag's verb, e.g. `SELECT`; `''` when the stream did not complete. */
  command: string;
  /** Rows the statement returned (or affected); for a stream that did not complete, the rows received. */
  rowCount: number;
  /** Time the server spent running the statement, ms; `0` when the stream did not complete (the server did not say). */
  executionTimeMs: number;
  /** Time from the call to the last message (or to the early exit), ms. */
  roundTripMs: number;
  /** True when the stream was read to its end; false after an early exit or a failure. */
  complete: boolean;
}

/** Where a {@link ResultStream} reads from: supplied by the client, not meant to be built by hand. */
export interface StreamSource {
  /** Starts the call; aborting `signal` cancels it. */
  open(signal: AbortSignal): AsyncIterable<StreamQueryResponse>;
  /** A row decoder for the columns of the header. */
  decoder(columns: Column[]): (rows: Rows) => unknown[];
  /** Maps a failure onto the error hierarchy (and reports it). */
  mapError(error: unknown): HeliosDBError;
  /** Called once when the stream ends: completed, failed or cancelled. */
  onEnd(rowCount: number, error: HeliosDBError | undefined): void;
  /** The caller's signal, if any. */
  signal: AbortSignal | undefined;
}

type State = 'idle' | 'open' | 'done' | 'failed' | 'cancelled';

/**
 * The rows of a query, streamed: created by `client.stream()`, `tx.stream()` or
 * `statement.stream()`.
 *
 * - `for await (const row of stream)` reads rows; `for await (const rows of stream.batches())`
 *   reads whole batches (arrays of rows), which is faster for bulk work.
 * - The query starts on first use (iterating, or awaiting `fields`), and runs exactly once: a
 *   stream is iterated by one loop, once.
 * - Leaving the loop early (`break`, `return`, a throw, or aborting `options.signal`) cancels the
 *   call: the server closes its portal and frees its database connection. `await using` or
 *   `cancel()` do the same for a stream that was started but not read to its end.
 * - A failure in the middle of the result surfaces as a typed {@link HeliosDBError} from the loop
 *   after the rows already delivered; the query is never restarted.
 * - Inside a transaction, the transaction's other calls wait until the stream ends (a
 *   transaction runs one statement at a time): read it to its end or cancel it first. Use a
 *   cursor (`tx.cursor`) to interleave reading with other statements.
 *
 * @example
 * ```ts
 * const stream = client.stream<{ id: number }>('SELECT id FROM events WHERE day = $1', [day]);
 * for await (const row of stream) handle(row);
 * console.log(stream.stats); // { command: 'SELECT', rowCount, executionTimeMs, roundTripMs, complete: true }
 * ```
 */
export class ResultStream<T = Record<string, unknown>> implements AsyncIterable<T>, AsyncDisposable {
  readonly #source: StreamSource;
  readonly #controller = new AbortController();
  #iterator: AsyncIterator<StreamQueryResponse> | undefined;
  #fields: Promise<Field[]> | undefined;
  #decode: ((rows: Rows) => unknown[]) | undefined;
  #state: State = 'idle';
  #claimed = false;
  #rows = 0;
  #stats: StreamStats | undefined;
  #error: HeliosDBError | undefined;
  #t0 = 0;
  #unlink: (() => void) | undefined;

  /** @internal Streams are created by `client.stream()` and friends. */
  constructor(source: StreamSource) {
    this.#source = source;
  }

  /**
   * The result's columns, once the server sent its header. Awaiting it starts the query; read the
   * stream afterwards (or `cancel()` it), or the call stays open.
   */
  get fields(): Promise<Field[]> {
    if (!this.#fields) {
      this.#fields = this.#readHeader();
      // The failure also surfaces through the loop; do not report it as unhandled here.
      this.#fields.catch(() => {});
    }
    return this.#fields;
  }

  /**
   * The stream's statistics, once it ended: `complete: true` with the server's figures after the
   * last row; after an early exit (break, cancel, abort) or a failure, `complete: false` and
   * `rowCount` the rows received so far. Undefined while the stream runs (and before it starts).
   */
  get stats(): StreamStats | undefined {
    return this.#stats;
  }

  /** Rows delivered so far. */
  get rowCount(): number {
    return this.#rows;
  }

  /** True once the stream completed, failed or was cancelled. */
  get finished(): boolean {
    return this.#state === 'done' || this.#state === 'failed' || this.#state === 'cancelled';
  }

  /** The error the stream failed with, if it did. */
  get error(): HeliosDBError | undefined {
    return this.#error;
  }

  /** Reads the result batch by batch: each value is the rows of one message. */
  async *batches(): AsyncGenerator<T[], void, undefined> {
    this.#claim();
    let ended = false;
    try {
      await this.fields;
      for (;;) {
        const m = await this.#next();
        if (m === undefined) throw this.#fail(new HeliosDBError('the stream ended before its completion message', 'PROTOCOL_ERROR'));
        const event = m.event;
        if (event.case === 'rows') {
          const rows = this.#decode!(event.value) as T[];
          if (rows.length === 0) continue;
          this.#rows += rows.length;
          yield rows;
        } else if (event.case === 'complete') {
          this.#stats = {
            command: event.value.command,
            rowCount: Number(event.value.rowsAffected) || this.#rows,
            executionTimeMs: event.value.executionTimeMs,
            roundTripMs: performance.now() - this.#t0,
            complete: true,
          };
          // Read the end of the call, so the transport and interceptors finish it.
          const tail = await this.#next();
          if (tail !== undefined)
            throw this.#fail(new HeliosDBError('the stream sent a message after its completion message', 'PROTOCOL_ERROR'));
          this.#end('done', undefined);
          ended = true;
          return;
        } else {
          throw this.#fail(new HeliosDBError(`unexpected stream message ${String(event.case)}`, 'PROTOCOL_ERROR'));
        }
      }
    } finally {
      if (!ended && this.#state === 'open') await this.#cancel();
    }
  }

  /** Reads the result row by row. */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    const batches = this.batches();
    let buffer: T[] = [];
    let i = 0;
    return {
      async next(): Promise<IteratorResult<T>> {
        while (i >= buffer.length) {
          const r = await batches.next();
          if (r.done) {
            buffer = [];
            return { done: true, value: undefined };
          }
          buffer = r.value;
          i = 0;
        }
        return { done: false, value: buffer[i++] };
      },
      async return(): Promise<IteratorResult<T>> {
        buffer = [];
        await batches.return(undefined);
        return { done: true, value: undefined };
      },
    };
  }

  /** Reads every row into an array (for results known to be small). */
  async toArray(): Promise<T[]> {
    const out: T[] = [];
    for await (const rows of this.batches()) for (const r of rows) out.push(r);
    return out;
  }

  /**
   * Stops the stream and cancels the query on the server. A loop reading it throws
   * `CancelledError`. A no-op once the stream finished. Never throws.
   */
  async cancel(): Promise<void> {
    if (this.#state === 'idle') {
      this.#claimed = true;
      this.#end('cancelled', undefined);
      return;
    }
    if (this.#state === 'open') await this.#cancel();
  }

  /** `await using stream = client.stream(...)` cancels the stream if it was not read to its end. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.cancel();
  }

  #claim(): void {
    if (this.#claimed) {
      throw new HeliosDBError(
        this.#state === 'cancelled'
          ? 'the stream was cancelled'
          : 'a stream can be read only once, by one loop: run the query again to read it again',
        'STREAM_CONSUMED',
      );
    }
    this.#claimed = true;
  }

  #start(): void {
    if (this.#state !== 'idle') {
      if (this.#state === 'cancelled') throw new CancelledError('the stream was cancelled', 'CANCELLED');
      return;
    }
    const signal = this.#source.signal;
    if (signal?.aborted) {
      this.#end('cancelled', undefined);
      throw new CancelledError('the stream was cancelled before it started (its AbortSignal was already aborted)', 'CANCELLED', {
        cause: signal.reason,
      });
    }
    if (signal) {
      const onAbort = () => this.#controller.abort(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#unlink = () => signal.removeEventListener('abort', onAbort);
    }
    this.#state = 'open';
    this.#t0 = performance.now();
    this.#iterator = this.#source.open(this.#controller.signal)[Symbol.asyncIterator]();
  }

  async #readHeader(): Promise<Field[]> {
    this.#start();
    const m = await this.#next();
    if (m === undefined || m.event.case !== 'header') {
      throw this.#fail(new HeliosDBError('the stream did not start with its header', 'PROTOCOL_ERROR'));
    }
    const columns = m.event.value.columns;
    this.#decode = this.#source.decoder(columns);
    return columns.map((c) => ({ name: c.name, type: c.typeName, typeOid: c.typeOid }));
  }

  async #next(): Promise<StreamQueryResponse | undefined> {
    if (this.#state === 'cancelled') throw new CancelledError('the stream was cancelled', 'CANCELLED');
    if (this.#state === 'failed') throw this.#error!;
    const signal = this.#controller.signal;
    if (signal.aborted) {
      // The caller's signal was aborted: stop here, not after the messages the transport had
      // already buffered; read the call to its end so that the transport and interceptors finish it.
      const err = this.#fail(
        new CancelledError('the stream was cancelled: its AbortSignal was aborted', 'CANCELLED', { cause: signal.reason }),
      );
      await this.#drain();
      throw err;
    }
    try {
      const r = await this.#iterator!.next();
      return r.done ? undefined : r.value;
    } catch (e) {
      throw this.#fail(e);
    }
  }

  #fail(e: unknown): HeliosDBError {
    if (this.#state === 'failed') return this.#error!;
    if (this.#state === 'cancelled')
      return e instanceof CancelledError ? e : new CancelledError('the stream was cancelled', 'CANCELLED', { cause: e });
    const err = this.#source.mapError(e);
    this.#error = err;
    this.#end('failed', err);
    // Make sure the call is over (a protocol error leaves it open).
    this.#controller.abort(err);
    return err;
  }

  async #cancel(): Promise<void> {
    this.#end('cancelled', undefined);
    this.#controller.abort(new CancelledError('the stream was closed before its end', 'CANCELLED'));
    await this.#drain();
  }

  /**
   * Reads an aborted call to its (cancelled) end, so the transport gives back its connection slot
   * and the interceptors see it finish.
   */
  async #drain(): Promise<void> {
    const it = this.#iterator;
    if (!it) return;
    try {
      while (!(await it.next()).done);
    } catch {
      // The cancellation itself.
    }
  }

  #end(state: State, error: HeliosDBError | undefined): void {
    if (this.finished) return;
    this.#state = state;
    if (state !== 'done') {
      this.#stats = {
        command: '',
        rowCount: this.#rows,
        executionTimeMs: 0,
        roundTripMs: this.#t0 === 0 ? 0 : performance.now() - this.#t0,
        complete: false,
      };
    }
    this.#unlink?.();
    this.#unlink = undefined;
    if (this.#t0 !== 0) this.#source.onEnd(this.#rows, error);
  }
}
