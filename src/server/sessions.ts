/**
 * Interactive transactions: server-side sessions, each bound to one database connection, rolled
 * back after an idle timeout, capped in number. Calls on one session run one at a time.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import type { Logger } from 'pino';
import type { Backend, BackendConnection } from './backend.js';
import { reasons, serverError } from './errors.js';

/** One open transaction. */
export interface Session {
  readonly id: string;
  readonly conn: BackendConnection;
  /** Calls using the session right now. */
  active: number;
  timer: NodeJS.Timeout | undefined;
  /** Serialises calls: each call chains on the previous one. */
  tail: Promise<void>;
  closed: boolean;
  /** Who opened it (see `ownerKeyOf`); only the same principal may use it. */
  readonly owner: string;
}

/** See the file comment. */
export class SessionManager {
  private readonly sessions = new Map<string, Session>();
  /** Ids rolled back by the idle timeout, remembered so their next call says so. */
  private readonly expired = new Map<string, number>();

  constructor(
    private readonly backend: Backend,
    private readonly idleTimeoutMs: number,
    private readonly maxOpen: number,
    private readonly log: Logger,
  ) {}

  /** Open sessions. */
  get size(): number {
    return this.sessions.size;
  }

  /**
   * Opens a session on a fresh connection and runs `beginSql` on it, after `prepare` (the
   * principal's role). Only calls with the same `owner` may use it.
   */
  async begin(beginSql: string, opts: { owner?: string; prepare?: (conn: BackendConnection) => Promise<void> } = {}): Promise<Session> {
    if (this.sessions.size >= this.maxOpen) {
      throw serverError(Code.ResourceExhausted, `too many open transactions (limit ${this.maxOpen})`, {
        reason: reasons.tooManyTransactions,
        retryable: true,
        retryAfterMs: 1000,
      });
    }
    const conn = await this.backend.acquire();
    try {
      await opts.prepare?.(conn);
      await conn.query(beginSql);
    } catch (e) {
      this.backend.release(conn, true);
      throw e;
    }
    const id = randomBytes(16).toString('base64url');
    const session: Session = { id, conn, active: 0, timer: undefined, tail: Promise.resolve(), closed: false, owner: opts.owner ?? '' };
    this.sessions.set(id, session);
    this.arm(session);
    return session;
  }

  /**
   * Runs `fn` on the session's connection after the session's earlier calls, keeping the idle timer
   * off while it runs. Unknown and expired ids fail with NOT_FOUND / FAILED_PRECONDITION.
   */
  async use<T>(id: string, fn: (conn: BackendConnection, session: Session) => Promise<T>, owner?: string): Promise<T> {
    const session = this.get(id, owner);
    session.active++;
    if (session.timer) clearTimeout(session.timer);
    session.timer = undefined;
    const prev = session.tail;
    let done!: () => void;
    session.tail = new Promise<void>((r) => (done = r));
    try {
      await prev;
      if (session.closed) throw this.gone(id);
      return await fn(session.conn, session);
    } finally {
      // A cancel sent during this call must land before the session's next statement starts.
      const cancel = session.conn.heliosCancel;
      if (cancel) {
        await cancel;
        session.conn.heliosCancel = undefined;
      }
      session.active--;
      done();
      if (!session.closed) this.arm(session);
    }
  }

  /**
   * Ends a session: runs `endSql` (COMMIT or ROLLBACK) and returns its connection. `before` runs
   * on the session's connection first (recording an idempotency key); when it throws, the
   * transaction is rolled back instead and the error passed on.
   */
  async end(
    id: string,
    endSql: string,
    owner?: string,
    before?: (conn: BackendConnection, session: Session) => Promise<void>,
  ): Promise<{ command: string }> {
    return this.use(id, async (conn, session) => {
      let broken = false;
      try {
        if (before) {
          try {
            await before(conn, session);
          } catch (e) {
            await conn.query('ROLLBACK').catch(() => (broken = true));
            throw e;
          }
        }
        try {
          return await conn.query(endSql);
        } catch (e) {
          broken = true;
          throw e;
        }
      } finally {
        this.close(session, broken || conn._txStatus !== 'I');
      }
    }, owner);
  }

  /**
   * Rolls back every open session (shutdown), each after the call running on it (a Commit in
   * flight still completes); calls arriving later find the transaction gone.
   */
  async closeAll(): Promise<void> {
    await Promise.all(
      [...this.sessions.keys()].map((id) =>
        this.use(id, async (conn, session) => {
          let broken = false;
          try {
            await conn.query('ROLLBACK');
          } catch {
            broken = true;
          }
          this.close(session, broken);
        }).catch(() => {}),
      ),
    );
  }

  private get(id: string, owner?: string): Session {
    const session = this.sessions.get(id);
    // Another principal's transaction is as unknown to a caller as one that never existed.
    if (session && (owner === undefined || owner === session.owner)) return session;
    throw this.gone(id);
  }

  private gone(id: string) {
    if (this.expired.has(id)) {
      return serverError(
        Code.FailedPrecondition,
        `transaction ${id} was rolled back after ${this.idleTimeoutMs} ms without a call (the server's transaction idle timeout)`,
        { reason: reasons.transactionExpired },
      );
    }
    return serverError(Code.NotFound, `transaction ${JSON.stringify(id)} is not open on this server (never begun, already finished, or the server restarted)`, {
      reason: reasons.transactionNotFound,
    });
  }

  private arm(session: Session): void {
    if (session.timer) clearTimeout(session.timer);
    session.timer = setTimeout(() => void this.expire(session), this.idleTimeoutMs);
    session.timer.unref();
  }

  private async expire(session: Session): Promise<void> {
    if (session.closed || session.active > 0) return;
    this.log.info({ transactionId: session.id }, 'rolling back idle transaction');
    this.expired.set(session.id, Date.now());
    if (this.expired.size > 10_000) {
      const oldest = this.expired.keys().next().value;
      if (oldest !== undefined) this.expired.delete(oldest);
    }
    session.closed = true;
    this.sessions.delete(session.id);
    try {
      await session.conn.query('ROLLBACK');
      this.backend.release(session.conn);
    } catch {
      this.backend.release(session.conn, true);
    }
  }

  private close(session: Session, destroy: boolean): void {
    if (session.closed) return;
    session.closed = true;
    if (session.timer) clearTimeout(session.timer);
    this.sessions.delete(session.id);
    this.backend.release(session.conn, destroy);
  }
}
