/**
 * The HeliosDB client, written once against Connect's Transport: each entry point (Node, browser)
 * supplies the transport and the pool. Browser-safe.
 * @packageDocumentation
 */
import { type Client as RpcClient, createClient as createRpcClient } from '@connectrpc/connect';
import { HealthCheckResponse_ServingStatus, Health } from '../../gen/grpc/health/v1/health_pb.js';
import { DatabaseService } from '../../gen/heliosdb/v1/database_pb.js';
import {
  type BatchOptions,
  type BatchResult,
  type BatchStatementInput,
  chunksOf,
  emptyExecuteManyResult,
  type ExecuteManyOptions,
  type ExecuteManyResult,
  executeChunks,
} from './batch.js';
import { readsParameterColumns } from './parameter-columns.js';
import { ClientCounters, type ClientStats } from './client-stats.js';
import { ClientEvents } from './telemetry/client-events.js';
import { observeClient } from './telemetry/client-meter.js';
import { principalKey } from './cache/cache-key.js';
import { cachedQuery, cacheTtlOf } from './cache/cached-query.js';
import { invalidatingTransport } from './cache/cache-transport.js';
import { QueryCache, queryCacheDefaults } from './cache/query-cache.js';
import { relationNames } from './cache/sql-tables.js';
import type { CopyResult, CopySource, CopyToStream } from './copy.js';
import { type CopyFromOptions, type CopyToOptions, copyFrom, copyTo } from './copy-calls.js';
import { type ListenOptions, Listener, type Notification } from './listener.js';
import { ReservedSession } from './reserved-session.js';
import type { ResolvedConnectionConfig } from './config.js';
import { toHeliosError } from './errors.js';
import { isolationLevelToProto } from './isolation-level.js';
import type { QueryMetrics } from './metrics.js';
import type { PoolHandle } from './pool-stats.js';
import type { PreparedStatement } from './prepared-statement.js';
import { QueryRunner } from './query-runner.js';
import type { Queryable } from './queryable.js';
import type { ResultStream, StreamOptions } from './result-stream.js';
import { sqlTemplate } from './sql-template.js';
import { type BeginOptions, Transaction, type TransactionOptions } from './transaction.js';
import { runTransaction, type TransactionRetryOptions } from './transaction-retry.js';
import type { ClientParts } from './transport/client-parts.js';
import type { CallOptions, ExecuteResult, QueryOptions, QueryResult } from './types.js';

/** Options of `client.transaction(fn, options)`: the transaction's settings and its retry policy. */
export interface TransactionRunOptions extends TransactionOptions, TransactionRetryOptions {}

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
export class BaseClient implements Queryable {
  /** The options in force. */
  readonly config: ResolvedConnectionConfig;
  /** Pool statistics: `client.pool.getStats()`. */
  readonly pool: PoolHandle;
  /** Latency percentiles and counters by operation: `client.metrics.snapshot()`. */
  readonly metrics: QueryMetrics;
  /**
   * Typed events: `connectionOpened`, `connectionClosed`, `acquisitionTimeout`, `retry`,
   * `circuitStateChange` (each event's fields: `ClientEventMap`).
   * @example client.events.on('retry', (e) => log.warn(`${e.method}: attempt ${e.attempt} in ${e.delayMs} ms`));
   */
  readonly events: ClientEvents;
  /** The generated DatabaseService client on this client's transport (for advanced use). */
  readonly rpc: RpcClient<typeof DatabaseService>;
  /** @internal Runs the calls; subclasses and transports only. */
  protected readonly runner: QueryRunner;
  private readonly health: RpcClient<typeof Health>;
  private readonly parts: ClientParts;
  private readonly counters = new ClientCounters();
  private readonly cache: QueryCache | undefined;
  private readonly cachePrincipal: string;
  private readonly stopObserving: () => void;
  private readonly open = new Set<Transaction>();
  private readonly reserved = new Set<ReservedSession>();
  private readonly listeners = new Set<Listener>();
  private closed = false;

