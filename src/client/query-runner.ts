/**
 * Runs statements over the DatabaseService RPC client: parameters in, decoded results out, errors
 * mapped, `onQuery` events emitted. The client uses one in auto-commit mode; transactions use one
 * bound to their transaction id and channel. Browser-safe.
 * @packageDocumentation
 */
import { headers } from './protocol/headers.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError, type Client as RpcClient, type ContextValues } from '@connectrpc/connect';
import type { BatchResult as WireBatchResult, DatabaseService, ExecuteBatchRequestSchema } from '../../gen/heliosdb/v1/database_pb.js';
import { ErrorDetailSchema } from '../../gen/heliosdb/v1/error_pb.js';
import { type Column, type ResultSet, type Rows, RowFormat } from '../../gen/heliosdb/v1/value_pb.js';
import type { BatchItemResult, BatchOptions, BatchResult, BatchStatementInput, ParameterChunk } from './batch.js';
import type { ResolvedConnectionConfig } from './config.js';
import { type HeliosDBError, QueryError, toHeliosError } from './errors.js';
import { PreparedStatement } from './prepared-statement.js';
import { RowDecoder } from './protocol/decode.js';
import { toParams } from './protocol/params.js';
import { ResultStream, type StreamOptions } from './result-stream.js';
import type { CallOptions, ExecuteResult, Field, QueryOptions, QueryResult } from './types.js';

/** How a transaction watches the calls of its runner. */
export interface RunnerHooks {
  /** Throws when the runner may no longer be used (its transaction finished). */
  check?(): void;
  /** Sees every error a call failed with. */
  onError?(error: HeliosDBError): void;
  /** A result stream opened (`+1`) or ended (`-1`). */
  onStream?(delta: 1 | -1): void;
  /** A result stream was created (a transaction cancels its unfinished streams when it ends). */
  onStreamCreated?(stream: ResultStream<unknown>): void;
  /** Why the transport cannot send streaming requests (copyFrom), when it cannot. */
  readonly noRequestStreams?: string;
}

/** See the file comment. */
export class QueryRunner {
  private readonly headers: Record<string, string> | undefined;

  constructor(
    readonly rpc: RpcClient<typeof DatabaseService>,
    readonly config: ResolvedConnectionConfig,
    /** The transaction id, or `''` for auto-commit. */
    readonly transactionId: string,
    /** Context values for every call (a pinned channel for transactions). */
    readonly contextValues: ContextValues | undefined,
    readonly hooks: RunnerHooks = {},
  ) {
    this.headers = config.applicationName ? { [headers.applicationName]: config.applicationName } : undefined;
  }

  /** Throws when the runner's transaction finished (no round trip). */
  check(): void {
    this.hooks.check?.();
  }

  /** Connect call options for a call. */
  callOptions(options: CallOptions | undefined) {
    return {
      signal: options?.signal,
      timeoutMs: options?.timeoutMs ?? (this.config.timeoutMs || undefined),
      headers: this.headers,
      contextValues: this.contextValues,
    };
  }

  /** Maps an error and reports it to `onQuery`. */
  fail(operation: string, sql: string, params: readonly unknown[] | undefined, t0: number, e: unknown): HeliosDBError {
    const err = toHeliosError(e, { query: sql, params, logParameters: this.config.logParameters });
    this.emit(operation, sql, params, t0, 0, err);
    try {
      this.hooks.onError?.(err);
    } catch {
      // Bookkeeping must not replace the error.
    }
    return err;
  }

  /** Reports a finished statement to `onQuery`. */
  emit(operation: string, sql: string, params: readonly unknown[] | undefined, t0: number, rowCount: number, error?: Error): void {
    const hook = this.config.onQuery;
    if (!hook) return;
    try {
      hook({
        operation,
        sql,
        params: this.config.logParameters ? params : undefined,
        durationMs: performance.now() - t0,
        rowCount,
        error,
      });
    } catch {
      // A failing hook must not fail the query.
    }
  }

  /** A row decoder for `columns` in `rowMode` (default: the client's). */
  rowDecoder(columns: readonly Column[], rowMode: 'object' | 'array' | undefined): (rows: Rows) => unknown[] {
    const decoder = new RowDecoder(columns, this.config);
    return (rowMode ?? this.config.rowMode) === 'array' ? (rows) => decoder.arrays(rows) : (rows) => decoder.objects(rows);
  }

  /** Decodes a ResultSet. */
  decode<T>(result: ResultSet | undefined, rowMode: 'object' | 'array' | undefined, t0: number): QueryResult<T> {
    const columns = result?.columns ?? [];
    const fields: Field[] = fieldsOf(columns);
    let rows: T[] = [];
    if (columns.length > 0 && result?.rows && result.rows.rowCount > 0) {
      rows = this.rowDecoder(columns, rowMode)(result.rows) as T[];
    }
    const affected = Number(result?.rowsAffected ?? 0n);
    return {
      rows,
      fields,
      rowCount: columns.length > 0 ? Math.max(rows.length, affected) : affected,
      command: result?.command ?? '',
      executionTimeMs: result?.executionTimeMs ?? 0,
      roundTripMs: performance.now() - t0,
    };
  }

