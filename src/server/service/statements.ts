/**
 * The statement RPCs: Query, Execute, Prepare, ExecutePrepared and ClosePrepared.
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import type { FieldDef } from 'pg';
import {
  type DatabaseService,
  ExecutePreparedRequestSchema,
  ExecutePreparedResponseSchema,
  ExecuteRequestSchema,
  ExecuteResponseSchema,
  QueryRequestSchema,
  QueryResponseSchema,
  ErrorReason,
} from '@heliosdb/client/wire';
import { ErrorDetailSchema } from '@heliosdb/client/wire';
import { RowFormat } from '@heliosdb/client/wire';
import { ownerKeyOf, principalOf } from '../auth/principal.js';
import { runSubmittable } from '../call/run.js';
import { withConnection } from '../call/scope.js';
import { serverError } from '../errors.js';
import { PgCloseStatement } from '../pg/pg-close-statement.js';
import { PgCommand } from '../pg/pg-command.js';
import { columnsOf } from '../result-encoder.js';
import type { ServiceContext } from './context.js';
import { collectQuery, CountingSink, execStatement } from './exec.js';
import { PreparedRegistry } from './prepared-registry.js';

/** The deterministic statement id (and server-side name) of a SQL text. */
export function statementIdOf(sql: string): string {
  return 'hdb_' + createHash('sha256').update(sql).digest('hex').slice(0, 40);
}

/** Whether `e` says a prepared statement's cached plan no longer matches its tables (0A000 after DDL). */
function isStalePlan(e: unknown): boolean {
  if (!(e instanceof ConnectError)) return false;
  const [detail] = e.findDetails(ErrorDetailSchema);
  return detail?.sqlstate === '0A000' && /cached plan must not change result type/.test(detail.message);
}

type Handlers = Pick<ServiceImpl<typeof DatabaseService>, 'query' | 'execute' | 'prepare' | 'executePrepared' | 'closePrepared'>;

/** The handlers, and the prepared-statement registry they share (closed with the server). */
export function statementHandlers(c: ServiceContext): Handlers & { registry: PreparedRegistry } {
  const registry = new PreparedRegistry(c.deps.options.maxPreparedStatements, c.deps.options.preparedStatementTtlMs);
  return {
    registry,

    async query(req, ctx) {
      c.requireSql(req.sql);
      const values = c.params(req.params);
      const keyed = c.keyedCall(req, ctx, 'Query', QueryRequestSchema, QueryResponseSchema);
      const [checked] = c.check([req.sql], ctx, req.transactionId, 'query', { keyed: !!keyed, claimedRead: req.readOnly });
      const format = req.rowFormat || RowFormat.VALUES;
      return withConnection(
        c.scope,
        ctx,
        req.transactionId,
        async (conn, scope) => ({
          result: await collectQuery(c, conn, ctx, scope.frame, { checked, text: req.sql, values }, format, c.unaryRowCap(req.maxRows)),
        }),
        { keyed, guard: checked.guard, selfCommitting: checked.selfCommitting },
      );
    },

    async execute(req, ctx) {
      c.requireSql(req.sql);
      const values = c.params(req.params);
      const keyed = c.keyedCall(req, ctx, 'Execute', ExecuteRequestSchema, ExecuteResponseSchema);
      const [checked] = c.check([req.sql], ctx, req.transactionId, 'execute', { keyed: !!keyed, claimedRead: req.readOnly });
      return withConnection(
        c.scope,
        ctx,
        req.transactionId,
        async (conn, scope) => {
          const sink = new CountingSink();
          const t0 = performance.now();
          await execStatement(c, conn, ctx, scope.frame, { checked, text: req.sql, values }, sink);
          return { command: sink.command, rowsAffected: sink.rowsAffected, executionTimeMs: performance.now() - t0 };
        },
        { keyed, guard: checked.guard, selfCommitting: checked.selfCommitting },
      );
    },

    async prepare(req, ctx) {
      c.requireSql(req.sql);
      // Prepare only parses and describes, so nothing of the policy but the refusals applies.
      c.check([req.sql], ctx, req.transactionId, 'prepare');
      return withConnection(c.scope, ctx, req.transactionId, async (conn) => {
        let fields: FieldDef[] = [];
        const cmd = new PgCommand({
          text: req.sql,
          describeOnly: true,
          sink: { onFields: (f) => (fields = f), onRow: () => {}, onComplete: () => {} },
        });
        await runSubmittable(c.deps.backend, conn, cmd, ctx.signal);
        await c.deps.typeNames.resolve(conn, [...cmd.paramTypes, ...fields.map((f) => f.dataTypeID)]);
        const statementId = statementIdOf(req.sql);
        registry.remember(ownerKeyOf(principalOf(ctx)), statementId, req.sql);
        return {
          statementId,
          paramTypeOids: cmd.paramTypes,
          paramTypeNames: cmd.paramTypes.map(c.deps.typeNames.get),
          columns: columnsOf(fields, c.deps.typeNames.get),
        };
      });
    },

    async executePrepared(req, ctx) {
      const owner = ownerKeyOf(principalOf(ctx));
      let sql = registry.lookup(owner, req.statementId);
      if (sql === undefined) {
        if (!req.sql || statementIdOf(req.sql) !== req.statementId) {
          throw serverError(
            Code.NotFound,
            `prepared statement ${JSON.stringify(req.statementId)} is unknown here; send its sql to prepare it again`,
            {
              reason: ErrorReason.STATEMENT_NOT_FOUND,
            },
          );
        }
        sql = req.sql;
        registry.remember(owner, req.statementId, sql);
      }
      const values = c.params(req.params);
      const text = sql;
      const keyed = c.keyedCall(req, ctx, 'ExecutePrepared', ExecutePreparedRequestSchema, ExecutePreparedResponseSchema);
      if (keyed) keyed.retryIf = isStalePlan;
      const [checked] = c.check([text], ctx, req.transactionId, 'query', { keyed: !!keyed, claimedRead: req.readOnly });
      const format = req.rowFormat || RowFormat.VALUES;
      return withConnection(
        c.scope,
        ctx,
        req.transactionId,
        async (conn, scope) => {
          const execute = () =>
            collectQuery(c, conn, ctx, scope.frame, { checked, text, values, name: req.statementId }, format, c.unaryRowCap(req.maxRows));
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
            if (scope.frame !== 'autocommit' || keyed) throw e;
            return { result: await execute() };
          }
        },
        { keyed, guard: checked.guard, selfCommitting: checked.selfCommitting },
      );
    },

    async closePrepared(req, ctx) {
      registry.forget(ownerKeyOf(principalOf(ctx)), req.statementId);
      return {};
    },
  };
}
