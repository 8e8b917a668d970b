/**
 * ExecuteBatch: several statements, or one statement with many parameter sets, in one round trip
 * (a pipeline). Atomic batches apply all or nothing (a savepoint inside a transaction) and name
 * the failing statement; non-atomic ones report each statement's outcome.
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { Code, type ServiceImpl } from '@connectrpc/connect';
import {
  type BatchResult,
  BatchResultSchema,
  type DatabaseService,
  ExecuteBatchRequestSchema,
  ExecuteBatchResponseSchema,
  ErrorReason,
} from '@heliosdb/client/wire';
import { ErrorDetailSchema } from '@heliosdb/client/wire';
import { ResultSetSchema, RowFormat } from '@heliosdb/client/wire';
import type { BackendConnection } from '../backend.js';
import { txStatusOf } from '../backend/connection.js';
import type { CallContext } from '../call-context.js';
import { type GuardSteps, guardSteps, runCommand, runPipeline } from '../call/run.js';
import { withConnection } from '../call/scope.js';
import type { Guard } from '../call/statement-policy.js';
import { serverError, toConnectError } from '../errors.js';
import type { CommandSink } from '../pg/pg-command.js';
import type { PipelineOutcome, PipelineStatement } from '../pg/pg-pipeline.js';
import { ResultCollector } from '../result-encoder.js';
import type { ServiceContext } from './context.js';
import { CountingSink } from './exec.js';
import { checkColumns, columnChunkSets, statementsOfColumns } from './parameter-columns.js';
import { chunkSetsOf, runUnnestChunk } from './unnest-chunk.js';

const batchSavepoint = 'heliosdb_batch';
const noSteps: GuardSteps = { prelude: [], postlude: [] };

/** The next pipeline window after a failure: half, down to 16 statements. */
function shrunk(window: number): number {
  return Math.max(16, window >> 1);
}

function failedAt(outcomes: PipelineOutcome[]): number {
  return outcomes.findIndex((o) => !o.ok);
}

function outcomeError(o: PipelineOutcome): unknown {
  return 'error' in o ? o.error : new Error('statement skipped');
}

