/**
 * What every handler of the PostgreSQL transport shares: the pool, the open transactions and
 * reserved sessions (by id, each holding one connection), a connection for a call (the session's,
 * or one from the pool set to the call's application_name and read-only mode), statements run
 * with cancellation (an aborted signal sends PostgreSQL's cancel request), and the type names.
 * Node only.
 * @packageDocumentation
 */
import { randomUUID } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import type pg from 'pg';
import { ErrorReason } from '../../../gen/heliosdb/v1/error_pb.js';
import { headers } from '../protocol/headers.js';
import { annotateAttempt } from './attempt-info.js';
import { detailedError, fromPgError } from './pg-errors.js';
import type { PgConn, PgPool } from './pg-pool.js';
import { PgTypeNames, type RawResult, rawTypes } from './pg-values.js';

/** What a handler gets of its call. */
export interface PgCall {
  /** Aborted when the caller cancels, the deadline passes, or the call ends. */
  readonly signal: AbortSignal;
  readonly header: Headers;
}

/** An open transaction or reserved session: one connection until it ends. */
export interface PgSession {
  readonly id: string;
  readonly kind: 'transaction' | 'session';
  readonly conn: PgConn;
  savepoints: number;
}

/** The reason of an aborted signal as a Connect error (CANCELLED unless it says otherwise). */
export function abortError(signal: AbortSignal): ConnectError {
  return ConnectError.from(signal.reason, Code.Canceled);
}

