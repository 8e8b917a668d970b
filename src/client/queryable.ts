/**
 * `Queryable`: what the client and a transaction both offer, for code that runs either in
 * auto-commit or inside a transaction. Browser-safe.
 * @packageDocumentation
 */
import type { BatchOptions, BatchResult, BatchStatementInput, ExecuteManyOptions, ExecuteManyResult } from './batch.js';
import type { CopyResult, CopySource, CopyToStream } from './copy.js';
import type { CopyFromOptions, CopyToOptions } from './copy-calls.js';
import type { PreparedStatement } from './prepared-statement.js';
import type { ResultStream, StreamOptions } from './result-stream.js';
import type { CallOptions, ExecuteResult, QueryOptions, QueryResult } from './types.js';

/**
 * The statement-running surface shared by `HeliosDBClient` (auto-commit) and `Transaction`.
 *
 * @example
 * ```ts
 * async function addUser(db: Queryable, name: string) {
 *   return db.queryOne<{ id: number }>('INSERT INTO users (name) VALUES ($1) RETURNING id', [name]);
 * }
 * await addUser(client, 'ada');                              // auto-commit
 * await client.transaction((tx) => addUser(tx, 'grace'));    // inside a transaction
 * ```
 */
export interface Queryable {
  /** Runs a statement and returns its rows. */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<T>>;
  /** Runs a statement for its effect. */
  execute(sql: string, params?: readonly unknown[], options?: CallOptions): Promise<ExecuteResult>;
  /** Returns the only row; QueryError `ROW_COUNT_MISMATCH` for zero or several. */
  queryOne<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T>;
  /** Returns the only row or null; QueryError `ROW_COUNT_MISMATCH` for several. */
  queryMaybeOne<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T | null>;
  /** Tagged template: every `${value}` becomes a parameter. */
  sql<T = Record<string, unknown>>(strings: TemplateStringsArray, ...values: unknown[]): Promise<QueryResult<T>>;
  /** Streams a query's rows. */
  stream<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: StreamOptions): ResultStream<T>;
  /** Prepares a statement. */
  prepare<T = Record<string, unknown>>(sql: string, options?: CallOptions): Promise<PreparedStatement<T>>;
  /** Runs several statements in one round trip. */
  batch<T = Record<string, unknown>>(statements: readonly BatchStatementInput[], options?: BatchOptions): Promise<BatchResult<T>>;
  /** Runs one statement with many parameter sets, chunked to fit the message size limit. */
  executeMany<T = Record<string, unknown>>(
    sql: string,
    paramSets: readonly (readonly unknown[])[],
    options?: ExecuteManyOptions,
  ): Promise<ExecuteManyResult<T>>;
  /** Runs `COPY ... FROM STDIN` with `source` as its data; resolves to `{ rowCount }`. */
  copyFrom(sql: string, source: CopySource, options?: CopyFromOptions): Promise<CopyResult>;
  /** Runs `COPY ... TO STDOUT`: its data as chunks, with backpressure; leaving early cancels it. */
  copyTo(sql: string, options?: CopyToOptions): CopyToStream;
}
