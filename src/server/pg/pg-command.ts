/**
 * A node-postgres "submittable" that runs one statement (or a simple-protocol script) and hands
 * the raw text cells of each row to a sink as they arrive, without building row objects. With
 * `fetchRows` it reads the result incrementally through a portal (the streaming path).
 * @packageDocumentation
 */
import type { FieldDef } from 'pg';
import { RawDataRow } from './raw-rows.js';

/** Receives a statement's result as PostgreSQL sends it. */
export interface CommandSink {
  /** Column metadata; called again for each result of a multi-statement script. */
  onFields(fields: FieldDef[]): void;
  /** One row's cells in PostgreSQL text format (`null` for NULL). May throw to stop collecting. */
  onRow(cells: (string | null)[]): void;
  /**
   * One row still in DataRow bytes, on connections wired by ./raw-rows.ts; valid only during the
   * call. Without it such rows go to `onRow`. May throw to stop collecting.
   */
  onRawRow?(row: RawDataRow): void;
  /** A statement completed with this command tag (e.g. `INSERT 0 3`). */
  onComplete(tag: string): void;
}

/**
 * After a caller's `DEALLOCATE [ALL]` or `DISCARD ALL` (its command tag), pg's record of the
 * statements it parsed on the connection is wrong: forgotten, so the next execution of a
 * prepared statement parses it again instead of binding a name that is gone (26000). A
 * DEALLOCATE run by dynamic SQL inside a function sends no tag and is not seen.
 */
export function forgetDeallocated(tag: string, con: { parsedStatements?: Record<string, string> }): void {
  if ((tag === 'DEALLOCATE' || tag === 'DEALLOCATE ALL' || tag === 'DISCARD ALL') && con.parsedStatements) con.parsedStatements = {};
}

/** Minimal view of pg's Connection that a submittable drives. */
interface PgConnection {
  stream: { cork?: () => void; uncork?: () => void; pause?: () => void; resume?: () => void };
  parsedStatements: Record<string, string>;
  query(text: string): void;
  parse(msg: { text: string; name?: string; types?: number[] }): void;
  bind(msg: { portal?: string; statement?: string; values?: (string | Buffer | null)[]; binary?: boolean }): void;
  describe(msg: { type: 'P' | 'S'; name?: string }): void;
  execute(msg: { portal?: string; rows?: number }): void;
  close(msg: { type: 'P' | 'S'; name?: string }): void;
  flush(): void;
  sync(): void;
  once(event: string, fn: (msg: any) => void): void;
  removeListener(event: string, fn: (msg: any) => void): void;
}

/** The error of a COPY with the client that arrived through an ordinary statement. */
export function copyRefused(): Error {
  return Object.assign(
    new Error('COPY ... FROM STDIN / TO STDOUT streams data between the client and the database: run it with copyFrom / copyTo'),
    {
      heliosReason: 'USE_COPY_API',
    },
  );
}

/** Whether `err` is an ErrorResponse from the database (which a ReadyForQuery follows). */
export function isDatabaseError(err: unknown): boolean {
  return !!err && typeof err === 'object' && 'severity' in err;
}

/**
 * Calls `fn` once the connection has processed the ReadyForQuery that follows an ErrorResponse
 * (or once the connection ends or fails). pg detaches a command on an error, so that
 * ReadyForQuery is not routed to the command; pg's own listener, registered first, records the
 * transaction status from it before `fn` runs, so callers then see the connection's real state
 * (e.g. a failed transaction block that must be rolled back before the connection is reused).
 */
export function afterReadyForQuery(
  con: { once(event: string, fn: (msg: any) => void): void; removeListener(event: string, fn: (msg: any) => void): void },
  fn: () => void,
): void {
  const done = () => {
    con.removeListener('readyForQuery', done);
    con.removeListener('end', done);
    con.removeListener('error', done);
    fn();
  };
  con.once('readyForQuery', done);
  con.once('end', done);
  con.once('error', done);
}

