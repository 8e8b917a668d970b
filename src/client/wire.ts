/**
 * `@heliosdb/client/wire`: the wire contract and the row codec the client and the server share,
 * for the server package and for tools that speak HeliosDB's protocol directly: the generated
 * Protobuf messages and services (`heliosdb.v1`, `grpc.health.v1`, `google.rpc.Status`), the
 * compact row format, PostgreSQL type OIDs, the date/time and array text formats, and the request
 * header names. Not a stable API for applications: use the package's main entry.
 * @packageDocumentation
 */
export * from '../../gen/google/rpc/status_pb.js';
export * from '../../gen/grpc/health/v1/health_pb.js';
export * from '../../gen/heliosdb/v1/auth_pb.js';
export * from '../../gen/heliosdb/v1/database_pb.js';
export * from '../../gen/heliosdb/v1/error_pb.js';
export * from '../../gen/heliosdb/v1/session_pb.js';
export * from '../../gen/heliosdb/v1/value_pb.js';
export { type ArrayItems, parseArrayLiteral } from './protocol/array-literal.js';
export { CompactReader, CompactWriter, decodeUtf8, varintSize } from './protocol/compact.js';
export {
  civilFromDays,
  daysFromCivil,
  formatInterval,
  formatTimestampMicros,
  INFINITY_MICROS,
  type IntervalParts,
  NEG_INFINITY_MICROS,
  parseInterval,
  parseTimestampMicros,
  parseTimestampMs,
} from './protocol/datetime.js';
export { headers } from './protocol/headers.js';
export { arrayElementOid, builtinTypeName, Oid } from './protocol/oids.js';
export { codeForSqlstate, retryableSqlstate } from './protocol/sqlstate.js';
export { registeredTracerProvider } from './telemetry/otel-global.js';
export { formatTraceparent, parseTraceparent, traceparentHeader } from './telemetry/traceparent.js';
export { sqlOperationName } from './telemetry/tracing-interceptor.js';
export { effectFunctions } from './sql-classify.js';
export { paramToText } from './protocol/param-text.js';
export { databaseErrorOf, type PgErrorLike } from './protocol/database-error.js';
