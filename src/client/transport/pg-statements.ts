/**
 * The statement calls of DatabaseService served over the PostgreSQL protocol: Query, Execute,
 * Prepare, ExecutePrepared, ClosePrepared and ExecuteBatch, answered with the same messages a
 * HeliosDB server sends (compact rows, command tags, ErrorDetails with the failing statement's
 * index). Node only.
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import {
  type BatchResult,
  BatchResultSchema,
  type ExecuteBatchRequest,
  type ExecuteBatchResponse,
  ExecuteBatchResponseSchema,
  type ExecutePreparedRequest,
  type ExecuteRequest,
  type ExecuteResponse,
  ExecuteResponseSchema,
  type PrepareRequest,
  type PrepareResponse,
  PrepareResponseSchema,
  type QueryRequest,
  type QueryResponse,
  QueryResponseSchema,
} from '../../../gen/heliosdb/v1/database_pb.js';
import { ErrorDetailSchema, ErrorReason } from '../../../gen/heliosdb/v1/error_pb.js';
import type { ResultSet, Value } from '../../../gen/heliosdb/v1/value_pb.js';
import { abortError, type PgBackend, type PgCall } from './pg-backend.js';
import { PipelineFailure, pipelinable, runPipeline } from './pg-batch.js';
import { describeStatement } from './pg-describe.js';
import { detailedError, fromPgError } from './pg-errors.js';
import type { PgConn } from './pg-pool.js';
import { columnsOf, paramTexts, type RawResult, resultSetOf } from './pg-values.js';

/** Most rows a unary query returns (as a HeliosDB server's default `maxUnaryRows`). */
export const maxUnaryRows = 100_000;

/** The statement calls; see the file comment. */
export class PgStatements {
  constructor(private readonly b: PgBackend) {}

  /** Runs one statement (or a script) and returns its ResultSet. */
  private async result(
    conn: PgConn,
    call: PgCall,
    sql: string,
    params: readonly Value[],
    maxRows: number,
    sentAsRead: boolean,
    name?: string,
  ): Promise<ResultSet> {
    const t0 = performance.now();
    let raw: RawResult | RawResult[];
    try {
      raw = await this.b.query(conn, call, sql, paramTexts(params), name);
    } catch (e) {
      throw fromPgError(e, this.b.endpoint, { sentAsRead });
    }
    const ms = performance.now() - t0;
    const last = Array.isArray(raw) ? raw[raw.length - 1] : raw;
    const limit = maxRows > 0 ? maxRows : maxUnaryRows;
    if (last && last.rows.length > limit) {
      throw detailedError(
        Code.ResourceExhausted,
        `the result has more than ${limit} rows, the limit for a unary query; use streaming (StreamQuery) for large results`,
        { reason: ErrorReason.ROW_LIMIT_EXCEEDED },
      );
    }
    if (last)
      await this.b.resolveTypes(
        conn,
        last.fields.map((f) => f.dataTypeID),
      );
    return resultSetOf(raw, this.b.types.get, ms);
  }

  async query(req: QueryRequest, call: PgCall): Promise<QueryResponse> {
    const readOnly = req.readOnly && !req.transactionId;
    const result = await this.b.withConn(req.transactionId, readOnly, call, (conn) =>
      this.result(conn, call, req.sql, req.params, req.maxRows, readOnly),
    );
    return create(QueryResponseSchema, { result });
  }

  async execute(req: ExecuteRequest, call: PgCall): Promise<ExecuteResponse> {
    const readOnly = req.readOnly && !req.transactionId;
    const r = await this.b.withConn(req.transactionId, readOnly, call, (conn) => this.result(conn, call, req.sql, req.params, 0, readOnly));
    return create(ExecuteResponseSchema, { command: r.command, rowsAffected: r.rowsAffected, executionTimeMs: r.executionTimeMs });
  }

  async prepare(req: PrepareRequest, call: PgCall): Promise<PrepareResponse> {
    return this.b.withConn(req.transactionId, false, call, async (conn) => {
      let d: Awaited<ReturnType<typeof describeStatement>>;
      try {
        d = await this.b.run(conn, call, () => describeStatement(conn.client, req.sql));
      } catch (e) {
        throw fromPgError(e, this.b.endpoint);
      }
      await this.b.resolveTypes(conn, [...d.paramOids, ...d.fields.map((f) => f.dataTypeID)]);
      return create(PrepareResponseSchema, {
        statementId: statementIdOf(req.sql),
        paramTypeOids: d.paramOids,
        paramTypeNames: d.paramOids.map(this.b.types.get),
        columns: columnsOf(d.fields, this.b.types.get),
      });
    });
  }

  async executePrepared(req: ExecutePreparedRequest, call: PgCall): Promise<QueryResponse> {
    const readOnly = req.readOnly && !req.transactionId;
    // node-postgres prepares the named statement on each connection the first time it runs there.
    const name = req.statementId || statementIdOf(req.sql);
    const result = await this.b.withConn(req.transactionId, readOnly, call, (conn) =>
      this.result(conn, call, req.sql, req.params, req.maxRows, readOnly, name),
    );
    return create(QueryResponseSchema, { result });
  }

