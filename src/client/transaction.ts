/**
 * `Transaction`: an interactive transaction, a server-side session bound to one database
 * connection, with every call pinned to the client connection that began it. Browser-safe.
 * @packageDocumentation
 */
import type { Client as RpcClient } from '@connectrpc/connect';
import type { DatabaseService } from '../../gen/heliosdb/v1/database_pb.js';
import {
  type BatchOptions,
  type BatchResult,
  type BatchStatementInput,
  chunksOf,
  emptyExecuteManyResult,
  type ExecuteManyOptions,
  type ExecuteManyResult,
  executeChunks,
  type ParameterChunk,
} from './batch.js';
import { readsParameterColumns } from './parameter-columns.js';
import type { ConnectionPin } from './transport/client-parts.js';
import type { ResolvedConnectionConfig } from './config.js';
import { checkCursorName, Cursor, type CursorOptions, cursorName } from './cursor.js';
import { ConnectionError, type HeliosDBError, TransactionError, toHeliosError } from './errors.js';
import type { IsolationLevel } from './isolation-level.js';
import type { CopyResult, CopySource, CopyToStream } from './copy.js';
import { type CopyFromOptions, type CopyToOptions, copyFrom, copyTo } from './copy-calls.js';
import type { PreparedStatement } from './prepared-statement.js';
import { QueryRunner } from './query-runner.js';
import type { Queryable } from './queryable.js';
import type { ResultStream, StreamOptions } from './result-stream.js';
import { Savepoint } from './savepoint.js';
import { sqlTemplate } from './sql-template.js';
import { isTransactionConflict } from './transaction-retry.js';
import type { CallOptions, ExecuteResult, QueryOptions, QueryResult } from './types.js';

/** How a transaction is begun. */
export interface TransactionOptions {
  /**
   * The isolation level. Default: the database's default (READ COMMITTED unless configured
   * otherwise). PostgreSQL runs READ UNCOMMITTED as READ COMMITTED.
   */
  isolationLevel?: IsolationLevel;
  /** Begin the transaction READ ONLY: writes fail. Default `false`. */
  readOnly?: boolean;
  /**
   * DEFERRABLE: only meaningful with `Serializable` and `readOnly`; the transaction waits for a
   * snapshot that can never conflict, then runs without any risk of serialization failure.
   * Default `false`.
   */
  deferrable?: boolean;
}

/** Options of `client.begin`: the transaction's settings, and the BeginTransaction call's deadline and signal. */
export interface BeginOptions extends TransactionOptions, CallOptions {}

/**
 * Where a transaction stands. `open` until it ends; then `committed`, `rolledBack`, `expired`
 * (rolled back by the server after its idle timeout), or `failed` (the outcome of COMMIT is unknown
 * because the connection broke).
 */
export type TransactionState = 'open' | 'committed' | 'rolledBack' | 'expired' | 'failed';

/** What a transaction is built from (supplied by the client). */
export interface TransactionInit {
  rpc: RpcClient<typeof DatabaseService>;
  config: ResolvedConnectionConfig;
  id: string;
  idleTimeoutMs: number;
  options: TransactionOptions;
  pin: ConnectionPin | undefined;
  /** Called once when the transaction ends. */
  onEnd(tx: Transaction, state: Exclude<TransactionState, 'open'>): void;
  /** Called when a result stream of the transaction opens or ends. */
  onStream?(delta: 1 | -1): void;
  /** Why the transport cannot send streaming requests (copyFrom), when it cannot. */
  noRequestStreams?: string;
}

/**
 * An interactive transaction, from `client.begin()` or inside `client.transaction(fn)`.
 *
 * Statements run one at a time on the transaction's database connection, in the order the
 * server receives them. Every call goes over the client connection that began the transaction.
 * End it with `commit()` or `rollback()`, or declare it with `await using` so that leaving the
 * scope rolls it back if it is still open. A transaction unused for the server's idle timeout
 * (`idleTimeoutMs`, 60 s by default) is rolled back by the server; its next call fails with a
 * `TransactionError` whose `reason` is `TRANSACTION_EXPIRED`.
 *
 * After the transaction ended, every call throws `TransactionError` with code
 * `TRANSACTION_FINISHED`, without a round trip.
 *
 * @example
 * ```ts
 * await using tx = await client.begin({ isolationLevel: IsolationLevel.RepeatableRead });
 * await tx.execute('UPDATE accounts SET balance = balance - $1 WHERE id = $2', [100, 1]);
 * await tx.execute('UPDATE accounts SET balance = balance + $1 WHERE id = $2', [100, 2]);
 * await tx.commit();
 * ```
 */
