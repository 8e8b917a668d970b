/**
 * An atomic batch in one round trip: a node-postgres Submittable that writes Parse, Bind,
 * Describe and Execute for every statement and one Sync at the end, so PostgreSQL runs them in
 * one implicit transaction (all or nothing) and stops at the first failure, whose index it
 * reports. Node only.
 * @packageDocumentation
 */
import type pg from 'pg';
import { parseCommandTag, type RawResult } from './pg-values.js';

/** One statement of the batch, its parameters as text. */
export interface PipelinedStatement {
  text: string;
  values: (string | null)[];
}

interface ProtocolConnection {
  parse(q: { text: string }): void;
  bind(q: { values: (string | null)[] }): void;
  describe(q: { type: 'P' }): void;
  execute(q: { rows?: number }): void;
  sync(): void;
}

/** The failure of a pipelined batch, with the index of the statement that failed. */
export class PipelineFailure extends Error {
  constructor(
    readonly failure: unknown,
    readonly statementIndex: number,
  ) {
    super(failure instanceof Error ? failure.message : String(failure));
  }
}

class PipelinedBatch {
  readonly results: RawResult[] = [];
  private fields: pg.FieldDef[] = [];
  private rows: (string | null)[][] = [];
  readonly done: Promise<RawResult[]>;
  private settle!: (err: unknown, r?: RawResult[]) => void;

  constructor(private readonly statements: readonly PipelinedStatement[]) {
    this.done = new Promise((resolve, reject) => {
      this.settle = (err, r) => (err ? reject(err) : resolve(r as RawResult[]));
    });
  }

  submit(connection: ProtocolConnection): void {
    for (const s of this.statements) {
      connection.parse({ text: s.text });
      connection.bind({ values: s.values });
      connection.describe({ type: 'P' });
      connection.execute({ rows: 0 });
    }
    connection.sync();
  }

  handleRowDescription(msg: { fields: pg.FieldDef[] }): void {
    this.fields = msg.fields;
  }

  handleDataRow(msg: { fields: (string | null)[] }): void {
    this.rows.push(msg.fields);
  }

  handleCommandComplete(msg: { text: string }): void {
    const t = parseCommandTag(msg.text);
    this.results.push({ command: t.command, rowCount: Number(t.rowsAffected), fields: this.fields, rows: this.rows, tag: msg.text });
    this.fields = [];
    this.rows = [];
  }

  handleEmptyQuery(): void {
    this.results.push({ command: '', rowCount: null, fields: [], rows: [] });
  }

  handleError(err: unknown): void {
    // PostgreSQL skips the rest up to the Sync; node-postgres drops the query on an error.
    this.settle(new PipelineFailure(err, this.results.length));
  }

  handleReadyForQuery(): void {
    this.settle(undefined, this.results);
  }

  handleParseComplete(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}
  handleCopyData(): void {}
}

/** Whether `sql` can go through the extended protocol: one statement (no `;` before its end, outside quotes it may be a script). */
export function pipelinable(sql: string): boolean {
  return !sql.trim().replace(/;\s*$/, '').includes(';');
}

/** Sends the statements as one pipeline on `client` (it must be idle). */
export function runPipeline(client: pg.Client, statements: readonly PipelinedStatement[]): Promise<RawResult[]> {
  const b = new PipelinedBatch(statements);
  client.query(b as unknown as pg.Submittable);
  return b.done;
}
