/**
 * The request and response header names of HeliosDB's protocol, for the client and the server.
 * Browser-safe.
 * @packageDocumentation
 */

/** Header names (lower case, as HTTP/2 sends them). */
export const headers = {
  /** Sets PostgreSQL's application_name for the statements of the request. */
  applicationName: 'x-heliosdb-application-name',
  /** Credentials: `Bearer <API key, session token or OAuth access token>`. */
  authorization: 'authorization',
  /** The server's advice when to try again (seconds, or an HTTP date). */
  retryAfter: 'retry-after',
  /** gRPC's per-call timeout (`<n><unit>`). */
  grpcTimeout: 'grpc-timeout',
  /** Connect's per-call timeout, in milliseconds. */
  connectTimeout: 'connect-timeout-ms',
} as const;