/** A string literal of SQL (an E'' literal when it holds a backslash, whatever standard_conforming_strings says). */
function literal(text: string): string {
  const quoted = text.replace(/'/g, "''");
  return text.includes('\\') ? `E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
}

/** See the file comment. */
export class PgBackend {
  readonly sessions = new Map<string, PgSession>();
  readonly types = new PgTypeNames();

  constructor(
    readonly pool: PgPool,
    /** The server, for errors and the retry budget (`postgres://host:port`). */
    readonly endpoint: string,
    /** The client's application_name (calls may set another in their header). */
    readonly applicationName: string,
    /** Sends PostgreSQL's cancel request for what `client` runs now. */
    private readonly cancelRequest: (client: pg.Client) => void,
  ) {}

  /** The open session `id`; TRANSACTION_NOT_FOUND when there is none. */
  session(id: string): PgSession {
    const s = this.sessions.get(id);
    if (!s) {
      throw detailedError(Code.NotFound, `transaction or session ${id} is not open on this client (it ended, or its connection was lost)`, {
        reason: ErrorReason.TRANSACTION_NOT_FOUND,
      });
    }
    if (s.conn.broken) {
      this.sessions.delete(id);
      this.pool.release(s.conn);
      throw annotateAttempt(
        new ConnectError(
          `the connection to ${this.endpoint} holding ${s.kind === 'transaction' ? 'this transaction' : 'this session'} was lost; PostgreSQL rolled it back: begin a new one`,
          Code.Unavailable,
        ),
        { endpoint: this.endpoint },
      );
    }
    return s;
  }

  /** Takes a connection from the pool for a new session. */
  async openSession(kind: PgSession['kind'], call: PgCall, setup: (conn: PgConn) => Promise<void>): Promise<PgSession> {
    const conn = await this.acquire(call, false);
    try {
      await setup(conn);
    } catch (e) {
      this.pool.release(conn);
      throw e;
    }
    const s: PgSession = { id: randomUUID(), kind, conn, savepoints: 0 };
    this.sessions.set(s.id, s);
    return s;
  }

  /** Ends a session: its connection goes back to the pool (or is closed when it is not clean). */
  closeSession(s: PgSession): void {
    if (this.sessions.delete(s.id)) this.pool.release(s.conn);
  }

  /** A pooled connection set up for the call (application_name, read-only mode). */
  private async acquire(call: PgCall, readOnly: boolean): Promise<PgConn> {
    let conn: PgConn;
    try {
      conn = await this.pool.acquire(readOnly);
    } catch (e) {
      throw annotateAttempt(fromPgError(e, this.endpoint), { sent: false, endpoint: this.endpoint });
    }
    if (call.signal.aborted) {
      this.pool.release(conn);
      throw annotateAttempt(abortError(call.signal), { sent: false });
    }
    try {
      await this.setUp(conn, call, readOnly);
    } catch (e) {
      conn.broken = true;
      this.pool.release(conn);
      throw annotateAttempt(fromPgError(e, this.endpoint), { sent: false, endpoint: this.endpoint });
    }
    return conn;
  }

  /**
   * Sets application_name and default_transaction_read_only when they differ, with `SET`
   * statements in one round trip (SET, not set_config: a server that shares one session among its
   * clients, as heliosdb's PostgreSQL port on the embedded engine, re-applies SET but refuses
   * set_config).
   */
  private async setUp(conn: PgConn, call: PgCall, readOnly: boolean | undefined): Promise<void> {
    const app = call.header.get(headers.applicationName) ?? this.applicationName;
    const setApp = app !== conn.applicationName;
    const setMode = readOnly !== undefined && readOnly !== conn.readOnly;
    if (!setApp && !setMode) return;
    const parts: string[] = [];
    if (setApp) parts.push(`SET application_name = ${literal(app)}`);
    if (setMode) parts.push(`SET default_transaction_read_only = ${readOnly ? 'on' : 'off'}`);
    await conn.client.query(parts.join('; '));
    conn.applicationName = app;
    if (setMode) conn.readOnly = readOnly;
  }

  /**
   * The call's connection: the session's when `sessionId` is set, otherwise one from the pool
   * (read-only when `readOnly`). `done()` gives a pooled one back (idempotent); an auto-commit
   * call that left a transaction open (BEGIN in its SQL) is rolled back and `done()` rejects.
   */
  async lease(sessionId: string, readOnly: boolean, call: PgCall): Promise<{ conn: PgConn; pooled: boolean; done(): Promise<void> }> {
    if (sessionId) {
      const s = this.session(sessionId);
      try {
        await this.setUp(s.conn, call, undefined);
      } catch (e) {
        throw fromPgError(e, this.endpoint);
      }
      return { conn: s.conn, pooled: false, done: async () => {} };
    }
    const conn = await this.acquire(call, readOnly);
    let released = false;
    const done = async () => {
      if (released) return;
      released = true;
      try {
        if (conn.txStatus !== 'I' && !conn.broken && !conn.cancelled) {
          await conn.client.query('ROLLBACK').catch(() => {
            conn.broken = true;
          });
          throw detailedError(
            Code.FailedPrecondition,
            'the statement left a transaction open outside a transaction; it was rolled back: use client.begin() or client.transaction(), or a reserved session',
            { reason: ErrorReason.TRANSACTION_CONTROL_OUTSIDE_SESSION },
          );
        }
      } finally {
        this.pool.release(conn);
      }
    };
    return { conn, pooled: true, done };
  }

  /** Runs `fn` on the call's connection (see {@link PgBackend.lease}). */
  async withConn<T>(sessionId: string, readOnly: boolean, call: PgCall, fn: (conn: PgConn) => Promise<T>): Promise<T> {
    const l = await this.lease(sessionId, readOnly, call);
    let out: T;
    try {
      out = await fn(l.conn);
    } catch (e) {
      await l.done().catch(() => {});
      throw e;
    }
    await l.done();
    return out;
  }

  /**
   * Sends a statement (or a Submittable) and waits for it; an abort of `signal` sends
   * PostgreSQL's cancel request. A pooled connection that was cancelled is closed afterwards (a
   * late cancel request must not hit its next statement).
   */
  async run<T>(conn: PgConn, call: PgCall, send: () => Promise<T>): Promise<T> {
    if (call.signal.aborted) throw annotateAttempt(abortError(call.signal), { sent: false });
    const onAbort = () => this.cancel(conn);
    call.signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await send();
    } catch (e) {
      // A statement cut short by our cancel: the caller's reason (CANCELLED, or its deadline).
      if (call.signal.aborted && (e as { code?: unknown })?.code === '57014') throw abortError(call.signal);
      throw e;
    } finally {
      call.signal.removeEventListener('abort', onAbort);
    }
  }

  /** Sends the cancel request for what `conn` runs now. */
  cancel(conn: PgConn): void {
    if (![...this.sessions.values()].some((s) => s.conn === conn)) conn.cancelled = true;
    try {
      this.cancelRequest(conn.client);
    } catch {
      // The statement finishes on its own.
    }
  }

  /** One statement with raw text cells, rows as arrays. */
  async query(conn: PgConn, call: PgCall, text: string, values: (string | null)[], name?: string): Promise<RawResult | RawResult[]> {
    conn.tags = [];
    const r = (await this.run(conn, call, () =>
      conn.client.query({ text, values: values.length > 0 ? values : undefined, name, rowMode: 'array', types: rawTypes }),
    )) as RawResult | RawResult[];
    // The whole command tags ('CREATE TABLE', not node-postgres's 'CREATE'), as a server reports them.
    const list = Array.isArray(r) ? r : [r];
    if (conn.tags.length === list.length) {
      for (let i = 0; i < list.length; i++) list[i].tag = conn.tags[i];
    }
    return r;
  }

  /** Names of the given type OIDs, looked up on `conn` when not known yet. */
  async resolveTypes(conn: PgConn, oids: Iterable<number>): Promise<void> {
    await this.types.resolve(oids, (text, values) => conn.client.query({ text, values, rowMode: 'array' }));
  }
}
