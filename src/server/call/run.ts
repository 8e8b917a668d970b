/**
 * Running statements on a held connection: a node-postgres submittable sent and awaited, the
 * database asked to cancel it when the call aborts, and a call's guard (see ./statement-policy.ts)
 * added as statements before and after the caller's, in the same round trip.
 * @packageDocumentation
 */
import type { Backend, BackendConnection } from '../backend.js';
import { abortError } from '../call-context.js';
import { ConnectError } from '@connectrpc/connect';
import { toConnectError } from '../errors.js';
import { type CommandSink, isDatabaseError, PgCommand, type PgCommandOptions } from '../pg/pg-command.js';
import { PgPipeline, type PipelineOutcome, type PipelineStatement } from '../pg/pg-pipeline.js';
import type { CallFrame, Guard } from './statement-policy.js';
import { endStatementSpan, startStatementSpan } from '../telemetry/statement-span.js';

/** Statements around a call's own, by guard and frame. */
export interface GuardSteps {
  prelude: readonly string[];
  postlude: readonly string[];
}

const none: GuardSteps = { prelude: [], postlude: [] };
const read: GuardSteps = { prelude: ['SET TRANSACTION READ ONLY'], postlude: [] };
const readOnlyBlock: GuardSteps = { prelude: ['BEGIN READ ONLY', 'SELECT 1'], postlude: ['ROLLBACK'] };

/**
 * The statements a guard adds. A read-only principal's transaction was begun READ ONLY with its
 * snapshot taken, so inside it nothing is added.
 */
export function guardSteps(guard: Guard, frame: CallFrame): GuardSteps {
  if (guard === 'read') return frame === 'autocommit' ? read : none;
  if (guard === 'readOnlyPrincipal') return frame === 'transaction' ? none : readOnlyBlock;
  return none;
}

/** Whether the guard adds anything. */
export function isGuarded(steps: GuardSteps): boolean {
  return steps.prelude.length > 0 || steps.postlude.length > 0;
}

/** Sends `cmd` on `conn` and waits for it, cancelling it in the database if `signal` aborts. */
export async function runSubmittable<T>(
  backend: Backend,
  conn: BackendConnection,
  cmd: { done: Promise<T>; text?: string },
  signal: AbortSignal,
): Promise<T> {
  // A call answered already (its deadline passed while it waited) never starts.
  if (signal.aborted) throw abortError(signal);
  const onAbort = () => void backend.cancel(conn);
  signal.addEventListener('abort', onAbort, { once: true });
  const span = startStatementSpan(signal, cmd.text, backend.engine);
  let failure: unknown;
  try {
    conn.query(cmd as never);
    return await cmd.done;
  } catch (e) {
    if (signal.aborted) throw (failure = abortError(signal));
    // A database error is mapped here; a broken connection goes up as it is, so that the call's
    // scope can tell "never sent" from "sent, outcome unknown" (./scope.ts).
    throw (failure = isDatabaseError(e) || e instanceof ConnectError ? toConnectError(e) : e);
  } finally {
    signal.removeEventListener('abort', onAbort);
    endStatementSpan(span, failure);
  }
}

/** Runs one command (a statement, or a script without parameters) under `steps`. */
export function runCommand(
  backend: Backend,
  conn: BackendConnection,
  opts: PgCommandOptions,
  steps: GuardSteps,
  signal: AbortSignal,
): Promise<void> {
  const cmd = new PgCommand({ ...opts, prelude: steps.prelude, postlude: steps.postlude });
  return runSubmittable(backend, conn, cmd, signal);
}

/**
 * Runs statements as one pipeline (one round trip, one Sync) under `steps`; outcomes are the
 * caller's statements' own.
 */
export async function runPipeline(
  backend: Backend,
  conn: BackendConnection,
  statements: readonly PipelineStatement[],
  sinkFor: (i: number) => CommandSink | undefined,
  steps: GuardSteps,
  signal: AbortSignal,
): Promise<PipelineOutcome[]> {
  const pre = steps.prelude.map((text) => ({ text, values: [] }));
  const post = steps.postlude.map((text) => ({ text, values: [] }));
  const all = [...pre, ...statements, ...post];
  const offset = pre.length;
  const pipeline = new PgPipeline(all, (i) => (i >= offset && i < offset + statements.length ? sinkFor(i - offset) : undefined));
  const outcomes = await runSubmittable(backend, conn, pipeline, signal);
  const prelude = outcomes.slice(0, offset).find((o) => !o.ok && 'error' in o);
  const own = outcomes.slice(offset, offset + statements.length);
  // A guard statement that failed (it never should) fails the first of the caller's.
  if (prelude && own.length > 0) own[0] = prelude;
  return own;
}