export class Transaction implements Queryable, AsyncDisposable {
  /** The server's transaction id. */
  readonly id: string;
  /** The isolation level requested; undefined means the database's default (READ COMMITTED unless configured otherwise). */
  readonly isolationLevel: IsolationLevel | undefined;
  /** Whether the transaction is READ ONLY. */
  readonly readOnly: boolean;
  /** Whether the transaction is DEFERRABLE. */
  readonly deferrable: boolean;
  /** The server rolls the transaction back after this long without a call, ms. */
  readonly idleTimeoutMs: number;
  readonly #init: TransactionInit;
  readonly #runner: QueryRunner;
  #state: TransactionState = 'open';
  #endedBecause = '';
  #ending = false;
  #conflict: HeliosDBError | undefined;
  readonly #streams = new Set<ResultStream<unknown>>();

  /** @internal Created by `client.begin()`. */
  constructor(init: TransactionInit) {
    this.#init = init;
    this.id = init.id;
    this.isolationLevel = init.options.isolationLevel;
    this.readOnly = init.options.readOnly ?? false;
    this.deferrable = init.options.deferrable ?? false;
    this.idleTimeoutMs = init.idleTimeoutMs;
    this.#runner = new QueryRunner(init.rpc, init.config, init.id, init.pin?.contextValues, {
      check: () => this.#checkOpen(),
      onError: (e) => this.#observe(e),
      onStream: init.onStream,
      noRequestStreams: init.noRequestStreams,
      onStreamCreated: (stream) => {
        for (const s of this.#streams) if (s.finished) this.#streams.delete(s);
        this.#streams.add(stream);
      },
    });
  }

  /** Where the transaction stands. */
  get state(): TransactionState {
    return this.#state;
  }

  /** True once the transaction committed, rolled back, expired or failed. */
  get finished(): boolean {
    return this.#state !== 'open';
  }

  /**
   * The serialization failure or deadlock a statement of this transaction failed with, if one did
   * (the transaction can then only be rolled back and run again; `client.transaction` does).
   */
  get conflict(): HeliosDBError | undefined {
    return this.#conflict;
  }

  /** Runs a statement in the transaction and returns its rows. */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<T>> {
    return this.#runner.query<T>(sql, params, options);
  }

  /** Runs a statement in the transaction for its effect. */
  execute(sql: string, params?: readonly unknown[], options?: CallOptions): Promise<ExecuteResult> {
    return this.#runner.execute(sql, params, options);
  }

  /** Returns the only row; throws QueryError (`ROW_COUNT_MISMATCH`) for zero or several rows. */
  queryOne<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T> {
    return this.#runner.queryOne<T>(sql, params, options);
  }

  /** Returns the only row or null; throws QueryError (`ROW_COUNT_MISMATCH`) for several rows. */
  queryMaybeOne<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T | null> {
    return this.#runner.queryMaybeOne<T>(sql, params, options);
  }

  /** Tagged template: every `${value}` becomes a parameter, never SQL text. */
  sql<T = Record<string, unknown>>(strings: TemplateStringsArray, ...values: unknown[]): Promise<QueryResult<T>> {
    const { text, values: params } = sqlTemplate(strings, values);
    return this.#runner.query<T>(text, params);
  }

  /**
   * Streams a query's rows inside the transaction (see `ResultStream`). The transaction's other
   * calls wait until the stream ends: read it to its end (or cancel it) before the next statement,
   * or use {@link cursor} to interleave. `commit()` and `rollback()` cancel streams still open.
   */
  stream<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: StreamOptions): ResultStream<T> {
    return this.#runner.stream<T>(sql, params, options);
  }

  /** Prepares a statement that runs inside this transaction (see `PreparedStatement`). */
  prepare<T = Record<string, unknown>>(sql: string, options?: CallOptions): Promise<PreparedStatement<T>> {
    return this.#runner.prepare<T>(sql, options);
  }

  /**
   * Runs several statements in one round trip. `atomic` (default `true`) puts them under a
   * savepoint: on a failure none of them applies, the transaction stays usable, and the call
   * rejects with a `QueryError` whose `statementIndex` names the failing statement.
   */
  batch<T = Record<string, unknown>>(statements: readonly BatchStatementInput[], options?: BatchOptions): Promise<BatchResult<T>> {
    if (statements.length === 0) return this.#empty<BatchResult<T>>();
    return this.#runner.batch<T>(statements, options);
  }

  /**
   * Runs one statement once per parameter set, in as few round trips as the message size limit
   * allows (see `ExecuteManyOptions`). Atomic by default: when the work spans several chunks they
   * run under one savepoint, rolled back when any chunk fails.
   */
  async executeMany<T = Record<string, unknown>>(
    sql: string,
    paramSets: readonly (readonly unknown[])[],
    options?: ExecuteManyOptions,
  ): Promise<ExecuteManyResult<T>> {
    this.#runner.check();
    const chunks = chunksOf(paramSets, options, readsParameterColumns(this.#init.config));
    const first = chunks.next();
    if (first.done) return emptyExecuteManyResult<T>();
    const all = prepend(first.value, chunks);
    const single = first.value.count === paramSets.length;
    if (!(options?.atomic ?? true) || single) return executeChunks<T>(this.#runner, sql, paramSets, options, all);
    const sp = await this.savepoint(undefined, options);
    try {
      const r = await executeChunks<T>(this.#runner, sql, paramSets, options, all);
      await sp.release(options);
      return r;
    } catch (e) {
      if (!this.finished) {
        try {
          await sp.rollback();
          await sp.release();
        } catch {
          // The original error says more.
        }
      }
      throw e;
    }
  }

  /** `COPY ... FROM STDIN` inside the transaction, with `source` as its data. */
  copyFrom(sql: string, source: CopySource, options?: CopyFromOptions): Promise<CopyResult> {
    return copyFrom(this.#runner, sql, source, options);
  }

  /** `COPY ... TO STDOUT` inside the transaction (its other calls wait until the stream ends). */
  copyTo(sql: string, options?: CopyToOptions): CopyToStream {
    return copyTo(this.#runner, sql, options);
  }

  /**
   * Opens a server-side cursor: `DECLARE name CURSOR FOR sql` (see `Cursor`). Use its `name` in
   * `UPDATE ... WHERE CURRENT OF name` through this transaction.
   */
  async cursor<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: CursorOptions): Promise<Cursor<T>> {
    this.#runner.check();
    const name = options?.name !== undefined ? checkCursorName(options.name) : cursorName();
    const cursor = new Cursor<T>(this.#runner, name, options);
    await this.#runner.execute(`DECLARE ${name} ${options?.scroll ? 'SCROLL' : 'NO SCROLL'} CURSOR FOR ${sql}`, params, options);
    return cursor;
  }

  /** Sets a savepoint (SAVEPOINT); without a name the server picks one. */
  async savepoint(name?: string, options?: CallOptions): Promise<Savepoint> {
    this.#runner.check();
    const t0 = performance.now();
    const sql = `SAVEPOINT ${name ?? ''}`.trim();
    try {
      const res = await this.#init.rpc.savepoint({ transactionId: this.id, name: name ?? '' }, this.#runner.callOptions(options));
      return new Savepoint(res.name, {
        rollbackTo: (n, o) => this.#savepointCall('rollbackToSavepoint', n, o),
        release: (n, o) => this.#savepointCall('releaseSavepoint', n, o),
      });
    } catch (e) {
      throw this.#runner.fail('savepoint', sql, undefined, t0, e);
    }
  }

  /**
   * Runs `fn` in a nested transaction: a savepoint that is released when `fn` resolves and rolled
   * back to when it throws (the error is rethrown; the outer transaction stays usable).
   */
  async transaction<R>(fn: (tx: Transaction) => Promise<R> | R): Promise<R> {
    const sp = await this.savepoint();
    let result: R;
    try {
      result = await fn(this);
    } catch (e) {
      if (!this.finished && !sp.released) {
        try {
          await sp.rollback();
          await sp.release();
        } catch {
          // The callback's error says more.
        }
      }
      throw e;
    }
    if (!this.finished && !sp.released) await sp.release();
    return result;
  }

  /**
   * Commits. After it, the transaction is finished whatever the outcome: a failed commit
   * (a serialization failure at commit, an earlier failed statement) rolled it back. Streams of
   * the transaction not read to their end are cancelled first.
   */
  async commit(options?: CallOptions): Promise<void> {
    this.#runner.check();
    if (this.#ending) throw new TransactionError(`transaction ${this.id} is already ending`, 'TRANSACTION_FINISHED');
    this.#ending = true;
    await this.#cancelStreams();
    const t0 = performance.now();
    try {
      await this.#init.rpc.commit({ transactionId: this.id }, this.#runner.callOptions(options));
    } catch (e) {
      const err = this.#runner.fail('commit', 'COMMIT', undefined, t0, e);
      this.#end(err instanceof ConnectionError ? 'failed' : 'rolledBack', `its commit failed: ${err.message}`);
      throw err;
    }
    this.#runner.emit('commit', 'COMMIT', undefined, t0, 0);
    this.#end('committed', 'it was committed');
  }

  /**
   * Rolls back (cancelling the transaction's unfinished streams first). A no-op when the
   * transaction already ended without committing (rolled back, expired, failed); throws
   * `TRANSACTION_FINISHED` after a commit.
   */
  async rollback(options?: CallOptions): Promise<void> {
    if (this.#state === 'committed') this.#runner.check();
    if (this.finished || this.#ending) return;
    this.#ending = true;
    await this.#cancelStreams();
    const t0 = performance.now();
    try {
      await this.#init.rpc.rollback({ transactionId: this.id }, this.#runner.callOptions(options));
    } catch (e) {
      const err = toHeliosError(e);
      if (err.reason === 'TRANSACTION_EXPIRED' || err.reason === 'TRANSACTION_NOT_FOUND') {
        // Already rolled back by the server: what was asked for.
        this.#end(err.reason === 'TRANSACTION_EXPIRED' ? 'expired' : 'rolledBack', 'the server no longer had it open');
        return;
      }
      // The server rolls it back after its idle timeout anyway.
      this.#end('rolledBack', `its rollback failed: ${err.message}`);
      throw this.#runner.fail('rollback', 'ROLLBACK', undefined, t0, e);
    }
    this.#runner.emit('rollback', 'ROLLBACK', undefined, t0, 0);
    this.#end('rolledBack', 'it was rolled back');
  }

  /** `await using tx = await client.begin()` rolls back at the end of the scope unless committed. Never throws. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.finished) return;
    try {
      await this.rollback();
    } catch {
      // The server rolls back an abandoned transaction after its idle timeout.
    }
  }

  async #savepointCall(method: 'rollbackToSavepoint' | 'releaseSavepoint', name: string, options: CallOptions | undefined): Promise<void> {
    this.#runner.check();
    const t0 = performance.now();
    const sql = method === 'releaseSavepoint' ? `RELEASE SAVEPOINT ${name}` : `ROLLBACK TO SAVEPOINT ${name}`;
    try {
      await this.#init.rpc[method]({ transactionId: this.id, name }, this.#runner.callOptions(options));
    } catch (e) {
      throw this.#runner.fail(method, sql, undefined, t0, e);
    }
    this.#runner.emit(method, sql, undefined, t0, 0);
  }

  /** Cancels the transaction's unfinished streams: the server runs COMMIT / ROLLBACK only after them. */
  async #cancelStreams(): Promise<void> {
    const open = [...this.#streams].filter((s) => !s.finished);
    this.#streams.clear();
    await Promise.all(open.map((s) => s.cancel()));
  }

  #checkOpen(): void {
    if (this.#state !== 'open') {
      throw new TransactionError(`transaction ${this.id} is finished (${this.#endedBecause}); begin a new one`, 'TRANSACTION_FINISHED');
    }
  }

  #observe(e: HeliosDBError): void {
    if (isTransactionConflict(e)) this.#conflict ??= e;
    if (e instanceof TransactionError && this.#state === 'open') {
      if (e.reason === 'TRANSACTION_EXPIRED') this.#end('expired', 'the server rolled it back after its idle timeout');
      else if (e.reason === 'TRANSACTION_NOT_FOUND')
        this.#end('rolledBack', 'the server no longer has it open (restarted, or another server)');
    }
  }

  #end(state: Exclude<TransactionState, 'open'>, because: string): void {
    if (this.#state !== 'open') return;
    this.#state = state;
    this.#endedBecause = because;
    this.#init.pin?.release();
    this.#init.onEnd(this, state);
  }

  async #empty<R>(): Promise<R> {
    this.#runner.check();
    return { results: [], rowCount: 0, failed: 0, executionTimeMs: 0, roundTripMs: 0 } as R;
  }
}

function* prepend(first: ParameterChunk, rest: Iterator<ParameterChunk>): Generator<ParameterChunk> {
  yield first;
  for (let r = rest.next(); !r.done; r = rest.next()) yield r.value;
}
