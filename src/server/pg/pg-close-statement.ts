/**
 * A node-postgres submittable that drops a named server-side prepared statement with the
 * protocol's Close message (allowed even inside a failed transaction block) and forgets it in
 * pg's per-connection bookkeeping, so the next use parses it afresh.
 * @packageDocumentation
 */
import { afterReadyForQuery, isDatabaseError } from './pg-command.js';

interface PgConnection {
  parsedStatements: Record<string, string>;
  close(msg: { type: 'P' | 'S'; name?: string }): void;
  sync(): void;
  once(event: string, fn: (msg: any) => void): void;
  removeListener(event: string, fn: (msg: any) => void): void;
}

/** See the file comment. Submit with `client.query(command)`; await `command.done`. */
export class PgCloseStatement {
  /** pg inspects these two fields on every submittable. */
  readonly text = '';
  readonly name = undefined;
  readonly done: Promise<void>;
  private resolve!: () => void;
  private reject!: (e: unknown) => void;
  private finished = false;

  constructor(private readonly statement: string) {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.done.catch(() => {});
  }

  submit(con: PgConnection): void {
    delete con.parsedStatements[this.statement];
    con.close({ type: 'S', name: this.statement });
    con.sync();
  }

  handleReadyForQuery(): void {
    this.finish();
  }

  handleError(err: unknown, con?: PgConnection): void {
    if (con && isDatabaseError(err)) afterReadyForQuery(con, () => this.finish(err));
    else this.finish(err);
  }

  private finish(err?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    if (err === undefined) this.resolve();
    else this.reject(err);
  }
}