/** Options of a {@link PgCommand}. */
export interface PgCommandOptions {
  text: string;
  /** Parameters already in PostgreSQL text form (`null` for NULL). */
  values?: (string | null)[];
  /** Name of a server-side prepared statement to use (prepared on this connection if missing). */
  name?: string;
  /** Read the result `fetchRows` rows at a time through a portal; 0 reads it in one go. */
  fetchRows?: number;
  /** Only parse and describe the statement (for Prepare); no rows are produced. */
  describeOnly?: boolean;
  /**
   * Statements (without parameters or results that matter) run just before this one, in the same
   * round trip and the same transaction (the guards of ./call/guards.ts); their rows and tags are
   * not passed to the sink. Forces the extended protocol.
   */
  prelude?: readonly string[];
  /** Statements run just after this one succeeded, before the Sync (skipped when it fails). */
  postlude?: readonly string[];
  sink: CommandSink;
}

/** See the file comment. Submit with `client.query(command)`; await `command.done`. */
export class PgCommand {
  readonly text: string;
  readonly name: string | undefined;
  readonly done: Promise<void>;
  /** Parameter type OIDs, set by a describe-only command. */
  paramTypes: number[] = [];
  /** Called when a portal suspended after `fetchRows` rows; call `resume()` or `close()`. */
  onSuspended: (() => void) | undefined;
  /** Send through the extended protocol even without parameters (one statement only; no scripts). */
  forceExtended = false;

  private readonly values: (string | null)[] | undefined;
  private readonly prelude: readonly string[];
  private readonly postlude: readonly string[];
  /** Completions still expected from the prelude before this statement's own. */
  private preludeLeft: number;
  private mainDone = false;
  /** Sent as one simple-protocol Query (a script may complete several statements). */
  private isSimple = false;
  /** Rows per Execute while streaming (the caller may change it between fetches). */
  fetchRows: number;
  private inputPaused = false;
  private readonly describeOnly: boolean;
  private readonly sink: CommandSink;
  private con: PgConnection | undefined;
  private error: unknown;
  private sinkError: unknown;
  private syncSent = false;
  private finished = false;
  private resolve!: () => void;
  private reject!: (e: unknown) => void;

  constructor(opts: PgCommandOptions) {
    this.text = opts.text;
    this.name = opts.name;
    this.values = opts.values;
    this.prelude = opts.prelude ?? [];
    this.postlude = opts.postlude ?? [];
    this.preludeLeft = this.prelude.length;
    this.fetchRows = opts.fetchRows ?? 0;
    this.describeOnly = opts.describeOnly ?? false;
    this.sink = opts.sink;
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Callers always await `done`; keep an early rejection from being reported as unhandled.
    this.done.catch(() => {});
  }

  /** True once the database finished with this command. */
  get isFinished(): boolean {
    return this.finished;
  }

  /** Called by pg when the command reaches the head of the connection's queue. */
  submit(con: PgConnection): void {
    this.con = con;
    const simple =
      !this.describeOnly &&
      !this.name &&
      !this.fetchRows &&
      !this.values?.length &&
      !this.forceExtended &&
      this.prelude.length === 0 &&
      this.postlude.length === 0;
    if (simple) {
      this.isSimple = true;
      con.query(this.text);
      this.syncSent = true;
      return;
    }
    con.stream.cork?.();
    try {
      if (this.describeOnly) {
        const onParams = (msg: { dataTypeIDs: number[] }) => {
          this.paramTypes = msg.dataTypeIDs;
        };
        con.once('parameterDescription', onParams);
        con.parse({ text: this.text, name: '', types: [] });
        con.describe({ type: 'S', name: '' });
        con.sync();
        this.syncSent = true;
        return;
      }
      for (const text of this.prelude) this.sendPlain(con, text);
      const statement = this.name ?? '';
      if (!this.name || con.parsedStatements[this.name] === undefined) {
        con.parse({ text: this.text, name: statement, types: [] });
      }
      con.bind({ portal: '', statement, values: this.values ?? [], binary: false });
      con.describe({ type: 'P', name: '' });
      con.execute({ portal: '', rows: this.fetchRows });
      if (this.fetchRows) {
        con.flush();
      } else {
        for (const text of this.postlude) this.sendPlain(con, text);
        con.sync();
        this.syncSent = true;
      }
    } finally {
      con.stream.uncork?.();
    }
  }

  /** Parse, Bind and Execute of a statement without parameters whose results are ignored. */
  private sendPlain(con: PgConnection, text: string): void {
    con.parse({ text, name: '', types: [] });
    con.bind({ portal: '', statement: '', values: [], binary: false });
    con.execute({ portal: '', rows: 0 });
  }

