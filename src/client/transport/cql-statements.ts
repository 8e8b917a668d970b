/**
 * DatabaseService's statement calls served over CQL through cassandra-driver: Query, Execute,
 * Prepare, ExecutePrepared, ExecuteBatch and StreamQuery, answered with the messages a HeliosDB
 * server sends. A statement with parameters is always prepared (`prepare: true`), so the driver
 * encodes each value for its column's CQL type; markers are `?` or `:name`, bound in order. A
 * unary query reads every page; a stream asks for pages of `batchRows` rows (CQL paging, the next
 * page by the previous page's `paging_state`) and sends each page on as it arrives. An atomic batch
 * is one logged CQL BATCH (a COUNTER batch when its statements add to counters). Node only.
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type cassandra from 'cassandra-driver';
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
  type StreamQueryRequest,
  type StreamQueryResponse,
  StreamQueryResponseSchema,
} from '../../../gen/heliosdb/v1/database_pb.js';
import { ErrorDetailSchema, ErrorReason } from '../../../gen/heliosdb/v1/error_pb.js';
import { type ResultSet, ResultSetSchema, type Value } from '../../../gen/heliosdb/v1/value_pb.js';
import { cqlHasNo, fromCqlError } from './cql-errors.js';
import type { CqlModules } from './cql-modules.js';
import { type CqlColumn, cqlColumns, cqlParams, cqlRows } from './cql-values.js';
import { detailedError } from './pg-errors.js';
import { maxUnaryRows, statementIdOf } from './pg-statements.js';

/** Rows a stream's page holds when the call does not say (`batchRows`). */
const defaultPageRows = 1000;
/** Rows a unary query asks for per page. */
const unaryPageRows = 5000;

/** The statement's command: its first keyword, with the object kind for schema statements (`CREATE TABLE`). */
export function cqlCommand(cql: string): string {
  const words = cql
    .trim()
    .split(/\s+/, 3)
    .map((w) => w.toUpperCase());
  const first = words[0] ?? '';
  if (first === 'CREATE' || first === 'DROP' || first === 'ALTER') return `${first} ${words[1] ?? ''}`.trim();
  if (first === 'BEGIN') return 'BATCH';
  return first.replace(/[^A-Z]/g, '');
}

