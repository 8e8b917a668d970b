/**
 * Running a checked call's statements on a held connection under its guard, into a sink: one
 * command (a statement, or a script without a guard), or, for a guarded script, one pipeline of
 * its statements as PostgreSQL's parser split them.
 * @packageDocumentation
 */
import { Code } from '@connectrpc/connect';
import type { RowFormat } from '@heliosdb/client/wire';
import type { BackendConnection } from '../backend.js';
import type { CallContext } from '../call-context.js';
import { guardSteps, isGuarded, runCommand, runPipeline } from '../call/run.js';
import type { CallFrame, CheckedSql } from '../call/statement-policy.js';
import { serverError, toConnectError } from '../errors.js';
import type { CommandSink } from '../pg/pg-command.js';
import { parseCommandTag, ResultCollector } from '../result-encoder.js';
import type { ServiceContext } from './context.js';

/** Discards rows, keeps the command tag. */
export class CountingSink implements CommandSink {
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

/** What to run. */
export interface Statement {
  checked: CheckedSql;
  text: string;
  values: (string | null)[];
  /** A server-side prepared statement name. */
  name?: string;
}

/** Runs `s` into `sink` in `frame` (see the file comment). */
export async function execStatement(
  c: ServiceContext,
  conn: BackendConnection,
  ctx: CallContext,
  frame: CallFrame,
  s: Statement,
  sink: CommandSink,
): Promise<void> {
  const steps = guardSteps(s.checked.guard, frame);
  const statements = s.checked.analysis.statements;
  if (!isGuarded(steps) || statements.length <= 1) {
    return runCommand(c.deps.backend, conn, { text: s.text, values: s.values, name: s.name, sink }, steps, ctx.signal);
  }
  if (s.values.length > 0)
    throw serverError(Code.InvalidArgument, 'cannot insert multiple commands into a prepared statement', { sqlstate: '42601' });
  const outcomes = await runPipeline(
    c.deps.backend,
    conn,
    statements.map((st) => ({ text: st.text, values: [] })),
    () => sink,
    steps,
    ctx.signal,
  );
  const failed = outcomes.find((o) => !o.ok);
  if (failed) throw toConnectError('error' in failed ? failed.error : new Error('statement skipped'));
}

/** Runs a query and collects its whole result (the unary row and size caps apply). */
export async function collectQuery(
  c: ServiceContext,
  conn: BackendConnection,
  ctx: CallContext,
  frame: CallFrame,
  s: Statement,
  format: RowFormat,
  maxRows: number,
) {
  const collector = new ResultCollector(format, maxRows, c.maxResultBytes);
  collector.onOverflow = () => void c.deps.backend.cancel(conn);
  const t0 = performance.now();
  try {
    await execStatement(c, conn, ctx, frame, s, collector);
  } catch (e) {
    // A row-limit failure surfaces as the database's "canceled" error: report the limit.
    if (collector.overflow) collector.onRow([]);
    throw e;
  }
  const ms = performance.now() - t0;
  await c.deps.typeNames.resolve(
    conn,
    collector.fields.map((f) => f.dataTypeID),
  );
  return collector.toResultSet(ms, c.deps.typeNames.get);
}
