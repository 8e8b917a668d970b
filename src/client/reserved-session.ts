/**
 * `client.reserve()`: one database connection kept for the caller until `release()`, as
 * postgres.js's `sql.reserve()`. Statements run on it in auto-commit, one after another, and
 * whatever they leave on the connection stays for the next one: settings (`SET`), temporary
 * tables, prepared statements, advisory locks, cursors WITH HOLD, and transaction control in SQL
 * text (`BEGIN ... COMMIT`, two-phase `PREPARE TRANSACTION`). Every other call of the client
 * leaves nothing behind on the connection it used. Released, the connection is cleared. A
 * session unused for the server's idle timeout is released by the server. Browser-safe.
 * @packageDocumentation
 */
import type { Client as RpcClient } from '@connectrpc/connect';
import type { DatabaseService } from '../../gen/heliosdb/v1/database_pb.js';
import type { BatchOptions, BatchResult, BatchStatementInput, ExecuteManyOptions, ExecuteManyResult } from './batch.js';
import { readsParameterColumns } from './parameter-columns.js';
import { executeChunks, chunksOf, emptyExecuteManyResult } from './batch.js';
import type { ConnectionPin } from './transport/client-parts.js';
import type { ResolvedConnectionConfig } from './config.js';
import type { CopyResult, CopySource, CopyToStream } from './copy.js';
import { type CopyFromOptions, type CopyToOptions, copyFrom, copyTo } from './copy-calls.js';
import { TransactionError } from './errors.js';
import type { PreparedStatement } from './prepared-statement.js';
import { QueryRunner } from './query-runner.js';
import type { Queryable } from './queryable.js';
import type { ResultStream, StreamOptions } from './result-stream.js';
import { sqlTemplate } from './sql-template.js';
import type { CallOptions, ExecuteResult, QueryOptions, QueryResult } from './types.js';

/** What a reserved session is built from (supplied by the client). */
export interface ReservedSessionInit {
  rpc: RpcClient<typeof DatabaseService>;
  config: ResolvedConnectionConfig;
  id: string;
  idleTimeoutMs: number;
  pin: ConnectionPin | undefined;
  onEnd(session: ReservedSession): void;
  onStream?(delta: 1 | -1): void;
  /** Why the transport cannot send streaming requests (copyFrom), when it cannot. */
  noRequestStreams?: string;
}

/** See the file comment. */
export class ReservedSession implements Queryable, AsyncDisposable {
  /** The server's session id. */
  readonly id: string;
  /** The server releases the session after this long without a call, ms. */
  readonly idleTimeoutMs: number;
  readonly #init: ReservedSessionInit;
  readonly #runner: QueryRunner;
  #released = false;

  /** @internal Made by `client.reserve()`. */
  constructor(init: ReservedSessionInit) {
    this.#init = init;
    this.id = init.id;
    this.idleTimeoutMs = init.idleTimeoutMs;
    this.#runner = new QueryRunner(init.rpc, init.config, init.id, init.pin?.contextValues, {
      check: () => {
        if (this.#released) throw new TransactionError(`reserved session ${this.id} was released`, 'TRANSACTION_FINISHED');
      },
      onStream: init.onStream,
      noRequestStreams: init.noRequestStreams,
    });
  }

  /** Whether `release()` was called. */
  get released(): boolean {
    return this.#released;
  }

  /** Runs a statement on the session's connection and returns its rows. */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<T>> {
    return this.#runner.query<T>(sql, params, options);
  }

  /** Runs a statement (or a script without parameters) for its effect. */
  execute(sql: string, params?: readonly unknown[], options?: CallOptions): Promise<ExecuteResult> {
    return this.#runner.execute(sql, params, options);
  }

  /** Returns the only row; QueryError `ROW_COUNT_MISMATCH` for zero or several. */
  queryOne<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T> {
    return this.#runner.queryOne<T>(sql, params, options);
  }

  /** Returns the only row or null; QueryError `ROW_COUNT_MISMATCH` for several. */
  queryMaybeOne<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T | null> {
    return this.#runner.queryMaybeOne<T>(sql, params, options);
  }

  /** Tagged template: every `${value}` becomes a parameter. */
  sql<T = Record<string, unknown>>(strings: TemplateStringsArray, ...values: unknown[]): Promise<QueryResult<T>> {
    const { text, values: params } = sqlTemplate(strings, values);
    return this.#runner.query<T>(text, params);
  }

  /** Streams a query's rows (the session's other calls wait until it ends). */
  stream<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: StreamOptions): ResultStream<T> {
    return this.#runner.stream<T>(sql, params, options);
  }

  /** Prepares a statement. */
  prepare<T = Record<string, unknown>>(sql: string, options?: CallOptions): Promise<PreparedStatement<T>> {
    return this.#runner.prepare<T>(sql, options);
  }

  /** Runs several statements in one round trip. */
  batch<T = Record<string, unknown>>(statements: readonly BatchStatementInput[], options?: BatchOptions): Promise<BatchResult<T>> {
    return this.#runner.batch<T>(statements, options);
  }

  /** Runs one statement with many parameter sets. */
  executeMany<T = Record<string, unknown>>(
    sql: string,
    paramSets: readonly (readonly unknown[])[],
    options?: ExecuteManyOptions,
  ): Promise<ExecuteManyResult<T>> {
    this.#runner.check();
    const chunks = chunksOf(paramSets, options, readsParameterColumns(this.#init.config));
    const first = chunks.next();
    if (first.done) return Promise.resolve(emptyExecuteManyResult<T>());
    const all = (function* () {
      yield first.value;
      for (let r = chunks.next(); !r.done; r = chunks.next()) yield r.value;
    })();
    return executeChunks<T>(this.#runner, sql, paramSets, options, all);
  }

  /** `COPY ... FROM STDIN` with `source` as its data. */
  copyFrom(sql: string, source: CopySource, options?: CopyFromOptions): Promise<CopyResult> {
    return copyFrom(this.#runner, sql, source, options);
  }

  /** `COPY ... TO STDOUT`, as a stream of chunks. */
  copyTo(sql: string, options?: CopyToOptions): CopyToStream {
    return copyTo(this.#runner, sql, options);
  }

  /** Releases the session: the server clears its connection and takes it back. Idempotent. */
  async release(options?: CallOptions): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    try {
      await this.#init.rpc.releaseSession({ sessionId: this.id }, this.#runner.callOptions(options));
    } catch {
      // Gone already (released after its idle timeout, or the server restarted): what was asked.
    } finally {
      this.#init.pin?.release();
      this.#init.onEnd(this);
    }
  }

  /** `await using s = await client.reserve()` releases it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }
}
