/**
 * The HeliosDB client, written once against Connect's Transport: each entry point (Node, browser)
 * supplies the transport and the pool. Browser-safe.
 * @packageDocumentation
 */
import { type Client as RpcClient, createClient as createRpcClient, type Transport } from '@connectrpc/connect';
import { HealthCheckResponse_ServingStatus, Health } from '../gen/grpc/health/v1/health_pb.js';
import { DatabaseService } from '../gen/heliosdb/v1/database_pb.js';
import type { ResolvedConnectionConfig } from './config.js';
import { toHeliosError } from './errors.js';
import type { QueryMetrics } from './metrics.js';
import type { PoolHandle } from './pool-stats.js';
import { QueryRunner } from './query-runner.js';
import { sqlTemplate } from './sql-template.js';
import type { CallOptions, ExecuteResult, QueryOptions, QueryResult } from './types.js';

/** What an entry point gives the client: a transport and its pool. */
export interface ClientParts {
  transport: Transport;
  pool: PoolHandle;
  metrics: QueryMetrics;
  /** Closes the transport's connections. */
  close(): Promise<void>;
}

/** Server facts from GetServerInfo. */
export interface ServerInfo {
  version: string;
  /** `pglite` or `postgresql`. */
  engine: string;
  engineVersion: string;
  limits: {
    maxMessageBytes: number;
    maxUnaryRows: number;
    statementTimeoutMs: number;
    maxOpenTransactions: number;
    transactionIdleTimeoutMs: number;
  };
}

/** The platform-independent client. Use `createClient` / `new HeliosDBClient` from an entry point. */
export class BaseClient {
  /** The options in force. */
  readonly config: ResolvedConnectionConfig;
  /** Pool statistics: `client.pool.getStats()`. */
  readonly pool: PoolHandle;
  /** Latency percentiles and counters by operation: `client.metrics.snapshot()`. */
  readonly metrics: QueryMetrics;
  /** The generated DatabaseService client on this client's transport (for advanced use). */
  readonly rpc: RpcClient<typeof DatabaseService>;
  protected readonly runner: QueryRunner;
  private readonly health: RpcClient<typeof Health>;
  private readonly parts: ClientParts;
  private closed = false;

  constructor(config: ResolvedConnectionConfig, parts: ClientParts) {
    this.config = config;
    this.parts = parts;
    this.pool = parts.pool;
    this.metrics = parts.metrics;
    this.rpc = createRpcClient(DatabaseService, parts.transport);
    this.health = createRpcClient(Health, parts.transport);
    this.runner = new QueryRunner(this.rpc, config, '', undefined);
  }

  /**
   * Runs a statement and returns its rows. Parameters are `$1`, `$2`, ...
   * @example const { rows } = await client.query<{ id: number }>('SELECT id FROM users WHERE name = $1', ['ada']);
   */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<T>> {
    return this.runner.query<T>(sql, params, options);
  }

  /** Runs a statement for its effect (no rows returned): INSERT, UPDATE, DDL, or a script without parameters. */
  execute(sql: string, params?: readonly unknown[], options?: CallOptions): Promise<ExecuteResult> {
    return this.runner.execute(sql, params, options);
  }

  /** Returns the only row; throws QueryError (`ROW_COUNT_MISMATCH`) for zero or several rows. */
  queryOne<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T> {
    return this.runner.queryOne<T>(sql, params, options);
  }

  /** Returns the only row or null; throws QueryError (`ROW_COUNT_MISMATCH`) for several rows. */
  queryMaybeOne<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<T | null> {
    return this.runner.queryMaybeOne<T>(sql, params, options);
  }

  /**
   * Tagged template: every `${value}` becomes a parameter, never SQL text.
   * @example const { rows } = await client.sql`SELECT * FROM users WHERE id = ${id}`;
   */
  sql<T = Record<string, unknown>>(strings: TemplateStringsArray, ...values: unknown[]): Promise<QueryResult<T>> {
    const { text, values: params } = sqlTemplate(strings, values);
    return this.runner.query<T>(text, params);
  }

  /** The server's version, engine and limits. */
  async serverInfo(options?: CallOptions): Promise<ServerInfo> {
    try {
      const r = await this.rpc.getServerInfo({}, this.runner.callOptions(options));
      return {
        version: r.version,
        engine: r.engine,
        engineVersion: r.engineVersion,
        limits: {
          maxMessageBytes: r.limits?.maxMessageBytes ?? 0,
          maxUnaryRows: r.limits?.maxUnaryRows ?? 0,
          statementTimeoutMs: r.limits?.statementTimeoutMs ?? 0,
          maxOpenTransactions: r.limits?.maxOpenTransactions ?? 0,
          transactionIdleTimeoutMs: r.limits?.transactionIdleTimeoutMs ?? 0,
        },
      };
    } catch (e) {
      throw toHeliosError(e);
    }
  }

  /** True when the server reports SERVING (grpc.health.v1). Never throws. */
  async healthCheck(options?: CallOptions): Promise<boolean> {
    try {
      const r = await this.health.check({ service: DatabaseService.typeName }, this.runner.callOptions(options));
      return r.status === HealthCheckResponse_ServingStatus.SERVING;
    } catch {
      return false;
    }
  }

  /** Drains in-flight calls and closes every connection. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.parts.close();
  }

  /** `await using client = createClient(...)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
