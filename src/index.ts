/**
 * `@heliosdb/client` for Node: the HeliosDB client over native gRPC (`@grpc/grpc-js`) with a
 * pool of HTTP/2 connections.
 *
 * @example
 * ```ts
 * import { createClient } from '@heliosdb/client';
 * const client = createClient({ url: 'grpc://127.0.0.1:7700', applicationName: 'my-app' });
 * const { rows } = await client.query('SELECT $1::int AS n', [42]);
 * await client.close();
 * ```
 * @packageDocumentation
 */
import { BaseClient } from './client.js';
import { type ConnectionConfig, resolveConfig } from './config.js';
import { createNodeParts } from './transport/node-parts.js';

/** The HeliosDB client for Node. `new HeliosDBClient()` reads `HELIOSDB_URL` and friends. */
export class HeliosDBClient extends BaseClient {
  /** @param config options, or a URL string; see {@link ConnectionConfig} for every default. */
  constructor(config: ConnectionConfig | string = {}) {
    const resolved = resolveConfig(config);
    super(resolved, createNodeParts(resolved));
  }
}

/** Creates a client (same as `new HeliosDBClient(config)`). */
export function createClient(config: ConnectionConfig | string = {}): HeliosDBClient {
  return new HeliosDBClient(config);
}

export { BaseClient, type ClientParts, type ConnectionPin, type ServerInfo, type TransactionRunOptions } from './client.js';
export {
  type BatchItemResult,
  type BatchOptions,
  type BatchResult,
  type BatchStatementInput,
  defaultMaxChunkBytes,
  defaultMaxChunkSize,
  type ExecuteManyOptions,
  type ExecuteManyResult,
} from './batch.js';
export type { ClientStats } from './client-stats.js';
export { Cursor, type CursorOptions } from './cursor.js';
export { IsolationLevel } from './isolation-level.js';
export { PreparedStatement, type ParamType } from './prepared-statement.js';
export type { Queryable } from './queryable.js';
export { ResultStream, type StreamOptions, type StreamStats } from './result-stream.js';
export { Savepoint } from './savepoint.js';
export { Transaction, type BeginOptions, type TransactionOptions, type TransactionState } from './transaction.js';
export { transactionRetryDefaults, type TransactionRetryOptions } from './transaction-retry.js';
export { clientDefaults, configFromEnv, resolveConfig, type ConnectionConfig, type QueryEvent, type ResolvedConnectionConfig } from './config.js';
export * from './errors.js';
export { SSLMode, type Pem, type SSLModeName, type SslOptions } from './tls-options.js';
export type { AccessToken, ClientCredentialsOptions, OAuthOptions, TokenProvider } from './auth-interceptor.js';
export { QueryMetrics, metricsInterceptor, type OperationMetrics } from './metrics.js';
export type { PoolHandle, PoolStats } from './pool-stats.js';
export type { Int8Mode, Interval } from './protocol/decode.js';
export { sqlTemplate, type SqlStatement } from './sql-template.js';
export type { CallOptions, ExecuteResult, Field, Param, QueryOptions, QueryResult } from './types.js';
