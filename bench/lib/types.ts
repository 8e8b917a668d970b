/**
 * Shapes shared by the benchmark orchestrator (bench/run.ts) and its child processes.
 * @packageDocumentation
 */

/**
 * What a cell measures. `simple` is `SELECT $1::int` (no table); `point` reads one row of a small
 * keyspace table by its primary key, `insert` upserts one row into another (prepared statements,
 * closed loop like `simple`), so that the CQL stack and the SQL stacks run the same statements on
 * the same tables (./kv.ts).
 */
export type Operation = 'simple' | 'batch' | 'stream' | 'pool-queries' | 'pool-streams' | 'point' | 'insert';

/**
 * A client stack: how the benchmark reaches the database.
 * - `sdk-grpc`: `@heliosdb/client` over native gRPC (the pooled grpc-js transport)
 * - `sdk-connect`: `@heliosdb/client` over Connect on the HTTP listener (when the client supports `http://`)
 * - `sdk-session`: `@heliosdb/client` over native gRPC with `sessions: true` (operations multiplexed over one SessionService stream per connection)
 * - `sdk-values`: `client.execute` with a multi-row VALUES statement (batch insert only)
 * - `raw`: a bare `@grpc/grpc-js` client with protobuf-es codecs of the generated schemas: the floor
 * - `sdk-grpc-traced`: `sdk-grpc` with an OpenTelemetry tracer provider registered in the client process (a span recorded per call)
 * - `sdk-pg`: `@heliosdb/client` over `postgres://` (the PostgreSQL wire protocol, node-postgres underneath)
 * - `pg`: node-postgres
 * - `postgres.js`: postgres.js
 * - `cql`: cassandra-driver on the server's CQL port
 *
 * `sdk-pg`, `pg` and `postgres.js` go straight to PostgreSQL on the `direct` backend, and through
 * the HeliosDB server's PostgreSQL wire-protocol port (`--pg-port`) on the others.
 */
export type DriverName =
  | 'sdk-grpc'
  | 'sdk-grpc-traced'
  | 'sdk-session'
  | 'sdk-connect'
  | 'sdk-values'
  | 'sdk-pg'
  | 'raw'
  | 'pg'
  | 'postgres.js'
  | 'cql';

/** Which HeliosDB server a cell talks to (none for the direct PostgreSQL drivers). */
export type Backend = 'postgresql' | 'pglite';

/** Sizes of one run (quick or full). */
export interface Sizes {
  /** Measured time of one simple-query cell, ms. */
  simpleMs: number;
  /** Warm-up before measuring, ms. */
  warmupMs: number;
  /** Concurrency levels of the simple query. */
  concurrency: number[];
  /** Rows of the batch insert. */
  batchRows: number;
  /** Rows per INSERT statement / ExecuteBatch call (the SDK's executeMany chunks by itself). */
  batchChunk: number;
  /** Rows of the streamed result. */
  streamRows: number;
  /** Queries in flight at once in the pool test. */
  poolQueries: number;
  /** Streams open at once in the pool test. */
  poolStreams: number;
  /** Rows each of those streams reads. */
  poolStreamRows: number;
}

/** Where a cell connects. */
export interface Targets {
  /** `grpc://host:port` of the HeliosDB server for this cell's backend. */
  grpcUrl?: string;
  /** `http://host:port` of its HTTP listener. */
  httpUrl?: string;
  /** PostgreSQL URL (direct drivers, and table setup). */
  postgresUrl?: string;
  /** `postgres://` URL of the server's PostgreSQL wire-protocol port (user and database set). */
  pgPortUrl?: string;
  /** `host:port` of the server's CQL port. */
  cqlAddress?: string;
}

/** What the orchestrator asks a cell process to do: one stack, one or more operations in turn. */
export interface CellSpec {
  driver: DriverName;
  backend: Backend | 'direct';
  ops: Operation[];
  sizes: Sizes;
  targets: Targets;
  /** Pool size for the direct drivers (the HeliosDB server's own pool size). */
  poolSize: number;
}

/** CPU and memory of one process over one measured phase. */
export interface ProcessUsage {
  /** User + system CPU time, ms. */
  cpuMs: number;
  /** Peak resident set size during the phase, bytes. */
  peakRssBytes: number;
  /** Resident set size when the phase began, bytes. */
  startRssBytes?: number;
  /** read- and write-family system calls during the phase (Linux only). */
  readCalls?: number;
  writeCalls?: number;
}

/** One measured phase of a cell (a simple-query cell has one per concurrency level). */
export interface PhaseResult {
  /** e.g. `c1`, `c64`, `insert`, `stream`. */
  phase: string;
  elapsedMs: number;
  /** Operations completed (queries, rows inserted, rows streamed, calls). */
  completed: number;
  failed: number;
  /** Bytes of row payload moved (stream). */
  bytes?: number;
  /** Latency percentiles, ms (simple query). */
  p50Ms?: number;
  p99Ms?: number;
  client: ProcessUsage;
  /** The HeliosDB server process, when the cell goes through it. */
  server?: ProcessUsage;
  /** First error message, when some operations failed. */
  error?: string;
  notes?: string[];
}

/** Which stack and operation a result is of. */
export interface CellKey {
  driver: DriverName;
  backend: Backend | 'direct';
  op: Operation;
  poolSize: number;
}

/** What a cell process sends back, per operation. */
export interface CellResult {
  spec: CellKey;
  phases: PhaseResult[];
  /** Set when the driver does not support this operation (or a feature is missing). */
  skipped?: string;
  /** Set when the cell broke (an exception, a wrong result). */
  error?: string;
  notes?: string[];
}

/** Messages between processes. */
export type IpcMessage =
  | { type: 'request'; id: number; method: string; args?: unknown }
  | { type: 'response'; id: number; value?: unknown; error?: string }
  | { type: 'event'; name: string; value?: unknown };

/** One row of the batch insert: id int, name text, score float8, created timestamptz. */
export type BenchRow = [id: number, name: string, score: number, created: Date];

/** Notes by kind of work. */
export type DriverNotes = Partial<Record<'all' | 'simple' | 'batch' | 'stream' | 'point' | 'insert', string>>;

/** What every stack offers; an operation a stack lacks is left undefined. */
export interface BenchDriver {
  /** `SELECT $1::int` with `i`; rejects when the answer is wrong. */
  simple?(i: number): Promise<void>;
  /** Inserts one chunk of rows into the batch insert's table (./drivers.ts). */
  insert?(rows: BenchRow[]): Promise<void>;
  /** Inserts all rows in one call, when the stack chunks by itself (the SDK's executeMany). */
  insertAll?(rows: BenchRow[]): Promise<void>;
  /** Reads a whole result; resolves to the number of rows seen. */
  stream?(sql: string): Promise<number>;
  /** The point query of the `i`-th key of ./kv.ts's point table; rejects when the value is wrong. */
  point?(i: number): Promise<void>;
  /** Upserts key `key` into ./kv.ts's insert table. */
  insertOne?(key: number): Promise<void>;
  /** How this stack runs each kind of work (`all` applies to every operation). */
  readonly notes: DriverNotes;
  close(): Promise<void>;
}
