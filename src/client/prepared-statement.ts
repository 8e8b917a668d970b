/**
 * `PreparedStatement`: a statement parsed once by the server, run many times with different
 * parameters. Browser-safe.
 * @packageDocumentation
 */
import { HeliosDBError } from './errors.js';
import type { QueryRunner } from './query-runner.js';
import type { ResultStream, StreamOptions } from './result-stream.js';
import type { CallOptions, ExecuteResult, Field, QueryOptions, QueryResult } from './types.js';

/** A parameter of a prepared statement, with the type PostgreSQL inferred for it. */
export interface ParamType {
  /** PostgreSQL type name, e.g. `int4`, `text`. */
  type: string;
  /** PostgreSQL type OID. */
  typeOid: number;
}

/** What Prepare answered. */
export interface PreparedDescription {
  id: string;
  sql: string;
  paramTypes: ParamType[];
  fields: Field[];
}

/**
 * A prepared statement, from `client.prepare(sql)` or `tx.prepare(sql)`.
 *
 * The server parses the statement once per database connection and reuses the plan. Every
 * execution also sends the SQL, so the statement stays valid on any server of a cluster, across a
 * server restart, and on every database connection (each prepares it on first use).
 *
 * A statement prepared through a transaction runs inside that transaction and fails with
 * `TRANSACTION_FINISHED` after it ends; prepare through the client to use it anywhere.
 *
 * @example
 * ```ts
 * await using find = await client.prepare('SELECT * FROM users WHERE id = $1');
 * const a = await find.query([1]);
 * const b = await find.query([2]);
 * ```
 */
export class PreparedStatement<T = Record<string, unknown>> implements AsyncDisposable {
  /** The server's statement id (derived from the SQL, the same on every server). */
  readonly id: string;
  /** The SQL text. */
  readonly sql: string;
  /** The parameters' types, in order (`$1` first). */
  readonly paramTypes: readonly ParamType[];
  /** The result columns; empty for statements that return no rows. */
  readonly fields: readonly Field[];
  readonly #runner: QueryRunner;
  #closed = false;

  /** @internal Created by `prepare()`. */
  constructor(runner: QueryRunner, description: PreparedDescription) {
    this.#runner = runner;
    this.id = description.id;
    this.sql = description.sql;
    this.paramTypes = description.paramTypes;
    this.fields = description.fields;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Runs the statement and returns its rows. */
  query<R = T>(params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<R>> {
    return this.#open().then(() => this.#runner.executePrepared<R>(this, params, options));
  }

  /** Returns the only row; throws QueryError (`ROW_COUNT_MISMATCH`) for zero or several rows. */
  async queryOne<R = T>(params?: readonly unknown[], options?: QueryOptions): Promise<R> {
    await this.#open();
    return this.#runner.oneRow<R>(() => this.#runner.executePrepared<R>(this, params, { ...options, maxRows: 2 }), this.sql);
  }

  /** Runs the statement for its effect and returns the count of rows affected. */
  async execute(params?: readonly unknown[], options?: CallOptions): Promise<ExecuteResult> {
    await this.#open();
    const r = await this.#runner.executePrepared(this, params, options);
    return { command: r.command, rowCount: r.rowCount, executionTimeMs: r.executionTimeMs, roundTripMs: r.roundTripMs };
  }

  /** Streams the statement's rows (see {@link ResultStream}). */
  stream<R = T>(params?: readonly unknown[], options?: StreamOptions): ResultStream<R> {
    this.#check();
    return this.#runner.stream<R>(this.sql, params, options);
  }

  /** Forgets the statement on the server. Idempotent; later calls throw `STATEMENT_CLOSED`. */
  async close(options?: CallOptions): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#runner.closePrepared(this.id, options);
  }

  /** `await using stmt = await client.prepare(...)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.close();
    } catch {
      // Closing is housekeeping: the server forgets unused statements on restart anyway.
    }
  }

  #check(): void {
    if (this.#closed) throw new HeliosDBError(`the prepared statement ${this.id} is closed`, 'STATEMENT_CLOSED');
  }

  async #open(): Promise<void> {
    this.#check();
  }
}