  async executeBatch(req: ExecuteBatchRequest, call: PgCall): Promise<ExecuteBatchResponse> {
    const list: { sql: string; params: readonly Value[] }[] =
      req.statements.length > 0 ? req.statements : req.parameterSets.map((p) => ({ sql: req.sql, params: p.values }));
    if (req.statements.length > 0 && req.parameterSets.length > 0) {
      throw detailedError(Code.InvalidArgument, 'a batch has either statements or one statement with parameter sets, not both', {
        reason: ErrorReason.INVALID_REQUEST,
      });
    }
    const readOnly = req.readOnly && !req.transactionId;
    const t0 = performance.now();
    return this.b.withConn(req.transactionId, readOnly, call, async (conn) => {
      const inTx = req.transactionId !== '' && conn.txStatus !== 'I';
      const results: BatchResult[] = [];
      let affected = 0n;
      const control = async (sql: string) => {
        try {
          await this.b.query(conn, call, sql, []);
        } catch (e) {
          throw fromPgError(e, this.b.endpoint);
        }
      };
      if (req.atomic && list.every((s) => s.params.length > 0 || pipelinable(s.sql))) {
        return this.pipelined(conn, call, list, inTx, readOnly, req.returnRows, control, t0);
      }
      if (req.atomic) await control(inTx ? 'SAVEPOINT heliosdb_batch' : 'BEGIN');
      for (let i = 0; i < list.length; i++) {
        const s = list[i];
        // Outside an atomic batch, a statement inside a transaction runs under a savepoint, so its failure leaves the transaction usable.
        const guard = !req.atomic && inTx;
        if (guard) await control('SAVEPOINT heliosdb_batch_item');
        try {
          const r = await this.result(conn, call, s.sql, s.params, 0, readOnly);
          if (guard) await control('RELEASE SAVEPOINT heliosdb_batch_item');
          affected += r.rowsAffected;
          if (!req.returnRows) r.rows = undefined;
          results.push(create(BatchResultSchema, { result: r }));
        } catch (e) {
          const ce = ConnectError.from(fromPgError(e, this.b.endpoint, { sentAsRead: readOnly }));
          const detail = ce.findDetails(ErrorDetailSchema)[0];
          if (req.atomic || !detail?.sqlstate) {
            if (req.atomic)
              await control(inTx ? 'ROLLBACK TO SAVEPOINT heliosdb_batch; RELEASE SAVEPOINT heliosdb_batch' : 'ROLLBACK').catch(() => {});
            throw withStatementIndex(ce, i);
          }
          if (guard) await control('ROLLBACK TO SAVEPOINT heliosdb_batch_item; RELEASE SAVEPOINT heliosdb_batch_item');
          results.push(create(BatchResultSchema, { error: { ...detail, statementIndex: i }, code: ce.code }));
        }
      }
      if (req.atomic) await control(inTx ? 'RELEASE SAVEPOINT heliosdb_batch' : 'COMMIT');
      return create(ExecuteBatchResponseSchema, { results, rowsAffected: affected, executionTimeMs: performance.now() - t0 });
    });
  }

  /**
   * An atomic batch in one round trip (`pg-batch.ts`): PostgreSQL's implicit transaction makes it
   * all or nothing; inside a transaction a savepoint does.
   */
  private async pipelined(
    conn: PgConn,
    call: PgCall,
    list: readonly { sql: string; params: readonly Value[] }[],
    inTx: boolean,
    readOnly: boolean,
    returnRows: boolean,
    control: (sql: string) => Promise<void>,
    t0: number,
  ): Promise<ExecuteBatchResponse> {
    if (inTx) await control('SAVEPOINT heliosdb_batch');
    let raws: RawResult[];
    try {
      const statements = list.map((s) => ({ text: s.sql, values: paramTexts(s.params) }));
      raws = await this.b.run(conn, call, () => runPipeline(conn.client, statements));
    } catch (e) {
      if (inTx) await control('ROLLBACK TO SAVEPOINT heliosdb_batch; RELEASE SAVEPOINT heliosdb_batch').catch(() => {});
      if (call.signal.aborted) throw abortError(call.signal);
      const failure = e instanceof PipelineFailure ? e.failure : e;
      const ce = ConnectError.from(fromPgError(failure, this.b.endpoint, { sentAsRead: readOnly }));
      throw e instanceof PipelineFailure ? withStatementIndex(ce, e.statementIndex) : ce;
    }
    if (inTx) await control('RELEASE SAVEPOINT heliosdb_batch');
    if (returnRows)
      await this.b.resolveTypes(
        conn,
        raws.flatMap((r) => r.fields.map((f) => f.dataTypeID)),
      );
    let affected = 0n;
    const results = raws.map((raw) => {
      const r = resultSetOf(raw, this.b.types.get, 0);
      affected += r.rowsAffected;
      if (!returnRows) r.rows = undefined;
      return create(BatchResultSchema, { result: r });
    });
    return create(ExecuteBatchResponseSchema, { results, rowsAffected: affected, executionTimeMs: performance.now() - t0 });
  }
}

/** The same error with the failing statement's index in its ErrorDetail (database errors only). */
function withStatementIndex(ce: ConnectError, index: number): ConnectError {
  const detail = ce.findDetails(ErrorDetailSchema)[0];
  if (!detail?.sqlstate) return ce;
  const init: MessageInitShape<typeof ErrorDetailSchema> = { ...(detail ?? { message: ce.rawMessage }), statementIndex: index };
  const e = new ConnectError(
    ce.rawMessage,
    ce.code,
    ce.metadata,
    [{ desc: ErrorDetailSchema, value: create(ErrorDetailSchema, init) }],
    ce,
  );
  return e;
}

/** A statement's id: the same for the same SQL, so any connection can prepare it again. */
export function statementIdOf(sql: string): string {
  return `heliosdb_${createHash('sha256').update(sql).digest('hex').slice(0, 24)}`;
}