  /** After a portal read to its end or closed: the postlude, then Sync. */
  private finishPortal(con: PgConnection): void {
    con.stream.cork?.();
    try {
      for (const text of this.postlude) this.sendPlain(con, text);
      con.sync();
      this.syncSent = true;
    } finally {
      con.stream.uncork?.();
    }
  }

  /** Streaming: fetch the next `fetchRows` rows. */
  resume(): void {
    if (this.finished || this.syncSent || !this.con) return;
    this.con.execute({ portal: '', rows: this.fetchRows });
    this.con.flush();
  }

  /**
   * Streaming: stops reading the connection's socket (rows already received are still handled),
   * so a client that reads slowly holds the database's output in PostgreSQL and the kernel, not
   * in this process. {@link resumeInput} and {@link close} read again.
   */
  pauseInput(): void {
    // Once Sync is sent (the portal ran to its end or was closed) the rest must be read: nothing
    // would resume it, and the connection would stay held.
    if (this.finished || this.syncSent || !this.con || this.inputPaused) return;
    this.inputPaused = true;
    this.con.stream.pause?.();
  }

  /** Streaming: reads the connection's socket again after {@link pauseInput}. */
  resumeInput(): void {
    if (!this.inputPaused || !this.con) return;
    this.inputPaused = false;
    this.con.stream.resume?.();
  }

  /** Streaming: stop early, closing the portal. `done` resolves once the database is idle. */
  close(): void {
    this.resumeInput();
    if (this.finished || this.syncSent || !this.con) return;
    this.con.close({ type: 'P', name: '' });
    this.finishPortal(this.con);
  }

  /** Whether a message belongs to a prelude or postlude statement, not to this one. */
  private get outside(): boolean {
    return this.preludeLeft > 0 || this.mainDone;
  }

  handleRowDescription(msg: { fields: FieldDef[] }): void {
    if (this.outside) return;
    this.sink.onFields(msg.fields);
  }

  handleDataRow(msg: { fields: (string | null)[] }): void {
    if (this.sinkError !== undefined || this.outside) return;
    try {
      if (this.sink.onRawRow && msg instanceof RawDataRow) this.sink.onRawRow(msg);
      else this.sink.onRow(msg.fields);
    } catch (e) {
      this.sinkError = e;
    }
  }

  handleCommandComplete(msg: { text: string }, con: PgConnection): void {
    forgetDeallocated(msg.text, con);
    if (this.preludeLeft > 0) {
      this.preludeLeft--;
      return;
    }
    if (this.mainDone) return;
    // A simple-protocol script completes several statements; an extended one completes once.
    if (!this.isSimple) this.mainDone = true;
    this.sink.onComplete(msg.text);
    if (!this.syncSent) this.finishPortal(con);
  }

  /**
   * COPY with the client as source or sink never reaches here through the statement policy, but
   * if it does (a procedure or a function), it is refused instead of breaking the connection.
   */
  handleCopyInResponse(con: PgConnection & { sendCopyFail(msg: string): void }): void {
    this.sinkError ??= copyRefused();
    con.sendCopyFail('COPY FROM STDIN is not available through this call; use copyFrom');
  }

  handleCopyData(): void {
    this.sinkError ??= copyRefused();
  }

  handlePortalSuspended(): void {
    if (this.onSuspended) this.onSuspended();
    else this.resume();
  }

  handleEmptyQuery(con: PgConnection): void {
    if (!this.isSimple) this.mainDone = true;
    if (!this.syncSent) this.finishPortal(con);
  }

  handleError(err: unknown, con: PgConnection): void {
    if (this.error === undefined) this.error = err;
    if (!this.syncSent && con) {
      con.sync();
      this.syncSent = true;
    }
    // Settle once the connection is ready again, so its transaction status is current.
    if (con && isDatabaseError(err)) afterReadyForQuery(con, () => this.finish());
    else this.finish();
  }

  handleReadyForQuery(): void {
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.resumeInput();
    this.finished = true;
    const e = this.sinkError ?? this.error;
    if (e !== undefined) this.reject(e);
    else this.resolve();
  }
}
