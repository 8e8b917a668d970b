/**
 * The platform-independent public API, re-exported by both entry points (`./index.ts` for Node,
 * `./web.ts` for browsers), so the two always offer the same names. Browser-safe.
 * @packageDocumentation
 */
export { BaseClient, type ServerInfo, type TransactionRunOptions } from './client.js';
export type { ClientParts, ConnectionPin } from './transport/client-parts.js';
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
export { copyChunkBytes, type CopyResult, type CopySource, type CopyToStream } from './copy.js';
export type { CopyFromOptions, CopyToOptions } from './copy-calls.js';
export { Listener, type ListenOptions, type Notification } from './listener.js';
export { ReservedSession } from './reserved-session.js';
export { Cursor, type CursorOptions } from './cursor.js';
export { IsolationLevel } from './isolation-level.js';
export { PreparedStatement, type ParamType } from './prepared-statement.js';
export type { Queryable } from './queryable.js';
export { ResultStream, type StreamOptions, type StreamStats } from './result-stream.js';
export { Savepoint } from './savepoint.js';
export { Transaction, type BeginOptions, type TransactionOptions, type TransactionState } from './transaction.js';
export { transactionRetryDefaults, type TransactionRetryOptions } from './transaction-retry.js';
export {
  clientDefaults,
  configFromEnv,
  resolveConfig,
  type ConnectionConfig,
  type QueryEvent,
  type ResolvedConnectionConfig,
} from './config.js';
export * from './errors.js';
export type { ClientErrorCode, DatabaseErrorCode, ErrorReasonName, GrpcStatusName, HeliosDBErrorCode } from './error-codes.js';
export { SSLMode, type Pem, type SSLModeName, type SslOptions } from './tls-options.js';
export type { AccessToken, ClientCredentialsOptions, OAuthOptions, TokenProvider } from './interceptors/auth-interceptor.js';
export { QueryMetrics, metricsInterceptor, type OperationMetrics } from './metrics.js';
export type { EndpointStats, PoolHandle, PoolStats } from './pool-stats.js';
export {
  ClientEvents,
  type ClientEventListener,
  type ClientEventMap,
  type ClientEventName,
} from './telemetry/client-events.js';
export type { TracingOptions } from './telemetry/tracing-interceptor.js';
export { queryCacheDefaults, type QueryCacheOptions } from './cache/query-cache.js';
export { retryDefaults, type RetryOptions } from './interceptors/retry-options.js';
export { circuitBreakerDefaults, type CircuitBreakerOptions, type CircuitState } from './circuit-breaker.js';
export type { Int8Mode, Interval } from './protocol/decode.js';
export { sqlTemplate, type SqlStatement } from './sql-template.js';
export type { CallOptions, ExecuteResult, Field, Param, QueryOptions, QueryResult } from './types.js';
