/**
 * One executeMany chunk as one statement: the chunk's parameter sets become one array per column
 * and a single-row `INSERT ... VALUES ($1..$k)` becomes `INSERT ... SELECT * FROM unnest(...)`
 * (see ../sql/unnest-insert.ts), with the array types from one Describe of the statement. Only
 * for atomic chunks that return no rows, and only when every parameter has a built-in scalar type
 * (arrays, enums, domains and extension types keep today's path). When the one statement fails
 * (a constraint, a bad value), nothing of it applied, and the caller runs the chunk again on
 * today's path, which names the failing parameter set; so the outcome, error and index are
 * always today's.
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { ConnectError } from '@connectrpc/connect';
import { type BatchResult, BatchResultSchema, builtinTypeName, Oid, ResultSetSchema } from '@heliosdb/client/wire';
import type { Backend, BackendConnection } from '../backend.js';
import { abortError } from '../call-context.js';
import { type GuardSteps, runCommand, runPipeline, runSubmittable } from '../call/run.js';
import { isDatabaseError, PgCommand } from '../pg/pg-command.js';
import type { PipelineStatement } from '../pg/pg-pipeline.js';
import { arrayLiteral, planUnnestInsert, unnestInsertText } from '../sql/unnest-insert.js';
import { CountingSink } from './exec.js';

/** The built-in scalar types an array of which unnest takes (every type of `Oid`). */
const scalarOids = new Set<number>(Object.values(Oid));
const noSteps: GuardSteps = { prelude: [], postlude: [] };
const savepoint = 'heliosdb_unnest';

/** What the chunk runs in. */
export interface UnnestChunkOptions {
  /** Inside a transaction block (a savepoint keeps a failure from aborting it). */
  inTx: boolean;
  /** The guard's statements around the chunk (auto-commit only). */
  steps: GuardSteps;
  signal: AbortSignal;
}

/** One statement's parameter sets, as a chunk runs them as one statement. */
export interface ChunkSets {
  readonly sql: string;
  /** Number of parameter sets. */
  readonly count: number;
  /** Parameters in each set; -1 when the sets differ. */
  readonly width: number;
  /** Parameter `p` (0-based) of every set, as PostgreSQL's array literal; may throw INVALID_ARGUMENT. */
  arrayLiteral(p: number): string;
}

/** The {@link ChunkSets} of `statements` (one text, many parameter sets). */
export function chunkSetsOf(statements: readonly PipelineStatement[]): ChunkSets {
  const k = statements[0]?.values.length ?? 0;
  return {
    sql: statements[0]?.text ?? '',
    count: statements.length,
    width: statements.every((s) => s.values.length === k) ? k : -1,
    arrayLiteral: (p) => arrayLiteral(statements.map((s) => s.values[p])),
  };
}

/**
 * Runs `sets` as one statement; the per-set results and the statement's exact count, or
 * undefined when the chunk must run on today's path (not such an INSERT, a type unnest cannot
 * carry, or the statement failed without effect).
 */
export async function runUnnestChunk(
  backend: Backend,
  conn: BackendConnection,
  sets: ChunkSets,
  o: UnnestChunkOptions,
): Promise<{ results: BatchResult[]; rowsAffected: bigint } | undefined> {
  if (sets.count < 2) return undefined;
  const sql = sets.sql;
  const plan = planUnnestInsert(sql);
  if (!plan) return undefined;
  const k = plan.order.length;
  if (sets.width !== k) return undefined;
  // Before anything runs: building a column may refuse a parameter (INVALID_ARGUMENT).
  const columns: string[] = [];
  for (let p = 0; p < k; p++) columns.push(sets.arrayLiteral(p));
  const undo = o.inTx
    ? () =>
        runCommand(
          backend,
          conn,
          { text: `ROLLBACK TO SAVEPOINT ${savepoint}; RELEASE SAVEPOINT ${savepoint}`, sink: new CountingSink() },
          noSteps,
          o.signal,
        )
    : async () => {};
  if (o.inTx) await runCommand(backend, conn, { text: `SAVEPOINT ${savepoint}`, sink: new CountingSink() }, noSteps, o.signal);
  const describe = new PgCommand({ text: sql, describeOnly: true, sink: { onFields() {}, onRow() {}, onComplete() {} } });
  try {
    await runSubmittable(backend, conn, describe, o.signal);
  } catch (e) {
    if (o.signal.aborted || !(e instanceof ConnectError || isDatabaseError(e))) throw e;
    await undo();
    return undefined;
  }
  const types: string[] = [];
  for (const oid of describe.paramTypes) {
    const name = scalarOids.has(oid) ? builtinTypeName(oid) : undefined;
    if (!name) {
      await undo();
      return undefined;
    }
    types.push(`pg_catalog."${name}"[]`);
  }
  if (types.length !== k) {
    await undo();
    return undefined;
  }
  const sink = new CountingSink();
  const list: PipelineStatement[] = [{ text: unnestInsertText(plan, types), values: columns }];
  if (o.inTx) list.push({ text: `RELEASE SAVEPOINT ${savepoint}`, values: [] });
  const outcomes = await runPipeline(backend, conn, list, (i) => (i === 0 ? sink : undefined), o.inTx ? noSteps : o.steps, o.signal);
  if (o.signal.aborted) throw abortError(o.signal);
  if (outcomes.some((r) => !r.ok)) {
    await undo();
    return undefined;
  }
  const each = sink.rowsAffected === BigInt(sets.count) ? 1n : 0n;
  // Every set has the same outcome: one message, listed once per set (it is only serialized).
  const one = create(BatchResultSchema, {
    result: create(ResultSetSchema, { command: sink.command || 'INSERT', rowsAffected: each }),
  });
  const results = Array.from({ length: sets.count }, () => one);
  return { results, rowsAffected: sink.rowsAffected };
}