/** The ExecuteBatch handler. */
export function executeBatchHandler(c: ServiceContext): ServiceImpl<typeof DatabaseService>['executeBatch'] {
  const { options, typeNames, backend } = c.deps;
  return async function executeBatch(req, ctx) {
    if (req.statements.length > 0 && (req.sql || req.parameterSets.length > 0)) {
      throw serverError(Code.InvalidArgument, 'send either statements or sql with parameter_sets, not both', {
        reason: ErrorReason.INVALID_REQUEST,
      });
    }
    if (req.parameterColumns && (req.statements.length > 0 || req.parameterSets.length > 0)) {
      throw serverError(Code.InvalidArgument, 'send parameter_columns with sql alone, not with statements or parameter_sets', {
        reason: ErrorReason.INVALID_REQUEST,
      });
    }
    const columns = req.parameterColumns;
    if (columns) checkColumns(columns);
    // Parameter columns become per-set statements only when the chunk runs set by set.
    let listed: PipelineStatement[] | undefined = columns
      ? undefined
      : req.statements.length > 0
        ? req.statements.map((s) => ({ text: s.sql, values: c.params(s.params) }))
        : req.parameterSets.map((p) => ({ text: req.sql, values: c.params(p.values) }));
    const statementsNow = (): PipelineStatement[] => (listed ??= statementsOfColumns(req.sql, columns!));
    const count = columns ? columns.setCount : listed!.length;
    if (columns) c.requireSql(req.sql);
    else for (const s of listed!) c.requireSql(s.text);
    const keyed = c.keyedCall(req, ctx, 'ExecuteBatch', ExecuteBatchRequestSchema, ExecuteBatchResponseSchema);
    const texts = req.statements.length > 0 ? req.statements.map((s) => s.sql) : req.sql ? [req.sql] : [];
    const checked = c.check(texts, ctx, req.transactionId, 'batch', { keyed: !!keyed, claimedRead: req.readOnly });
    const guard: Guard = checked.some((x) => x.guard === 'readOnlyPrincipal')
      ? 'readOnlyPrincipal'
      : checked.every((x) => x.guard === 'read') && checked.length > 0
        ? 'read'
        : 'none';
    const format = req.rowFormat || RowFormat.VALUES;
    // One statement with many parameter sets (executeMany): a chunk may run as one statement.
    const single = req.statements.length === 0 && count > 1;
    const t0 = performance.now();
    /** The exact count of a chunk run as one statement (its per-set counts may be 0). */
    let unnestTotal: bigint | undefined;
    return withConnection(
      c.scope,
      ctx,
      req.transactionId,
      async (conn, scope) => {
        unnestTotal = undefined;
        const steps = guardSteps(guard, scope.frame);
        // A read-only principal's auto-commit batch runs inside the READ ONLY block opened here; a
        // keyed batch inside the transaction that records its key: both as in a transaction.
        const block = guard === 'readOnlyPrincipal' && steps.prelude.length > 0;
        if (block) await runCommand(backend, conn, { text: steps.prelude.join('; '), sink: new CountingSink() }, noSteps, ctx.signal);
        // A reserved session outside BEGIN runs its batch as auto-commit does: no savepoints.
        const inTx =
          scope.frame === 'transaction' || (scope.frame === 'session' && txStatusOf(conn) !== 'I') || keyed !== undefined || block;
        const pipelineSteps = guard === 'read' && !inTx ? steps : noSteps;
        const out = await runBatch(c, conn, ctx, {
          atomic: req.atomic,
          inTx,
          returnRows: req.returnRows,
          format,
          steps: pipelineSteps,
        });
        if (block) await conn.query('ROLLBACK');
        let rowsAffected = 0n;
        for (const r of out) rowsAffected += r.result?.rowsAffected ?? 0n;
        if (unnestTotal !== undefined) rowsAffected = unnestTotal;
        return { results: out, rowsAffected, executionTimeMs: performance.now() - t0 };
      },
      { keyed, guard, selfCommitting: checked.some((x) => x.selfCommitting) },
    );

    async function runBatch(
      c: ServiceContext,
      conn: BackendConnection,
      ctx: CallContext,
      o: { atomic: boolean; inTx: boolean; returnRows: boolean; format: RowFormat; steps: GuardSteps },
    ): Promise<BatchResult[]> {
      if (o.atomic && !o.returnRows && single) {
        const sets = columns ? columnChunkSets(req.sql, columns) : chunkSetsOf(statementsNow());
        const one = await runUnnestChunk(backend, conn, sets, { inTx: o.inTx, steps: o.steps, signal: ctx.signal });
        if (one) {
          unnestTotal = one.rowsAffected;
          return one.results;
        }
      }
      const statements = statementsNow();
      const results: BatchResult[] = statements.map(() => create(BatchResultSchema));
      const collectors: (ResultCollector | CountingSink)[] = [];
      const fresh = (i: number) =>
        (collectors[i] = o.returnRows ? new ResultCollector(o.format, options.maxUnaryRows, c.maxResultBytes) : new CountingSink());
      const keep = async (i: number, ms: number) => {
        const col = collectors[i];
        if (col instanceof ResultCollector) {
          await typeNames.resolve(
            conn,
            col.fields.map((f) => f.dataTypeID),
          );
          results[i].result = col.toResultSet(ms, typeNames.get);
        } else {
          results[i].result = create(ResultSetSchema, { command: col.command, rowsAffected: col.rowsAffected, executionTimeMs: ms });
        }
      };
      const pipeline = (list: PipelineStatement[], sinkFor: (i: number) => CommandSink | undefined) =>
        runPipeline(backend, conn, list, sinkFor, o.steps, ctx.signal);
      const sp: PipelineStatement = { text: `SAVEPOINT ${batchSavepoint}`, values: [] };
      const release: PipelineStatement = { text: `RELEASE SAVEPOINT ${batchSavepoint}`, values: [] };
      const rollbackToSp = () =>
        runCommand(
          backend,
          conn,
          { text: `ROLLBACK TO SAVEPOINT ${batchSavepoint}; RELEASE SAVEPOINT ${batchSavepoint}`, sink: new CountingSink() },
          noSteps,
          ctx.signal,
        );
      const recordFailure = (i: number, e: unknown) => {
        const err = toConnectError(e, { statementIndex: i });
        results[i].error = err.findDetails(ErrorDetailSchema)[0];
        results[i].code = err.code;
      };

      if (o.atomic) {
        const list = o.inTx ? [sp, ...statements, release] : statements;
        const offset = o.inTx ? 1 : 0;
        for (let i = 0; i < statements.length; i++) fresh(i);
        const outcomes = await pipeline(list, (i) => collectors[i - offset]);
        const f = failedAt(outcomes);
        if (f !== -1) {
          if (o.inTx) await rollbackToSp();
          const index = Math.min(Math.max(f - offset, 0), statements.length - 1);
          throw toConnectError(outcomeError(outcomes[f]), { statementIndex: index });
        }
        const ms = performance.now() - t0;
        for (let i = 0; i < statements.length; i++) await keep(i, ms / statements.length);
      } else if (o.inTx) {
        // Each statement inside its own savepoint, so a failure undoes only itself. A failure
        // stops the pipeline there, so what follows it is sent again: the window shrinks with each
        // failure, so that a batch of failing statements costs O(n), not O(n²).
        let from = 0;
        let window = statements.length;
        while (from < statements.length) {
          const list: PipelineStatement[] = [];
          const to = Math.min(statements.length, from + window);
          for (let i = from; i < to; i++) {
            fresh(i);
            list.push(sp, statements[i], release);
          }
          const base = from;
          const outcomes = await pipeline(list, (p) => (p % 3 === 1 ? collectors[base + (p - 1) / 3] : undefined));
          const f = failedAt(outcomes);
          const okUntil = f === -1 ? to : base + Math.floor(f / 3);
          for (let i = base; i < okUntil; i++) await keep(i, 0);
          if (f === -1) {
            from = to;
            continue;
          }
          await rollbackToSp();
          const failed = base + Math.floor(f / 3);
          recordFailure(failed, outcomeError(outcomes[f]));
          from = failed + 1;
          window = shrunk(window);
        }
      } else {
        // Auto-commit: a pipeline is one transaction, so after a failure the statements before it
        // were rolled back too and run again (and the window shrinks, as above).
        let window = statements.length;
        const runRange = async (lo: number, hi: number): Promise<void> => {
          while (lo < hi) {
            const to = Math.min(hi, lo + window);
            for (let i = lo; i < to; i++) fresh(i);
            const base = lo;
            const outcomes = await pipeline(statements.slice(lo, to), (i) => collectors[base + i]);
            const f = failedAt(outcomes);
            if (f === -1) {
              for (let i = lo; i < to; i++) await keep(i, 0);
              lo = to;
              continue;
            }
            const failedOutcome = outcomes[f];
            window = shrunk(window);
            if (f > 0) await runRange(lo, lo + f);
            recordFailure(lo + f, outcomeError(failedOutcome));
            lo = lo + f + 1;
          }
        };
        await runRange(0, statements.length);
      }
      return results;
    }
  };
}
