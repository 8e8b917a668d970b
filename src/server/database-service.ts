/**
 * The DatabaseService implementation: one set of handlers served by both listeners.
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import type { Logger } from 'pino';
import {
  type BatchResult,
  BatchResultSchema,
  CommitRequestSchema,
  CommitResponseSchema,
  type DatabaseService,
  ExecuteBatchRequestSchema,
  ExecuteBatchResponseSchema,
  ExecutePreparedRequestSchema,
  ExecutePreparedResponseSchema,
  ExecuteRequestSchema,
  ExecuteResponseSchema,
  IsolationLevel,
  QueryRequestSchema,
  QueryResponseSchema,
  type StreamQueryResponse,
  StreamQueryResponseSchema,
} from '../../gen/heliosdb/v1/database_pb.js';
import { ErrorDetailSchema } from '../../gen/heliosdb/v1/error_pb.js';
import { ResultSetSchema, RowFormat, type Value } from '../../gen/heliosdb/v1/value_pb.js';
import { authReasons } from './auth/authenticator.js';
import { ownerKeyOf, type Principal, principalOf } from './auth/principal.js';
import { applyPrincipal, beforeStatement, clearGuard, readOnlyGuardOf } from './auth/role-guard.js';
import type { Backend, BackendConnection } from './backend.js';
import type { DescMessage, Message } from '@bufbuild/protobuf';
import { abortError, applicationNameHeader, type CallContext } from './call-context.js';
import { reasons, serverError, toConnectError } from './errors.js';
import { Idempotency, type KeyedCall } from './idempotency.js';
import type { ResolvedServerOptions } from './options.js';
import { PgCloseStatement } from './pg-close-statement.js';
import { type CommandSink, PgCommand } from './pg-command.js';
import { PgPipeline, type PipelineOutcome, type PipelineStatement } from './pg-pipeline.js';
import { columnsOf, parseCommandTag, ResultCollector, RowEncoder } from './result-encoder.js';
import type { SessionManager } from './sessions.js';
import type { TypeNames } from './type-names.js';
import { paramToText } from './values.js';
import { VERSION } from './version.js';

/** What the service runs on. */
export interface ServiceDeps {
  backend: Backend;
  sessions: SessionManager;
  options: ResolvedServerOptions;
  typeNames: TypeNames;
  engineVersion: string;
  log: Logger;
}

const isolationSql: Record<IsolationLevel, string> = {
  [IsolationLevel.UNSPECIFIED]: '',
  [IsolationLevel.READ_UNCOMMITTED]: ' ISOLATION LEVEL READ UNCOMMITTED',
  [IsolationLevel.READ_COMMITTED]: ' ISOLATION LEVEL READ COMMITTED',
  [IsolationLevel.REPEATABLE_READ]: ' ISOLATION LEVEL REPEATABLE READ',
  [IsolationLevel.SERIALIZABLE]: ' ISOLATION LEVEL SERIALIZABLE',
};

const savepointName = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const batchSavepoint = 'heliosdb_batch';

/** Discards rows, keeps the command tag. */
class CountingSink implements CommandSink {
  command = '';
  rowsAffected = 0n;
  onFields(): void {}
  onRow(): void {}
  onComplete(tag: string): void {
    const t = parseCommandTag(tag);
    this.command = t.command;
    this.rowsAffected += t.rowsAffected;
  }
}

function isBrokenConnection(e: unknown): boolean {
  if (!e || typeof e !== 'object') return true;
  const sev = (e as { severity?: string }).severity;
  if (sev === undefined) return !(e instanceof ConnectError);
  return sev === 'FATAL' || sev === 'PANIC';
}

/** Whether `e` says a prepared statement's cached plan no longer matches its tables (0A000 after DDL). */
function isStalePlan(e: unknown): boolean {
  if (!(e instanceof ConnectError)) return false;
  const [detail] = e.findDetails(ErrorDetailSchema);
  return detail?.sqlstate === '0A000' && /cached plan must not change result type/.test(detail.message);
}

