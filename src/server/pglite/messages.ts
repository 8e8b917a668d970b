/**
 * The messages between the main thread and the embedded engine's worker thread. The worker runs
 * them one at a time, in the order they were posted; its answers come back in the same order.
 * @packageDocumentation
 */

/** What the worker is started with (its `workerData`). */
export interface WorkerInit {
  /** PGlite data directory; undefined for an in-memory database. */
  dataDir: string | undefined;
}

/** The fields of a PostgreSQL error, as they cross the thread boundary. */
export interface PgErrorFields {
  message: string;
  severity?: string;
  code?: string;
  detail?: string;
  hint?: string;
  position?: string;
  internalPosition?: string;
  internalQuery?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  file?: string;
  line?: string;
  routine?: string;
}

/** Main thread to worker. `conn` numbers a connection (a session between open and close). */
export type ToWorker =
  /** Start of a connection: apply the client's start-up settings, report parameters. */
  | { t: 'open'; conn: number; settings: [string, string][] }
  /** One or more whole frontend protocol messages. */
  | { t: 'proto'; conn: number; data: Uint8Array }
  /** End of a connection: end any open exchange, roll back, reset the session. */
  | { t: 'close'; conn: number }
  /**
   * Clear the session (`sql`, the backend's reset script) before whatever is posted next: no
   * answer, so a call's clean-up costs the main thread no round trip.
   */
  | {
      t: 'reset';
      sql: string;
      /**
       * Channels the server itself listens on in the session: after `sql`, any of them the session
       * no longer listens on (a caller's `UNLISTEN`, also from a function or `DO` block) is listened
       * on again and reported with `relistened`.
       */
      listen?: string[];
    }
  /** Run `COPY ... FROM '/dev/blob'` with `data` as the blob. */
  | { t: 'copyFrom'; id: number; sql: string; data: Uint8Array }
  /** Close the database and exit. */
  | { t: 'shutdown' }
  /** Test hook: end the worker abruptly, by process.exit or by PGlite's own exit. */
  | { t: 'crash'; how: 'exit' | 'copy-from-stdin' };

/** Worker to main thread. */
export type FromWorker =
  | { t: 'ready'; version: string }
  | { t: 'startFailed'; error: PgErrorFields }
  | { t: 'opened'; conn: number; params: [string, string][]; error?: undefined }
  | { t: 'opened'; conn: number; error: PgErrorFields; params?: undefined }
  /** Raw backend protocol bytes for connection `conn`. */
  | { t: 'data'; conn: number; data: Uint8Array }
  | { t: 'copied'; id: number; rowCount: number; txStatus: string; error?: undefined }
  | { t: 'copied'; id: number; error: PgErrorFields; txStatus: string; rowCount?: undefined }
  /** After a `reset`: these of its `listen` channels had been dropped and are listened on again. */
  | { t: 'relistened'; channels: string[] };

/** The parameters PostgreSQL reports to a client at start-up (GUC_REPORT), in its order. */
export const reportedParameters = [
  'application_name',
  'client_encoding',
  'DateStyle',
  'default_transaction_read_only',
  'in_hot_standby',
  'integer_datetimes',
  'IntervalStyle',
  'is_superuser',
  'scram_iterations',
  'server_encoding',
  'server_version',
  'session_authorization',
  'standard_conforming_strings',
  'TimeZone',
] as const;