  async query<T>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<T>> {
    this.check();
    const t0 = performance.now();
    try {
      const res = await this.rpc.query(
        {
          sql,
          params: toParams(params),
          transactionId: this.transactionId,
          rowFormat: RowFormat.COMPACT,
          maxRows: options?.maxRows ?? 0,
        },
        this.callOptions(options),
      );
      const result = this.decode<T>(res.result, options?.rowMode, t0);
      this.emit('query', sql, params, t0, result.rowCount);
      return result;
    } catch (e) {
      throw this.fail('query', sql, params, t0, e);
    }
  }

  async execute(sql: string, params?: readonly unknown[], options?: CallOptions): Promise<ExecuteResult> {
    this.check();
    const t0 = performance.now();
    try {
      const res = await this.rpc.execute({ sql, params: toParams(params), transactionId: this.transactionId }, this.callOptions(options));
      const rowCount = Number(res.rowsAffected);
      this.emit('execute', sql, params, t0, rowCount);
      return { command: res.command, rowCount, executionTimeMs: res.executionTimeMs, roundTripMs: performance.now() - t0 };
    } catch (e) {
      throw this.fail('execute', sql, params, t0, e);
    }
  }

  async queryOne<T>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T> {
    return this.oneRow<T>(() => this.query<T>(sql, params, { ...options, maxRows: 2 }), sql);
  }

  async queryMaybeOne<T>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T | null> {
    return this.maybeOneRow<T>(() => this.query<T>(sql, params, { ...options, maxRows: 2 }), sql);
  }

  /** The only row of a result capped at two rows; QueryError `ROW_COUNT_MISMATCH` otherwise. */
  async oneRow<T>(run: () => Promise<QueryResult<T>>, sql: string): Promise<T> {
    const n = await rowsUpToTwo(run);
    if (n.rows.length !== 1) {
      throw new QueryError(`expected exactly one row, got ${n.rows.length === 0 ? 'none' : 'more than one'}`, 'ROW_COUNT_MISMATCH', {
        query: sql,
      });
    }
    return n.rows[0];
  }

  /** The only row or null; QueryError `ROW_COUNT_MISMATCH` for more. */
  async maybeOneRow<T>(run: () => Promise<QueryResult<T>>, sql: string): Promise<T | null> {
    const n = await rowsUpToTwo(run);
    if (n.rows.length > 1) throw new QueryError('expected at most one row, got more', 'ROW_COUNT_MISMATCH', { query: sql });
    return n.rows[0] ?? null;
  }

  /** Streams a query's rows (StreamQuery, compact rows). The call starts when the stream is first read. */
  stream<T>(sql: string, params?: readonly unknown[], options?: StreamOptions): ResultStream<T> {
    this.check();
    const wireParams = toParams(params);
    let t0 = 0;
    const stream = new ResultStream<T>({
      signal: options?.signal,
      open: (signal) => {
        t0 = performance.now();
        this.hooks.onStream?.(1);
        return this.rpc.streamQuery(
          {
            sql,
            params: wireParams,
            transactionId: this.transactionId,
            rowFormat: RowFormat.COMPACT,
            batchRows: options?.batchRows ?? 0,
            batchBytes: options?.batchBytes ?? 0,
          },
          { ...this.callOptions(options), signal },
        );
      },
      decoder: (columns) => this.rowDecoder(columns, options?.rowMode),
      mapError: (e) => this.fail('stream', sql, params, t0, e),
      onEnd: (rowCount, error) => {
        this.hooks.onStream?.(-1);
        if (!error) this.emit('stream', sql, params, t0, rowCount);
      },
    });
    this.hooks.onStreamCreated?.(stream as ResultStream<unknown>);
    return stream;
  }

  /** Prepare: parses `sql` once and returns the statement. */
  async prepare<T>(sql: string, options?: CallOptions): Promise<PreparedStatement<T>> {
    this.check();
    const t0 = performance.now();
    try {
      const res = await this.rpc.prepare({ sql, transactionId: this.transactionId }, this.callOptions(options));
      this.emit('prepare', sql, undefined, t0, 0);
      return new PreparedStatement<T>(this, {
        id: res.statementId,
        sql,
        paramTypes: res.paramTypeOids.map((oid, i) => ({ typeOid: oid, type: res.paramTypeNames[i] ?? '' })),
        fields: fieldsOf(res.columns),
      });
    } catch (e) {
      throw this.fail('prepare', sql, undefined, t0, e);
    }
  }