/**
 * A database connection that broke while an auto-commit statement ran without an idempotency key:
 * whether it was applied is unknown, so the error says so and is not marked safe to resend
 * (with a key, or inside a transaction session, the usual error stands).
 */
function connectionLost(e: unknown): ConnectError | undefined {
  if (!e || typeof e !== 'object' || 'severity' in e || e instanceof ConnectError) return undefined;
  const message = (e as { message?: string }).message ?? String(e);
  // pg refuses to send on a connection it already knows is dead: nothing ran.
  if (/not queryable/i.test(message)) return undefined;
  return serverError(Code.Unavailable, `the database connection was lost while the statement ran, so it may or may not have been applied: ${message}`, {
    reason: 'BACKEND_CONNECTION_LOST',
    retryable: false,
  });
}

/** The deterministic statement id (and server-side name) of a SQL text. */
export function statementIdOf(sql: string): string {
  return 'hdb_' + createHash('sha256').update(sql).digest('hex').slice(0, 40);
}

/** Builds the service. */
export function createDatabaseService(deps: ServiceDeps): ServiceImpl<typeof DatabaseService> {
  const { backend, sessions, options, typeNames, log } = deps;
  const prepared = new Map<string, string>();
  const idempotency = new Idempotency(backend, options.idempotencyWindowMs, log);

  /**
   * The keyed call of an auto-commit request with an idempotency key (see ./idempotency.ts), if it
   * is one and the server can record keys.
   */
  async function keyedCall(
    req: Message & { idempotencyKey: string; transactionId: string },
    ctx: CallContext,
    method: string,
    requestSchema: DescMessage,
    responseSchema: DescMessage,
  ): Promise<KeyedCall | undefined> {
    const principal = principalOf(ctx);
    if (req.transactionId || !idempotency.applies(req.idempotencyKey, principal)) return undefined;
    if (!(await idempotency.prepare())) return undefined;
    return { key: req.idempotencyKey, principal, method, request: req, requestSchema, responseSchema };
  }
  const maxResultBytes = Math.floor(options.maxMessageBytes * 0.9);
  const batchBytesCap = Math.max(1024, Math.floor(options.maxMessageBytes / 4));

  function params(values: Value[]): (string | null)[] {
    return values.map((v, i) => paramToText(v, i));
  }

  function requireSql(sql: string): void {
    if (!sql.trim()) throw serverError(Code.InvalidArgument, 'sql is empty', { reason: reasons.invalidRequest });
  }

  async function setApplicationName(conn: BackendConnection, ctx: CallContext): Promise<void> {
    const name = ctx.requestHeader.get(applicationNameHeader) ?? 'heliosdb';
    if ((conn.heliosAppName ?? 'heliosdb') === name) return;
    await conn.query({ text: "SELECT set_config('application_name', $1, false)", values: [name.slice(0, 63)] });
    conn.heliosAppName = name;
  }

  /** A read-only principal's write, refused by its READ ONLY transaction, is a permission error. */
  function denyReadOnly(e: unknown, p: Principal): unknown {
    if (!p.readOnly || !(e instanceof ConnectError) || e.findDetails(ErrorDetailSchema)[0]?.sqlstate !== '25006') return e;
    return serverError(Code.PermissionDenied, `${e.rawMessage} (the API key is read-only)`, {
      ...(e.findDetails(ErrorDetailSchema)[0] ?? {}),
      reason: authReasons.readOnly,
    });
  }

  /**
   * Runs `fn` on the transaction's connection, or on a pooled one in auto-commit, as the caller's
   * principal; a `keyed` auto-commit call runs under its idempotency key (./idempotency.ts).
   */
  async function withConn<T>(txId: string, ctx: CallContext, fn: (conn: BackendConnection) => Promise<T>, keyed?: KeyedCall): Promise<T> {
    if (ctx.signal.aborted) throw abortError(ctx.signal);
    const principal = principalOf(ctx);
    if (txId) {
      return sessions.use(txId, (conn) => fn(conn), ownerKeyOf(principal)).catch((e) => {
        throw denyReadOnly(e, principal);
      });
    }
    let conn: BackendConnection;
    try {
      conn = await backend.acquire();
    } catch (e) {
      throw toConnectError(e);
    }
    let destroy = false;
    let leftOpen = false;
    let failed = false;
    let started = false;
    try {
      if (ctx.signal.aborted) throw abortError(ctx.signal);
      await setApplicationName(conn, ctx);
      await applyPrincipal(conn, principal, true);
      started = true;
      const out = keyed ? ((await idempotency.run(conn, ctx.signal, keyed, () => fn(conn))) as T) : await fn(conn);
      return out;
    } catch (e) {
      failed = true;
      if (isBrokenConnection(e) && !ctx.signal.aborted) destroy = true;
      const lost = started && !keyed && !ctx.signal.aborted ? connectionLost(e) : undefined;
      if (lost) throw lost;
      throw denyReadOnly(e instanceof ConnectError ? e : toConnectError(e), principal);
    } finally {
      // A read-only principal's calls run in a READ ONLY block the server opened: not left open by the caller.
      const ownBlock = readOnlyGuardOf(conn) !== undefined;
      clearGuard(conn);
      if (!destroy && conn._txStatus && conn._txStatus !== 'I') {
        leftOpen = !ownBlock;
        try {
          await conn.query('ROLLBACK');
        } catch {
          destroy = true;
        }
      }
      // A cancel sent for this call may still hit whatever runs next on the connection.
      if (conn.heliosCancel) destroy = true;
      backend.release(conn, destroy);
      // A failure already explains itself; the rollback above is then just cleanup.
      if (leftOpen && !failed) {
        // eslint-disable-next-line no-unsafe-finally
        throw serverError(
          Code.FailedPrecondition,
          'the statement left a transaction block open outside a transaction session, so it was rolled back; use BeginTransaction (client.begin / client.transaction) for transactions',
          { reason: reasons.transactionControl },
        );
      }
    }
  }

  /**
   * Submits a command and waits for it, cancelling it in the database if the call aborts. Commands
   * that carry the caller's SQL (not `internal`) of a read-only principal go alone, inside its
   * READ ONLY block (see ./auth/role-guard.ts).
   */
  async function run(conn: BackendConnection, cmd: PgCommand | PgPipeline, ctx: CallContext, internal = false): Promise<void> {
    if (!internal && cmd instanceof PgCommand && (await beforeStatement(conn))) cmd.forceExtended = true;
    const onAbort = () => void backend.cancel(conn);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      conn.query(cmd as never);
      await cmd.done;
    } catch (e) {
      if (ctx.signal.aborted) throw abortError(ctx.signal);
      throw toConnectError(e);
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
    }
  }

  async function runQuery(
    conn: BackendConnection,
    ctx: CallContext,
    text: string,
    values: (string | null)[],
    format: RowFormat,
    maxRows: number,
    name?: string,
  ) {
    const collector = new ResultCollector(format || RowFormat.VALUES, maxRows, maxResultBytes);
    collector.onOverflow = () => void backend.cancel(conn);
    const cmd = new PgCommand({ text, values, name, sink: collector });
    const t0 = performance.now();
    try {
      await run(conn, cmd, ctx);
    } catch (e) {
      // A row-limit failure surfaces as the database's "canceled" error: report the limit.
      if (collector.overflow) collector.onRow([]);
      throw e;
    }
    const ms = performance.now() - t0;
    await typeNames.resolve(conn, collector.fields.map((f) => f.dataTypeID));
    return collector.toResultSet(ms, typeNames.get);
  }

  function unaryRowCap(requested: number): number {
    return requested > 0 ? Math.min(requested, options.maxUnaryRows) : options.maxUnaryRows;
  }

  async function runPipeline(
    conn: BackendConnection,
    ctx: CallContext,
    statements: PipelineStatement[],
    sinkFor: (i: number) => CommandSink | undefined,
  ): Promise<PipelineOutcome[]> {
    if (readOnlyGuardOf(conn)) {
      // A read-only principal's statements one at a time, each checked to start inside its READ
      // ONLY block: a pipeline could end the block (COMMIT) and write in the statements after it.
      const outcomes: PipelineOutcome[] = statements.map(() => ({ ok: false, skipped: true }));
      for (let i = 0; i < statements.length; i++) {
        const s = statements[i];
        try {
          await run(conn, new PgCommand({ text: s.text, values: s.values, sink: sinkFor(i) ?? new CountingSink() }), ctx);
          outcomes[i] = { ok: true };
        } catch (e) {
          if (ctx.signal.aborted) throw e;
          outcomes[i] = { ok: false, error: e };
          break;
        }
      }
      return outcomes;
    }
    const pipeline = new PgPipeline(statements, sinkFor);
    const onAbort = () => void backend.cancel(conn);
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    try {
      conn.query(pipeline as never);
      return await pipeline.done;
    } catch (e) {
      if (ctx.signal.aborted) throw abortError(ctx.signal);
      throw toConnectError(e);
    } finally {
      ctx.signal.removeEventListener('abort', onAbort);
    }
  }

  function failedAt(outcomes: PipelineOutcome[]): number {
    return outcomes.findIndex((o) => !o.ok);
  }

  function outcomeError(o: PipelineOutcome): unknown {
    return 'error' in o ? o.error : new Error('statement skipped');
  }

  function transactionId(id: string): string {
    if (!id) throw serverError(Code.InvalidArgument, 'transaction_id is required', { reason: reasons.invalidRequest });
    return id;
  }

  return {
    async query(req, ctx) {
      requireSql(req.sql);
      const values = params(req.params);
      return withConn(
        req.transactionId,
        ctx,
        async (conn) => ({ result: await runQuery(conn, ctx, req.sql, values, req.rowFormat, unaryRowCap(req.maxRows)) }),
        await keyedCall(req, ctx, 'Query', QueryRequestSchema, QueryResponseSchema),
      );
    },

    async execute(req, ctx) {
      requireSql(req.sql);
      const values = params(req.params);
      return withConn(
        req.transactionId,
        ctx,
        async (conn) => {
          const sink = new CountingSink();
          const t0 = performance.now();
          await run(conn, new PgCommand({ text: req.sql, values, sink }), ctx);
          return { command: sink.command, rowsAffected: sink.rowsAffected, executionTimeMs: performance.now() - t0 };
        },
        await keyedCall(req, ctx, 'Execute', ExecuteRequestSchema, ExecuteResponseSchema),
      );
    },

    async *streamQuery(req, ctx) {
      requireSql(req.sql);
      const values = params(req.params);
      const format = req.rowFormat || RowFormat.VALUES;
      const batchBytes = Math.min(req.batchBytes || 1024 * 1024, batchBytesCap);
      const batchRows = req.batchRows || 10_000;
      const fetchRows = Math.min(batchRows, 2000);
      // The stream holds its connection for its whole life, so run it inside withConn through a
      // queue the generator drains.
      const out: StreamQueryResponse[] = [];
      let wake: (() => void) | undefined;
      let finished = false;
      let failure: unknown;
      let cmd: PgCommand | undefined;
      let suspended = false;
      let consumerGone = false;
      const notify = () => {
        const w = wake;
        wake = undefined;
        w?.();
      };
      const encoder = new RowEncoder(format);
      let headerSent = false;
      let t0 = 0;
      let tag = { command: '', rowsAffected: 0n };
      let rowsSent = 0n;
      let fields: import('pg').FieldDef[] = [];
      const sink: CommandSink = {
        onFields(f) {
          fields = f;
          encoder.setFields(f);
        },
        onRow(cells) {
          rowsSent++;
          const size = encoder.add(cells);
          if (size > batchBytesCap) {
            throw serverError(
              Code.ResourceExhausted,
              `a row of ${size} bytes does not fit in one message (limit ${options.maxMessageBytes} bytes); raise --max-message-bytes`,
              { reason: reasons.rowTooLarge },
            );
          }
          if (encoder.bytes >= batchBytes || encoder.rowCount >= batchRows) {
            out.push(create(StreamQueryResponseSchema, { event: { case: 'rows', value: encoder.take() } }));
            notify();
          }
        },
        onComplete(t) {
          tag = parseCommandTag(t);
          // A portal read in several Executes reports only the last Execute's rows in its tag
          // (SELECT, and INSERT/UPDATE/DELETE ... RETURNING alike): count what was streamed.
          if (fields.length > 0 && /\d$/.test(t)) tag.rowsAffected = rowsSent;
        },
      };
      const done = withConn(req.transactionId, ctx, async (conn) => {
        cmd = new PgCommand({ text: req.sql, values, fetchRows, sink });
        cmd.onSuspended = () => {
          suspended = true;
          notify();
        };
        // A client that leaves while the portal waits for it to read (backpressure) must not hold
        // the connection: close the portal at once, whatever state the generator is in.
        const onAbort = () => {
          consumerGone = true;
          cmd?.close();
        };
        ctx.signal.addEventListener('abort', onAbort, { once: true });
        t0 = performance.now();
        try {
          await run(conn, cmd, ctx);
        } finally {
          ctx.signal.removeEventListener('abort', onAbort);
          if (!consumerGone) await typeNames.resolve(conn, fields.map((f) => f.dataTypeID));
        }
      }).then(
        () => {
          finished = true;
          notify();
        },
        (e) => {
          failure = e;
          finished = true;
          notify();
        },
      );
      try {
        for (;;) {
          if (!headerSent && (fields.length > 0 || out.length > 0 || suspended || finished)) {
            if (finished && failure) throw failure;
            headerSent = true;
            yield create(StreamQueryResponseSchema, {
              event: { case: 'header', value: { columns: columnsOf(fields, typeNames.get) } },
            });
          }
          while (headerSent && out.length > 0) yield out.shift()!;
          if (finished) {
            if (failure) throw failure;
            if (encoder.rowCount > 0) yield create(StreamQueryResponseSchema, { event: { case: 'rows', value: encoder.take() } });
            yield create(StreamQueryResponseSchema, {
              event: {
                case: 'complete',
                value: { command: tag.command, rowsAffected: tag.rowsAffected, executionTimeMs: performance.now() - t0 },
              },
            });
            return;
          }
          if (suspended && headerSent) {
            suspended = false;
            cmd?.resume();
          }
          await new Promise<void>((r) => {
            wake = r;
            if (finished || out.length > 0 || (suspended && headerSent) || (!headerSent && fields.length > 0)) notify();
          });
        }
      } finally {
        if (!finished) {
          // The consumer left early (cancel, deadline, error): close the portal and free the connection.
          consumerGone = true;
          cmd?.close();
        }
        await done;
      }
    },

    async executeBatch(req, ctx) {
      if (req.statements.length > 0 && (req.sql || req.parameterSets.length > 0)) {
        throw serverError(Code.InvalidArgument, 'send either statements or sql with parameter_sets, not both', { reason: reasons.invalidRequest });
      }
      const statements: PipelineStatement[] =
        req.statements.length > 0
          ? req.statements.map((s) => ({ text: s.sql, values: params(s.params) }))
          : req.parameterSets.map((p) => ({ text: req.sql, values: params(p.values) }));
      for (const s of statements) requireSql(s.text);
      const format = req.rowFormat || RowFormat.VALUES;
      const keyed = await keyedCall(req, ctx, 'ExecuteBatch', ExecuteBatchRequestSchema, ExecuteBatchResponseSchema);
      // A keyed auto-commit batch runs inside the transaction that records its key: as in one.
      const inTx = req.transactionId !== '' || keyed !== undefined;
      const t0 = performance.now();
      return withConn(req.transactionId, ctx, async (conn) => {
        const results: BatchResult[] = statements.map(() => create(BatchResultSchema));
        const collectors: (ResultCollector | CountingSink)[] = [];
        const fresh = (i: number) => (collectors[i] = req.returnRows ? new ResultCollector(format, options.maxUnaryRows, maxResultBytes) : new CountingSink());
        const keep = async (i: number, ms: number) => {
          const c = collectors[i];
          if (c instanceof ResultCollector) {
            await typeNames.resolve(conn, c.fields.map((f) => f.dataTypeID));
            results[i].result = c.toResultSet(ms, typeNames.get);
          } else {
            results[i].result = create(ResultSetSchema, { command: c.command, rowsAffected: c.rowsAffected, executionTimeMs: ms });
          }
        };
        const sp: PipelineStatement = { text: `SAVEPOINT ${batchSavepoint}`, values: [] };
        const release: PipelineStatement = { text: `RELEASE SAVEPOINT ${batchSavepoint}`, values: [] };
        const rollbackToSp = () =>
          run(conn, new PgCommand({ text: `ROLLBACK TO SAVEPOINT ${batchSavepoint}; RELEASE SAVEPOINT ${batchSavepoint}`, sink: new CountingSink() }), ctx, true);

        if (req.atomic) {
          const list = inTx ? [sp, ...statements, release] : statements;
          const offset = inTx ? 1 : 0;
          statements.forEach((_, i) => fresh(i));
          const outcomes = await runPipeline(conn, ctx, list, (i) => collectors[i - offset]);
          const f = failedAt(outcomes);
          if (f !== -1) {
            if (inTx) await rollbackToSp();
            const index = Math.min(Math.max(f - offset, 0), statements.length - 1);
            throw toConnectError(outcomeError(outcomes[f]), { statementIndex: index });
          }
          const ms = performance.now() - t0;
          for (let i = 0; i < statements.length; i++) await keep(i, ms / statements.length);
        } else if (inTx) {
          // Each statement inside its own savepoint, so a failure undoes only itself.
          let from = 0;
          while (from < statements.length) {
            const list: PipelineStatement[] = [];
            for (let i = from; i < statements.length; i++) {
              fresh(i);
              list.push(sp, statements[i], release);
            }
            const base = from;
            const outcomes = await runPipeline(conn, ctx, list, (p) => (p % 3 === 1 ? collectors[base + (p - 1) / 3] : undefined));
            const f = failedAt(outcomes);
            const okUntil = f === -1 ? statements.length : base + Math.floor(f / 3);
            for (let i = base; i < okUntil; i++) await keep(i, 0);
            if (f === -1) break;
            await rollbackToSp();
            const failed = base + Math.floor(f / 3);
            const err = toConnectError(outcomeError(outcomes[f]), { statementIndex: failed });
            results[failed].error = err.findDetails(ErrorDetailSchema)[0];
            results[failed].code = err.code;
            from = failed + 1;
          }
        } else {
          // Auto-commit: a pipeline is one implicit transaction, so after a failure the statements
          // before it were rolled back too and run again.
          const runRange = async (lo: number, hi: number): Promise<void> => {
            while (lo < hi) {
              for (let i = lo; i < hi; i++) fresh(i);
              const base = lo;
              const outcomes = await runPipeline(conn, ctx, statements.slice(lo, hi), (i) => collectors[base + i]);
              const f = failedAt(outcomes);
              if (f === -1) {
                for (let i = lo; i < hi; i++) await keep(i, 0);
                return;
              }
              const failedOutcome = outcomes[f];
              if (f > 0) await runRange(lo, lo + f);
              const err = toConnectError(outcomeError(failedOutcome), { statementIndex: lo + f });
              results[lo + f].error = err.findDetails(ErrorDetailSchema)[0];
              results[lo + f].code = err.code;
              lo = lo + f + 1;
            }
          };
          await runRange(0, statements.length);
        }
        let rowsAffected = 0n;
        for (const r of results) rowsAffected += r.result?.rowsAffected ?? 0n;
        return { results, rowsAffected, executionTimeMs: performance.now() - t0 };
      }, keyed);
    },

    async prepare(req, ctx) {
      requireSql(req.sql);
      return withConn(req.transactionId, ctx, async (conn) => {
        let fields: import('pg').FieldDef[] = [];
        const cmd = new PgCommand({
          text: req.sql,
          describeOnly: true,
          sink: { onFields: (f) => (fields = f), onRow: () => {}, onComplete: () => {} },
        });
        await run(conn, cmd, ctx);
        await typeNames.resolve(conn, [...cmd.paramTypes, ...fields.map((f) => f.dataTypeID)]);
        const statementId = statementIdOf(req.sql);
        prepared.set(statementId, req.sql);
        return {
          statementId,
          paramTypeOids: cmd.paramTypes,
          paramTypeNames: cmd.paramTypes.map(typeNames.get),
          columns: columnsOf(fields, typeNames.get),
        };
      });
    },

    async executePrepared(req, ctx) {
      let sql = prepared.get(req.statementId);
      if (sql === undefined) {
        if (!req.sql || statementIdOf(req.sql) !== req.statementId) {
          throw serverError(Code.NotFound, `prepared statement ${JSON.stringify(req.statementId)} is unknown here; send its sql to prepare it again`, {
            reason: reasons.statementNotFound,
          });
        }
        sql = req.sql;
        prepared.set(req.statementId, sql);
      }
      const values = params(req.params);
      const text = sql;
      const keyed = await keyedCall(req, ctx, 'ExecutePrepared', ExecutePreparedRequestSchema, ExecutePreparedResponseSchema);
      if (keyed) keyed.retryIf = isStalePlan;
      return withConn(req.transactionId, ctx, async (conn) => {
        const execute = () => runQuery(conn, ctx, text, values, req.rowFormat, unaryRowCap(req.maxRows), req.statementId);
        try {
          return { result: await execute() };
        } catch (e) {
          if (!isStalePlan(e)) throw e;
          // DDL changed the statement's result type: its server-side statement on this connection
          // can never run again, so drop it; the next use parses the SQL afresh. Outside a
          // transaction do that now; inside one the transaction is aborted: report the error.
          const close = new PgCloseStatement(req.statementId);
          conn.query(close as never);
          await close.done.catch(() => {});
          // Inside a transaction (its own, or the one recording a key) the error aborted it.
          if (req.transactionId || keyed) throw e;
          return { result: await execute() };
        }
      }, keyed);
    },

    async closePrepared(req) {
      prepared.delete(req.statementId);
      return {};
    },

    async beginTransaction(req, ctx) {
      if (ctx.signal.aborted) throw abortError(ctx.signal);
      const principal = principalOf(ctx);
      let sql = 'BEGIN' + (isolationSql[req.isolationLevel] ?? '');
      if (req.readOnly || principal.readOnly) sql += ' READ ONLY';
      if (req.deferrable) sql += ' DEFERRABLE';
      const owner = ownerKeyOf(principal);
      try {
        const session = await sessions.begin(sql, {
          owner,
          prepare: async (conn) => {
            await setApplicationName(conn, ctx);
            await applyPrincipal(conn, principal, false);
          },
        });
        if (req.readOnly || principal.readOnly) idempotency.noteReadOnly(session);
        if (ctx.signal.aborted) {
          // The caller left (its connection broke): nobody will learn this id, so end it now
          // instead of holding a database connection until the idle timeout.
          await sessions.end(session.id, 'ROLLBACK', owner).catch(() => {});
          throw abortError(ctx.signal);
        }
        return { transactionId: session.id, idleTimeoutMs: options.transactionIdleTimeoutMs };
      } catch (e) {
        throw toConnectError(e);
      }
    },

    async commit(req, ctx) {
      const id = transactionId(req.transactionId);
      const principal = principalOf(ctx);
      let keyed: KeyedCall | undefined;
      if (idempotency.applies(req.idempotencyKey, principal) && (await idempotency.prepare())) {
        keyed = { key: req.idempotencyKey, principal, method: 'Commit', request: req, requestSchema: CommitRequestSchema, responseSchema: CommitResponseSchema };
      }
      const call = keyed;
      const before = call ? (conn: BackendConnection, session: import('./sessions.js').Session) => idempotency.beforeCommit(conn, session, call) : undefined;
      let result: { command: string };
      try {
        result = await sessions.end(id, 'COMMIT', ownerKeyOf(principal), before);
      } catch (e) {
        // A read-only transaction rolled back: the same as committing it.
        if (idempotency.isReadOnlyCommit(e)) return {};
        const err = toConnectError(e);
        // Not open here (finished, or the server restarted): the key's record says how it ended.
        if (call && err.findDetails(ErrorDetailSchema)[0]?.reason === reasons.transactionNotFound) return idempotency.resolveCommit(ctx.signal, id, call);
        throw err;
      }
      if (result.command === 'ROLLBACK') {
        throw serverError(Code.Aborted, 'the transaction was rolled back instead of committed, because a statement in it failed', {
          sqlstate: '25P02',
          reason: 'TRANSACTION_ABORTED',
        });
      }
      return {};
    },

    async rollback(req, ctx) {
      await sessions.end(transactionId(req.transactionId), 'ROLLBACK', ownerKeyOf(principalOf(ctx))).catch((e) => {
        throw toConnectError(e);
      });
      return {};
    },

    async savepoint(req, ctx) {
      const name = req.name || `sp_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6).toString(36)}`;
      if (!savepointName.test(name)) {
        throw serverError(Code.InvalidArgument, `invalid savepoint name ${JSON.stringify(name)}: use letters, digits and _`, { reason: reasons.invalidRequest });
      }
      await sessions.use(
        transactionId(req.transactionId),
        (conn) => run(conn, new PgCommand({ text: `SAVEPOINT "${name}"`, sink: new CountingSink() }), ctx, true),
        ownerKeyOf(principalOf(ctx)),
      );
      return { name };
    },

    async rollbackToSavepoint(req, ctx) {
      if (!savepointName.test(req.name)) throw serverError(Code.InvalidArgument, `invalid savepoint name ${JSON.stringify(req.name)}`, { reason: reasons.invalidRequest });
      await sessions.use(
        transactionId(req.transactionId),
        (conn) => run(conn, new PgCommand({ text: `ROLLBACK TO SAVEPOINT "${req.name}"`, sink: new CountingSink() }), ctx, true),
        ownerKeyOf(principalOf(ctx)),
      );
      return {};
    },

    async releaseSavepoint(req, ctx) {
      if (!savepointName.test(req.name)) throw serverError(Code.InvalidArgument, `invalid savepoint name ${JSON.stringify(req.name)}`, { reason: reasons.invalidRequest });
      await sessions.use(
        transactionId(req.transactionId),
        (conn) => run(conn, new PgCommand({ text: `RELEASE SAVEPOINT "${req.name}"`, sink: new CountingSink() }), ctx, true),
        ownerKeyOf(principalOf(ctx)),
      );
      return {};
    },

    async getServerInfo() {
      log.debug('server info');
      return {
        version: VERSION,
        engine: backend.engine,
        engineVersion: deps.engineVersion,
        limits: {
          maxMessageBytes: options.maxMessageBytes,
          maxUnaryRows: options.maxUnaryRows,
          // PGlite runs statements synchronously in this process and cannot interrupt them: no timeout.
          statementTimeoutMs: backend.engine === 'pglite' ? 0 : options.statementTimeoutMs,
          maxOpenTransactions: options.maxOpenTransactions,
          transactionIdleTimeoutMs: options.transactionIdleTimeoutMs,
        },
      };
    },
  };
}