/** `SET n = n + ?`: a statement that adds to a counter (its batch must be a COUNTER batch). */
function addsToCounter(cql: string): boolean {
  return /\bset\b[\s\S]*?("?)(\w+)\1\s*=\s*\1\2\1\s*[+-]/i.test(cql);
}

/**
 * `$1, $2, ...` (what the client's `sql` template writes) as CQL's `?` markers, when they are
 * numbered 1, 2, ... in order outside string literals and quoted names; any other text unchanged.
 */
export function cqlMarkers(cql: string): string {
  if (!cql.includes('$')) return cql;
  let out = '';
  let next = 1;
  for (let i = 0; i < cql.length; i++) {
    const ch = cql[i];
    if (ch === "'" || ch === '"') {
      const end = cql.indexOf(ch, i + 1);
      const stop = end < 0 ? cql.length : end + 1;
      out += cql.slice(i, stop);
      i = stop - 1;
      continue;
    }
    const m = ch === '$' ? /^\$(\d+)/.exec(cql.slice(i)) : null;
    if (m) {
      if (Number(m[1]) !== next) return cql;
      next++;
      out += '?';
      i += m[0].length - 1;
      continue;
    }
    out += ch;
  }
  return out;
}

/** Statements a call sends ahead of the CQL itself: transaction control, which CQL has not. */
function refuseControl(cql: string): void {
  if (
    /^\s*(begin(\s+(transaction|work))?|start\s+transaction)\b(?!\s+(unlogged\s+|logged\s+|counter\s+)?batch)|^\s*(commit|rollback|savepoint|release)\b/i.test(
      cql,
    )
  )
    throw cqlHasNo('interactive transactions or savepoints', 'run BEGIN, COMMIT, ROLLBACK or SAVEPOINT');
}

/** The statement calls; see the file comment. */
export class CqlStatements {
  constructor(
    private readonly client: () => Promise<cassandra.Client>,
    private readonly modules: CqlModules,
    private readonly endpoint: string,
  ) {}

  /** One page of `cql`. */
  private async page(cql: string, params: readonly Value[], fetchSize: number, pageState?: string): Promise<cassandra.types.ResultSet> {
    refuseControl(cql);
    const values = cqlParams(params);
    const client = await this.client();
    try {
      return await client.execute(cqlMarkers(cql), values, {
        prepare: values.length > 0,
        fetchSize,
        pageState,
        autoPage: false,
        readTimeout: 0,
      });
    } catch (e) {
      throw fromCqlError(e, this.endpoint, true);
    }
  }

  /** Every page of `cql` as one ResultSet (at most `maxRows` rows, or the unary limit). */
  private async result(cql: string, params: readonly Value[], maxRows: number): Promise<ResultSet> {
    const t0 = performance.now();
    const limit = maxRows > 0 ? maxRows : maxUnaryRows;
    let rs = await this.page(cql, params, unaryPageRows);
    const columns = (rs.columns ?? []) as CqlColumn[];
    const rows: unknown[][] = (rs.rows ?? []).map((r) => r.values());
    while (rs.pageState && rows.length <= limit) {
      rs = await this.page(cql, params, unaryPageRows, rs.pageState);
      for (const r of rs.rows ?? []) rows.push(r.values());
    }
    if (rows.length > limit) {
      throw detailedError(
        Code.ResourceExhausted,
        `the result has more than ${limit} rows, the limit for a unary query; use streaming (client.stream) for large results`,
        { reason: ErrorReason.ROW_LIMIT_EXCEEDED },
      );
    }
    return create(ResultSetSchema, {
      columns: cqlColumns(columns),
      rows: cqlRows(columns, rows),
      command: cqlCommand(cql),
      rowsAffected: BigInt(columns.length > 0 ? rows.length : 0),
      executionTimeMs: performance.now() - t0,
    });
  }

  async query(req: QueryRequest): Promise<QueryResponse> {
    return create(QueryResponseSchema, { result: await this.result(req.sql, req.params, req.maxRows) });
  }

  async execute(req: ExecuteRequest): Promise<ExecuteResponse> {
    const r = await this.result(req.sql, req.params, 0);
    return create(ExecuteResponseSchema, { command: r.command, rowsAffected: r.rowsAffected, executionTimeMs: r.executionTimeMs });
  }

  async prepare(req: PrepareRequest): Promise<PrepareResponse> {
    refuseControl(req.sql);
    const handler = await this.modules.prepareHandler();
    let columns: CqlColumn[] = [];
    if (handler) {
      const client = await this.client();
      try {
        // The driver's own prepare: the server checks the statement now, and answers its columns.
        const policies = (client as unknown as { options: { policies: { loadBalancing: unknown } } }).options.policies;
        const p = await handler.getPrepared(client, policies.loadBalancing, cqlMarkers(req.sql), client.keyspace);
        columns = (p.meta?.columns ?? []) as CqlColumn[];
      } catch (e) {
        throw fromCqlError(e, this.endpoint);
      }
    }
    return create(PrepareResponseSchema, { statementId: statementIdOf(req.sql), columns: cqlColumns(columns) });
  }

  async executePrepared(req: ExecutePreparedRequest): Promise<QueryResponse> {
    return create(QueryResponseSchema, { result: await this.result(req.sql, req.params, req.maxRows) });
  }

  async executeBatch(req: ExecuteBatchRequest): Promise<ExecuteBatchResponse> {
    if (req.statements.length > 0 && req.parameterSets.length > 0) {
      throw detailedError(Code.InvalidArgument, 'a batch has either statements or one statement with parameter sets, not both', {
        reason: ErrorReason.INVALID_REQUEST,
      });
    }
    const list = req.statements.length > 0 ? req.statements : req.parameterSets.map((p) => ({ sql: req.sql, params: p.values }));
    const t0 = performance.now();
    const results: BatchResult[] = [];
    if (req.atomic) {
      for (const s of list) refuseControl(s.sql);
      const client = await this.client();
      const queries = list.map((s) => ({ query: cqlMarkers(s.sql), params: cqlParams(s.params) }));
      const counter = list.some((s) => addsToCounter(s.sql));
      try {
        await client.batch(queries, { prepare: true, logged: !counter, counter, readTimeout: 0 });
      } catch (e) {
        throw fromCqlError(e, this.endpoint, true);
      }
      for (const s of list) results.push(create(BatchResultSchema, { result: { command: cqlCommand(s.sql) } }));
      return create(ExecuteBatchResponseSchema, { results, rowsAffected: 0n, executionTimeMs: performance.now() - t0 });
    }
    for (let i = 0; i < list.length; i++) {
      try {
        const r = await this.result(list[i].sql, list[i].params, 0);
        if (!req.returnRows) r.rows = undefined;
        results.push(create(BatchResultSchema, { result: r }));
      } catch (e) {
        const ce = ConnectError.from(fromCqlError(e, this.endpoint));
        const detail = ce.findDetails(ErrorDetailSchema)[0];
        if (!detail?.sqlstate) throw ce;
        results.push(create(BatchResultSchema, { error: { ...detail, statementIndex: i }, code: ce.code }));
      }
    }
    return create(ExecuteBatchResponseSchema, { results, rowsAffected: 0n, executionTimeMs: performance.now() - t0 });
  }

  /** The rows page by page: a header, one rows message per page, then the end. */
  async *streamQuery(req: StreamQueryRequest, signal: AbortSignal): AsyncGenerator<StreamQueryResponse> {
    const n = req.batchRows > 0 ? req.batchRows : defaultPageRows;
    const t0 = performance.now();
    let total = 0;
    let pageState: string | undefined;
    let columns: CqlColumn[] | undefined;
    do {
      if (signal.aborted) throw new ConnectError('the stream was cancelled', Code.Canceled);
      const rs = await this.page(req.sql, req.params, n, pageState);
      if (!columns) {
        columns = (rs.columns ?? []) as CqlColumn[];
        yield create(StreamQueryResponseSchema, { event: { case: 'header', value: { columns: cqlColumns(columns) } } });
      }
      if (rs.rows && rs.rows.length > 0) {
        total += rs.rows.length;
        yield create(StreamQueryResponseSchema, {
          event: {
            case: 'rows',
            value: cqlRows(
              columns,
              (rs.rows ?? []).map((r) => r.values()),
            ),
          },
        });
      }
      pageState = rs.pageState || undefined;
    } while (pageState);
    yield create(StreamQueryResponseSchema, {
      event: {
        case: 'complete',
        value: { command: cqlCommand(req.sql), rowsAffected: BigInt(total), executionTimeMs: performance.now() - t0 },
      },
    });
  }
}
