/**
 * A node-postgres submittable that pipelines many statements in one round trip using the
 * extended protocol: Parse/Bind/Execute for each, then one Sync. Outside a transaction block they
 * form one implicit transaction, so they apply atomically; after a failure the database skips the
 * rest until the Sync (reported as `skipped`).
 * @packageDocumentation
 */
import type { FieldDef } from 'pg';
import { afterReadyForQuery, type CommandSink, copyRefused, forgetDeallocated, isDatabaseError } from './pg-command.js';

/** One statement of a pipeline. */
export interface PipelineStatement {
  text: string;
  values: (string | null)[];
}

/** The outcome of one pipelined statement. */
export type PipelineOutcome = { ok: true } | { ok: false; error: unknown } | { ok: false; skipped: true };

interface PgConnection {
  stream: { cork?: () => void; uncork?: () => void };
  parse(msg: { text: string; name?: string; types?: number[] }): void;
  bind(msg: { portal?: string; statement?: string; values?: (string | null)[]; binary?: boolean }): void;
  describe(msg: { type: 'P' | 'S'; name?: string }): void;
  execute(msg: { portal?: string; rows?: number }): void;
  sync(): void;
  once(event: string, fn: (msg: any) => void): void;
  removeListener(event: string, fn: (msg: any) => void): void;
}

/** See the file comment. */
export class PgPipeline {
  /** pg inspects these two fields on every submittable. */
  readonly text: string;
  readonly name = undefined;
  readonly done: Promise<PipelineOutcome[]>;
  private readonly outcomes: PipelineOutcome[];
  private index = 0;
  private resolve!: (o: PipelineOutcome[]) => void;
  private reject!: (e: unknown) => void;
  private finished = false;

  constructor(
    private readonly statements: PipelineStatement[],
    private readonly sinkFor: (index: number) => CommandSink | undefined,
  ) {
    this.text = statements[0]?.text ?? '';
    this.outcomes = statements.map(() => ({ ok: false, skipped: true }) as PipelineOutcome);
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.done.catch(() => {});
  }

  submit(con: PgConnection): void {
    con.stream.cork?.();
    try {
      let lastText: string | undefined;
      for (const s of this.statements) {
        // Consecutive statements with the same text reuse the unnamed statement (executeMany).
        if (s.text !== lastText) con.parse({ text: s.text, name: '', types: [] });
        lastText = s.text;
        con.bind({ portal: '', statement: '', values: s.values, binary: false });
        con.describe({ type: 'P', name: '' });
        con.execute({ portal: '', rows: 0 });
      }
      con.sync();
    } finally {
      con.stream.uncork?.();
    }
  }

  handleRowDescription(msg: { fields: FieldDef[] }): void {
    this.sinkFor(this.index)?.onFields(msg.fields);
  }

  handleDataRow(msg: { fields: (string | null)[] }): void {
    const sink = this.sinkFor(this.index);
    if (!sink) return;
    try {
      sink.onRow(msg.fields);
    } catch (e) {
      this.outcomes[this.index] = { ok: false, error: e };
    }
  }

  handleCommandComplete(msg: { text: string }, con: { parsedStatements?: Record<string, string> }): void {
    forgetDeallocated(msg.text, con);
    this.sinkFor(this.index)?.onComplete(msg.text);
    if (!('error' in this.outcomes[this.index])) this.outcomes[this.index] = { ok: true };
    this.index++;
  }

  handleEmptyQuery(): void {
    this.outcomes[this.index] = { ok: true };
    this.index++;
  }

  handlePortalSuspended(): void {}

  /** COPY with the client never belongs in a pipeline: refused (see PgCommand). */
  handleCopyInResponse(con: { sendCopyFail(msg: string): void }): void {
    if (this.index < this.outcomes.length) this.outcomes[this.index] = { ok: false, error: copyRefused() };
    con.sendCopyFail('COPY FROM STDIN is not available through this call; use copyFrom');
  }

  handleCopyData(): void {
    if (this.index < this.outcomes.length && !('error' in this.outcomes[this.index]))
      this.outcomes[this.index] = { ok: false, error: copyRefused() };
  }

  handleError(err: unknown, con?: PgConnection): void {
    if (this.index < this.outcomes.length) this.outcomes[this.index] = { ok: false, error: err };
    // The database skips the rest of the pipeline until the Sync, and pg detaches the submittable
    // on an error, so this is the end: settle once the connection is ready again, so that its
    // transaction status is current.
    if (!isDatabaseError(err)) this.finish(err);
    else if (con) afterReadyForQuery(con, () => this.finish());
    else this.finish();
  }

  handleReadyForQuery(): void {
    this.finish();
  }

  private finish(connectionError?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    if (connectionError !== undefined) this.reject(connectionError);
    else this.resolve(this.outcomes);
  }
}