  constructor(config: ResolvedConnectionConfig, parts: ClientParts) {
    this.config = config;
    this.parts = parts;
    this.pool = parts.pool;
    this.metrics = parts.metrics;
    this.events = parts.events ?? new ClientEvents();
    this.cache = config.queryCache === false ? undefined : new QueryCache({ ...queryCacheDefaults, ...config.queryCache });
    this.cachePrincipal = principalKey(config);
    this.rpc = createRpcClient(DatabaseService, this.cache ? invalidatingTransport(parts.transport, this.cache) : parts.transport);
    this.health = createRpcClient(Health, parts.transport);
    this.stopObserving = observeClient({ poolName: config.url, pool: this.pool, stats: () => this.stats(), events: this.events });
    this.runner = new QueryRunner(this.rpc, config, '', undefined, { onStream: this.onStream, noRequestStreams: parts.noRequestStreams });
  }

  private readonly onStream = (delta: 1 | -1): void => {
    this.counters.openStreams += delta;
  };

  /**
   * Runs a statement and returns its rows. Parameters are `$1`, `$2`, ...
   * @example const { rows } = await client.query<{ id: number }>('SELECT id FROM users WHERE name = $1', ['ada']);
   */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: QueryOptions): Promise<QueryResult<T>> {
    const ttlMs = this.cache ? cacheTtlOf(this.cache, sql, options) : 0;
    if (ttlMs > 0) return cachedQuery<T>(this.cache!, this.cachePrincipal, this.runner, sql, params, options, ttlMs);
    return this.runner.query<T>(sql, params, options);
  }

  /**
   * Drops cached query results: those that read any of `tables` (names as in SQL: unquoted in
   * any case, without their schema), or all of them. For writes the client cannot see (other
   * clients, other applications), e.g. when a LISTEN notification says a table changed.
   */
  clearQueryCache(tables?: readonly string[]): void {
    if (tables === undefined) this.cache?.clear();
    else this.cache?.changed(relationNames(tables));
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

  /**
   * Streams a query's rows with bounded memory (StreamQuery): an async iterable of rows, with
   * `.batches()`, `.fields` and, after the end, `.stats`. Leaving the loop early cancels the query
   * on the server. See {@link ResultStream}.
   * @example
   * ```ts
   * for await (const row of client.stream<{ id: number }>('SELECT id FROM big_table')) process(row);
   * ```
   */
  stream<T = Record<string, unknown>>(sql: string, params?: readonly unknown[], options?: StreamOptions): ResultStream<T> {
    return this.runner.stream<T>(sql, params, options);
  }

  /**
   * Prepares a statement once for many executions (see {@link PreparedStatement}); it stays valid
   * on any server and across server restarts.
   */
  prepare<T = Record<string, unknown>>(sql: string, options?: CallOptions): Promise<PreparedStatement<T>> {
    return this.runner.prepare<T>(sql, options);
  }

  /**
   * Runs several statements in one round trip. Atomic by default (`atomic: true`): all apply or
   * none does, and a failure rejects with a `QueryError` whose `statementIndex` names the failing
   * statement. With `atomic: false` each statement runs on its own and `results` holds each
   * outcome (`ok`, `result` or `error`).
   * @example
   * ```ts
   * await client.batch([
   *   { sql: 'INSERT INTO a VALUES ($1)', params: [1] },
   *   { sql: 'UPDATE b SET n = n + 1' },
   * ]);
   * ```
   */
  batch<T = Record<string, unknown>>(statements: readonly BatchStatementInput[], options?: BatchOptions): Promise<BatchResult<T>> {
    if (statements.length === 0) return Promise.resolve({ results: [], rowCount: 0, failed: 0, executionTimeMs: 0, roundTripMs: 0 });
    return this.runner.batch<T>(statements, options);
  }

  /**
   * Runs one statement once per parameter set (bulk insert / update), in as few round trips as the
   * message size limit allows: the work is split into chunks of about `maxChunkBytes` (default
   * 4 MiB). Atomic by default: when there are several chunks they run in one transaction (re-run
   * on serialization failures and deadlocks like `transaction()`).
   * @example
   * ```ts
   * await client.executeMany('INSERT INTO points (x, y) VALUES ($1, $2)', points.map((p) => [p.x, p.y]));
   * ```
   */
  async executeMany<T = Record<string, unknown>>(
    sql: string,
    paramSets: readonly (readonly unknown[])[],
    options?: ExecuteManyOptions,
  ): Promise<ExecuteManyResult<T>> {
    const chunks = chunksOf(paramSets, options, readsParameterColumns(this.config));
    const first = chunks.next();
    if (first.done) return emptyExecuteManyResult<T>();
    const single = first.value.count === paramSets.length;
    if (!(options?.atomic ?? true) || single) {
      const rest = chunks;
      const all = (function* () {
        yield first.value;
        for (let r = rest.next(); !r.done; r = rest.next()) yield r.value;
      })();
      return executeChunks<T>(this.runner, sql, paramSets, options, all);
    }
    return this.transaction((tx) => tx.executeMany<T>(sql, paramSets, options));
  }

  /**
   * Runs `COPY ... FROM STDIN` with `source` as its data (bytes or text, all at once or as any
   * sync or async iterable of chunks, a Node Readable, a web ReadableStream), streamed with
   * backpressure; resolves to `{ rowCount }`. In auto-commit it is a keyed write: when its answer
   * is lost, the key settles whether it was applied, without sending the data again. Not in
   * browsers, which cannot send a streaming request (`UNSUPPORTED_IN_BROWSER`).
   * @example
   * ```ts
   * await client.copyFrom('COPY points (x, y) FROM STDIN (FORMAT csv)', '1,2\n3,4\n');
   * await client.copyFrom('COPY events FROM STDIN', fs.createReadStream('events.tsv'));
   * ```
   */
  copyFrom(sql: string, source: CopySource, options?: CopyFromOptions): Promise<CopyResult> {
    return copyFrom(this.runner, sql, source, options);
  }

  /**
   * Runs `COPY ... TO STDOUT`: an async iterable of its data's chunks as PostgreSQL sends them,
   * with backpressure; leaving the loop early cancels the COPY; `.result` has the row count once
   * read to the end. COPY TO is a read: it runs in a READ ONLY transaction.
   * @example
   * ```ts
   * for await (const chunk of client.copyTo('COPY points TO STDOUT (FORMAT csv)')) out.write(chunk);
   * ```
   */
  copyTo(sql: string, options?: CopyToOptions): CopyToStream {
    return copyTo(this.runner, sql, options);
  }

  /**
   * Listens on a channel (or several): `onNotification` gets every NOTIFY sent to them, from any
   * session, until `listener.unlisten()`. When the listener's connection breaks it listens again
   * and calls `onNotification` with `missed: true`: notifications sent meanwhile may be lost.
   * Channel names are taken as written (LISTEN's identifier rules without quotes do not apply:
   * `'Orders'` is the channel `Orders`). `LISTEN` in SQL text is refused: it has no stream to
   * deliver on.
   * @example
   * ```ts
   * const listener = await client.listen('orders', (n) => console.log(n.channel, n.payload));
   * await client.execute("SELECT pg_notify('orders', 'new')");
   * await listener.unlisten();
   * ```
   */
  async listen(
    channel: string | readonly string[],
    onNotification: (n: Notification) => void,
    options: ListenOptions = {},
  ): Promise<Listener> {
    const channels = typeof channel === 'string' ? [channel] : [...channel];
    const listener = new Listener(channels);
    try {
      await listener.start(this.rpc, this.runner.callOptions({}), onNotification, options);
    } catch (e) {
      throw toHeliosError(e);
    }
    this.listeners.add(listener);
    return listener;
  }

  /**
   * Reserves one database connection until `release()` (see {@link ReservedSession}): its
   * statements keep session state (`SET`, temporary tables, prepared statements, advisory locks,
   * `BEGIN ... COMMIT` in SQL text) from one call to the next, which no other call does.
   * @example
   * ```ts
   * await using s = await client.reserve();
   * await s.execute("SET search_path = reporting");
   * await s.query('SELECT * FROM daily'); // reporting.daily
   * ```
   */
  async reserve(options: CallOptions = {}): Promise<ReservedSession> {
    const pin = this.parts.pin?.();
    let res;
    try {
      res = await this.rpc.reserveSession({}, { ...this.runner.callOptions(options), contextValues: pin?.contextValues });
    } catch (e) {
      pin?.release();
      throw toHeliosError(e);
    }
    const session = new ReservedSession({
      rpc: this.rpc,
      config: this.config,
      id: res.sessionId,
      idleTimeoutMs: res.idleTimeoutMs,
      pin,
      onStream: this.onStream,
      noRequestStreams: this.parts.noRequestStreams,
      onEnd: (s) => this.reserved.delete(s),
    });
    this.reserved.add(session);
    return session;
  }

  /**
   * Begins an interactive transaction (see {@link Transaction}). End it with `commit()` or
   * `rollback()`, or declare it with `await using` so that leaving the scope rolls it back.
   * Prefer {@link transaction}, which also retries serialization failures.
   * @example
   * ```ts
   * await using tx = await client.begin({ isolationLevel: IsolationLevel.Serializable });
   * await tx.execute('UPDATE accounts SET balance = balance - $1 WHERE id = $2', [100, 1]);
   * await tx.commit();
   * ```
   */
  async begin(options: BeginOptions = {}): Promise<Transaction> {
    const isolationLevel = isolationLevelToProto(options.isolationLevel);
    const pin = this.parts.pin?.();
    const t0 = performance.now();
    let res;
    try {
      res = await this.rpc.beginTransaction(
        { isolationLevel, readOnly: options.readOnly ?? false, deferrable: options.deferrable ?? false },
        { ...this.runner.callOptions(options), contextValues: pin?.contextValues },
      );
    } catch (e) {
      pin?.release();
      throw this.runner.fail('begin', 'BEGIN', undefined, t0, e);
    }
    this.runner.emit('begin', 'BEGIN', undefined, t0, 0);
    const tx = new Transaction({
      rpc: this.rpc,
      config: this.config,
      id: res.transactionId,
      idleTimeoutMs: res.idleTimeoutMs,
      options: { isolationLevel: options.isolationLevel, readOnly: options.readOnly, deferrable: options.deferrable },
      pin,
      onStream: this.onStream,
      noRequestStreams: this.parts.noRequestStreams,
      onEnd: (t, state) => {
        this.open.delete(t);
        this.counters.openTransactions--;
        if (state === 'committed') this.counters.transactionsCommitted++;
        else if (state !== 'failed') this.counters.transactionsRolledBack++;
      },
    });
    this.open.add(tx);
    this.counters.openTransactions++;
    this.counters.transactionsBegun++;
    return tx;
  }

  /**
   * Runs `fn` in a transaction: commits when it resolves (unless it ended the transaction
   * itself), rolls back when it throws, and returns what it returned.
   *
   * **Retries re-run the whole callback.** When the transaction fails with a serialization
   * failure (40001) or a deadlock (40P01), it is rolled back and `fn` runs again from the start in
   * a new transaction, up to `maxRetries` times (default `3`), after an exponential backoff with
   * jitter (`retryBaseDelayMs` 20, doubling, at most `retryMaxDelayMs` 1000). Everything `fn` does
   * besides its statements (HTTP calls, e-mails, counters, pushes onto outside arrays) happens
   * again on each attempt: keep `fn` free of side effects, or make them idempotent. Pass
   * `maxRetries: 0` to disable retrying. Retries are counted in `client.stats().transactionRetries`.
   *
   * @example
   * ```ts
   * await client.transaction(async (tx) => {
   *   await tx.execute('UPDATE accounts SET balance = balance - $1 WHERE id = $2', [100, 1]);
   *   await tx.execute('UPDATE accounts SET balance = balance + $1 WHERE id = $2', [100, 2]);
   * }, { isolationLevel: IsolationLevel.Serializable });
   * ```
   */
  transaction<R>(fn: (tx: Transaction) => Promise<R> | R, options: TransactionRunOptions = {}): Promise<R> {
    return runTransaction(
      () => this.begin(options),
      fn,
      options,
      () => this.counters.transactionRetries++,
    );
  }

  /** Transaction and stream counters of this client (see {@link ClientStats}). */
  stats(): ClientStats {
    return this.counters.snapshot(this.cache?.stats());
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

  /**
   * Rolls back the transactions still open, releases reserved sessions, stops listeners, drains
   * in-flight calls and closes every connection. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopObserving();
    await Promise.allSettled([
      ...[...this.open].map((tx) => tx.rollback({ timeoutMs: 5000 })),
      ...[...this.reserved].map((s) => s.release({ timeoutMs: 5000 })),
      ...[...this.listeners].map((l) => l.unlisten()),
    ]);
    await this.parts.close();
  }

  /** `await using client = createClient(...)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