  /** ExecutePrepared, sending the SQL too so that any server can run it. */
  async executePrepared<T>(
    statement: { id: string; sql: string },
    params?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<QueryResult<T>> {
    this.check();
    const t0 = performance.now();
    try {
      const res = await this.rpc.executePrepared(
        {
          statementId: statement.id,
          sql: statement.sql,
          params: toParams(params),
          transactionId: this.transactionId,
          rowFormat: RowFormat.COMPACT,
          maxRows: options?.maxRows ?? 0,
        },
        this.callOptions(options),
      );
      const result = this.decode<T>(res.result, options?.rowMode, t0);
      this.emit('executePrepared', statement.sql, params, t0, result.rowCount);
      return result;
    } catch (e) {
      throw this.fail('executePrepared', statement.sql, params, t0, e);
    }
  }

  /** ClosePrepared. */
  async closePrepared(statementId: string, options?: CallOptions): Promise<void> {
    try {
      await this.rpc.closePrepared({ statementId }, this.callOptions(options));
    } catch (e) {
      throw toHeliosError(e);
    }
  }

  /** ExecuteBatch with a list of statements. */
  batch<T>(statements: readonly BatchStatementInput[], options?: BatchOptions): Promise<BatchResult<T>> {
    const list = statements.map((s, i) => {
      if (!s || typeof s.sql !== 'string') throw new TypeError(`batch statement ${i} needs a sql string`);
      return { sql: s.sql, params: toParams(s.params) };
    });
    return this.runBatch<T>('batch', { statements: list }, options, (i) => statements[i]);
  }

  /** ExecuteBatch of one statement with the parameter sets of one chunk. */
  async batchChunk<T>(
    sql: string,
    chunk: ParameterChunk,
    paramSets: readonly (readonly unknown[])[],
    options?: BatchOptions,
  ): Promise<BatchResult<T>> {
    const at = (i: number) => ({ sql, params: paramSets[chunk.start + i] });
    let sets = chunk.sets;
    if (chunk.columns) {
      const parameterColumns = { setCount: chunk.count, columns: chunk.columns };
      const r = await this.runBatch<T>('executeMany', { sql, parameterColumns }, options, at);
      if (r.results.length === chunk.count) return r;
      // A server that predates parameter_columns saw no parameter sets and ran nothing: send sets.
      sets = paramSets.slice(chunk.start, chunk.start + chunk.count).map((s) => ({ values: toParams(s) }));
    }
    return this.runBatch<T>('executeMany', { sql, parameterSets: sets }, options, at);
  }

  private async runBatch<T>(
    operation: string,
    request: Pick<MessageInitShape<typeof ExecuteBatchRequestSchema>, 'statements' | 'sql' | 'parameterSets' | 'parameterColumns'>,
    options: BatchOptions | undefined,
    statementAt: (i: number) => BatchStatementInput | undefined,
  ): Promise<BatchResult<T>> {
    this.check();
    const t0 = performance.now();
    const first = statementAt(0);
    let res;
    try {
      res = await this.rpc.executeBatch(
        {
          ...request,
          atomic: options?.atomic ?? true,
          transactionId: this.transactionId,
          rowFormat: RowFormat.COMPACT,
          returnRows: options?.returnRows ?? false,
        },
        this.callOptions(options),
      );
    } catch (e) {
      const index = ConnectError.from(e).findDetails(ErrorDetailSchema)[0]?.statementIndex;
      const at = (index !== undefined ? statementAt(index) : undefined) ?? first;
      throw this.fail(operation, at?.sql ?? '', at?.params, t0, e);
    }
    const results: BatchItemResult<T>[] = res.results.map((r, i) => this.batchItem<T>(r, statementAt(i), options, t0));
    const failed = results.filter((r) => !r.ok).length;
    const rowCount = Number(res.rowsAffected);
    this.emit(operation, first?.sql ?? '', undefined, t0, rowCount);
    return { results, rowCount, failed, executionTimeMs: res.executionTimeMs, roundTripMs: performance.now() - t0 };
  }

  private batchItem<T>(
    r: WireBatchResult,
    statement: BatchStatementInput | undefined,
    options: BatchOptions | undefined,
    t0: number,
  ): BatchItemResult<T> {
    if (r.error || r.code !== 0) {
      const detail = r.error;
      const ce = new ConnectError(
        detail?.message || 'the statement failed',
        (r.code || Code.Unknown) as Code,
        undefined,
        detail ? [{ desc: ErrorDetailSchema, value: detail }] : undefined,
      );
      return {
        ok: false,
        error: toHeliosError(ce, { query: statement?.sql, params: statement?.params, logParameters: this.config.logParameters }),
      };
    }
    return { ok: true, result: this.decode<T>(r.result, options?.rowMode, t0) };
  }
}

/** Result columns as Fields. */
export function fieldsOf(columns: readonly Column[]): Field[] {
  return columns.map((c) => ({ name: c.name, type: c.typeName, typeOid: c.typeOid }));
}

/** Runs a query capped at two rows; more surface as two, so callers can say "more than one". */
async function rowsUpToTwo<T>(run: () => Promise<QueryResult<T>>): Promise<{ rows: T[] }> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof QueryError && e.code === 'ROW_LIMIT_EXCEEDED') return { rows: [{}, {}] as T[] };
    throw e;
  }
}
