/**
 * Public result and option types. Browser-safe.
 * @packageDocumentation
 */

/** A result column. */
export interface Field {
  name: string;
  /** PostgreSQL type name, e.g. `int4`, `timestamptz`, `_text` (text[]). */
  type: string;
  /** PostgreSQL type OID. */
  typeOid: number;
}

/** The result of a query. */
export interface QueryResult<T = Record<string, unknown>> {
  /** Rows as objects keyed by column name, or arrays with `rowMode: 'array'`. */
  rows: T[];
  fields: Field[];
  /** Rows returned (SELECT) or affected (INSERT/UPDATE/DELETE). */
  rowCount: number;
  /** The command tag's verb, e.g. `SELECT`, `INSERT`. */
  command: string;
  /** Time the server spent running the statement, ms. */
  executionTimeMs: number;
  /** Time from sending the request to having the decoded result, ms. */
  roundTripMs: number;
}

/** The result of a statement run for its effect. */
export interface ExecuteResult {
  command: string;
  /** Rows inserted, updated, deleted, ... */
  rowCount: number;
  executionTimeMs: number;
  roundTripMs: number;
}

/** Per-call options. */
export interface CallOptions {
  /** Deadline for this call, ms; it cancels the statement on the server. Default: the client's `timeoutMs`. */
  timeoutMs?: number;
  /** Aborting cancels the call and the statement on the server (rejects with CancelledError). Default none. */
  signal?: AbortSignal;
}

/** Options of `query`. */
export interface QueryOptions extends CallOptions {
  /** Default: the client's `rowMode` (`'object'`). */
  rowMode?: 'object' | 'array';
  /** Fail if the result has more rows than this. Default: the server's unary row limit. */
  maxRows?: number;
  /**
   * The query cache for this call (`client.query` outside transactions; see docs/query-cache.md):
   * `{ ttlMs }` caches a read's result that long, `true` uses the client's `queryCache.ttlMs`,
   * `false` neither serves nor stores it. Default: the client's `queryCache.ttlMs` (`0`: not cached).
   */
  cache?: { ttlMs: number } | boolean;
}

/** Parameter values accepted by queries (see the README's type mapping). */
export type Param =
  | null
  | undefined
  | boolean
  | number
  | bigint
  | string
  | Date
  | Uint8Array
  | ArrayBuffer
  | readonly Param[]
  | { readonly [key: string]: unknown };
