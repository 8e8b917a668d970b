/**
 * Every value of {@link HeliosDBError.code}, as one union type. Browser-safe.
 * @packageDocumentation
 */
import type { ErrorReason } from '../../gen/heliosdb/v1/error_pb.js';

/** Codes of errors the client finds itself (connections, configuration, its own API's misuse). */
export type ClientErrorCode =
  | 'HELIOSDB_ERROR'
  | 'RETRYABLE'
  | 'INVALID_CONFIG'
  | 'INVALID_PARAMETER'
  | 'DECODE_ERROR'
  | 'PROTOCOL_ERROR'
  | 'CLIENT_CLOSED'
  | 'CONNECTION_ERROR'
  | 'CONNECTION_FAILED'
  | 'CONNECT_TIMEOUT'
  | 'ACQUISITION_TIMEOUT'
  | 'CIRCUIT_OPEN'
  | 'TLS_ERROR'
  | 'WRONG_PROTOCOL'
  | 'TIMEOUT'
  | 'CANCELLED'
  | 'AUTHENTICATION_FAILED'
  | 'OAUTH_TOKEN_REFUSED'
  | 'OAUTH_TOKEN_UNAVAILABLE'
  | 'PERMISSION_DENIED'
  | 'UNSUPPORTED_IN_BROWSER'
  | 'TRANSACTION_FINISHED'
  | 'SAVEPOINT_RELEASED'
  | 'STATEMENT_CLOSED'
  | 'CURSOR_CLOSED'
  | 'STREAM_CONSUMED'
  | 'ROW_COUNT_MISMATCH'
  | 'AMBIGUOUS_RESULT'
  | 'INT8_PRECISION_LOSS'
  | 'NOT_APPLIED';

/** Codes of database errors, by SQLSTATE class (the SQLSTATE itself is `err.sqlstate`). */
export type DatabaseErrorCode =
  | 'QUERY_ERROR'
  | 'CONSTRAINT_VIOLATION'
  | 'UNIQUE_VIOLATION'
  | 'FOREIGN_KEY_VIOLATION'
  | 'NOT_NULL_VIOLATION'
  | 'CHECK_VIOLATION'
  | 'SERIALIZATION_FAILURE'
  | 'DEADLOCK_DETECTED'
  | 'TRANSACTION_ABORTED';

/** The name of a server's ErrorReason (`TRANSACTION_EXPIRED`); `REASON_<n>` for one newer than this client. */
export type ErrorReasonName = Exclude<keyof typeof ErrorReason, 'UNSPECIFIED'> | `REASON_${number}`;

/** A gRPC status name, for server errors with neither a SQLSTATE nor a reason (`RESOURCE_EXHAUSTED`). */
export type GrpcStatusName =
  | 'CANCELLED'
  | 'UNKNOWN'
  | 'INVALID_ARGUMENT'
  | 'DEADLINE_EXCEEDED'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'PERMISSION_DENIED'
  | 'RESOURCE_EXHAUSTED'
  | 'FAILED_PRECONDITION'
  | 'ABORTED'
  | 'OUT_OF_RANGE'
  | 'UNIMPLEMENTED'
  | 'INTERNAL'
  | 'UNAVAILABLE'
  | 'DATA_LOSS'
  | 'UNAUTHENTICATED';

/** Every value of `HeliosDBError.code`: switch on it, the compiler knows them all. */
export type HeliosDBErrorCode = ClientErrorCode | DatabaseErrorCode | ErrorReasonName | GrpcStatusName;
