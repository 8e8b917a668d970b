/**
 * Runs statements over the DatabaseService RPC client: parameters in, decoded results out, errors
 * mapped, `onQuery` events emitted. The client uses one in auto-commit mode; transactions use one
 * bound to their transaction id and channel. Browser-safe.
 * @packageDocumentation
 */
import type { Client as RpcClient, ContextValues } from '@connectrpc/connect';
import type { DatabaseService } from '../gen/heliosdb/v1/database_pb.js';
import { type ResultSet, RowFormat } from '../gen/heliosdb/v1/value_pb.js';
import type { ResolvedConnectionConfig } from './config.js';
import { HeliosDBError, QueryError, toHeliosError } from './errors.js';
import { RowDecoder } from './protocol/decode.js';
import { toParams } from './protocol/params.js';
import type { CallOptions, ExecuteResult, Field, QueryOptions, QueryResult } from './types.js';

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
  ) {
    this.headers = config.applicationName ? { 'x-heliosdb-application-name': config.applicationName } : undefined;
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

  /** Decodes a ResultSet. */
  decode<T>(result: ResultSet | undefined, rowMode: 'object' | 'array' | undefined, t0: number): QueryResult<T> {
    const columns = result?.columns ?? [];
    const fields: Field[] = columns.map((c) => ({ name: c.name, type: c.typeName, typeOid: c.typeOid }));
    let rows: T[] = [];
    if (columns.length > 0 && result?.rows && result.rows.rowCount > 0) {
      const decoder = new RowDecoder(columns, this.config);
      rows = (rowMode ?? this.config.rowMode) === 'array' ? (decoder.arrays(result.rows) as T[]) : decoder.objects<T>(result.rows);
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
    const r = await this.atMostTwo<T>(sql, params, options);
    if (r.rows.length !== 1) {
      throw new QueryError(`expected exactly one row, got ${r.rows.length === 0 ? 'none' : 'more than one'}`, 'ROW_COUNT_MISMATCH', { query: sql });
    }
    return r.rows[0];
  }

  async queryMaybeOne<T>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T | null> {
    const r = await this.atMostTwo<T>(sql, params, options);
    if (r.rows.length > 1) throw new QueryError('expected at most one row, got more', 'ROW_COUNT_MISMATCH', { query: sql });
    return r.rows[0] ?? null;
  }

  /** Runs a query capped at two rows; more surface as two, so callers can say "more than one". */
  private async atMostTwo<T>(sql: string, params: readonly unknown[] | undefined, options: QueryOptions | undefined): Promise<QueryResult<T>> {
    try {
      return await this.query<T>(sql, params, { ...options, maxRows: 2 });
    } catch (e) {
      if (e instanceof QueryError && e.code === 'ROW_LIMIT_EXCEEDED') {
        return { rows: [{}, {}] as T[], fields: [], rowCount: 3, command: 'SELECT', executionTimeMs: 0, roundTripMs: 0 };
      }
      throw e;
    }
  }
}
