/**
 * Server-side sessions, each bound to one database connection: interactive transactions
 * (BeginTransaction) and reserved sessions (ReserveSession, a connection kept for one caller with
 * its session state). Calls on one session run one at a time; a session unused for the idle
 * timeout is ended (a transaction rolled back); their number is capped, in all and per principal,
 * so one principal cannot hold every database connection. An ended session's connection is
 * cleared of everything the caller left on it before it is reused.
 * @packageDocumentation
 */
import { ErrorReason } from '@heliosdb/client/wire';
import { randomBytes } from 'node:crypto';
import { Code } from '@connectrpc/connect';
import type { Logger } from 'pino';
import type { Backend, BackendConnection, BackendLogin } from './backend.js';
import { isUsable, stateOf, txStatusOf } from './backend/connection.js';
import { recycle } from './backend/recycle.js';
import { abortError } from './call-context.js';
import { serverError } from './errors.js';

/** What a session is. */
export type SessionKind = 'transaction' | 'reserved';

/** One open session. */
export interface Session {
  readonly id: string;
  readonly kind: SessionKind;
  readonly conn: BackendConnection;
  /** Who opened it (see `ownerKeyOf`); only the same principal may use it. */
  readonly owner: string;
  /** A transaction begun READ ONLY (its Commit records nothing). */
  readonly readOnly: boolean;
  /** Calls using the session right now. */
  active: number;
  timer: NodeJS.Timeout | undefined;
  /** Serialises calls: each call chains on the previous one. */
  tail: Promise<void>;
  closed: boolean;
  /** Stops watching the connection for its loss (when the session ends; the connection lives on). */
  unwatch: () => void;
}

/** Limits of {@link SessionManager}. */
export interface SessionLimits {
  idleTimeoutMs: number;
  /** Most sessions open at once. */
  maxOpen: number;
  /**
   * Most sessions one authenticated principal may hold (anonymous callers, who are all one
   * trusted principal, only count against `maxOpen`).
   */
  maxPerPrincipal: number;
}

/** See the file comment. */
export class SessionManager {
  private readonly sessions = new Map<string, Session>();
  private readonly perOwner = new Map<string, number>();
  /** Ids ended by the idle timeout, remembered so their next call says so. */
  private readonly expired = new Map<string, number>();
  /** Ids whose database connection broke, remembered so their next call says so. */
  private readonly lost = new Map<string, number>();

  constructor(
    private readonly backend: Backend,
    private readonly limits: SessionLimits,
    private readonly log: Logger,
  ) {}

  /** Open sessions. */
  get size(): number {
    return this.sessions.size;
  }

  /** The kind of an open session, or undefined when the id names none. */
  kindOf(id: string): SessionKind | undefined {
    return this.sessions.get(id)?.kind;
  }

  /**
   * Opens a session on a fresh connection of `login`: `setup` runs on it first (a transaction's
   * BEGIN); only calls with the same `owner` may use it.
   */
  async open(
    kind: SessionKind,
    opts: {
      owner: string;
      login: BackendLogin;
      readOnly?: boolean;
      signal?: AbortSignal;
      setup?: (conn: BackendConnection) => Promise<void>;
    },
  ): Promise<Session> {
    this.checkLimits(opts.owner);
    // Counted from now, so concurrent opens cannot pass the caps together.
    this.count(opts.owner, 1);
    let conn: BackendConnection;
    try {
      conn = await this.backend.acquire(opts.login, opts.signal);
    } catch (e) {
      this.count(opts.owner, -1);
      throw e;
    }
    try {
      await opts.setup?.(conn);
    } catch (e) {
      this.count(opts.owner, -1);
      void recycle(this.backend, conn, { destroy: !(e && typeof e === 'object' && 'severity' in e) });
      throw e;
    }
    const id = randomBytes(16).toString('base64url');
    const session: Session = {
      id,
      kind,
      conn,
      owner: opts.owner,
      readOnly: opts.readOnly ?? false,
      active: 0,
      timer: undefined,
      tail: Promise.resolve(),
      closed: false,
      unwatch: () => {},
    };
    this.sessions.set(id, session);
    this.arm(session);
    // A session whose database connection breaks is over at once: its transaction is gone, and
    // its pool slot goes back instead of waiting for the idle timeout.
    const lost = () => {
      if (session.closed || session.active > 0) return;
      this.log.info({ transactionId: id }, 'a session lost its database connection');
      remember(this.lost, id);
      this.close(session, true);
    };
    conn.once('error', lost);
    conn.once('end', lost);
    session.unwatch = () => {
      conn.removeListener('error', lost);
      conn.removeListener('end', lost);
    };
    return session;
  }

  /**
   * Runs `fn` on the session's connection after the session's earlier calls, keeping the idle timer
   * off while it runs. Unknown and expired ids fail with NOT_FOUND / FAILED_PRECONDITION. When
   * `signal` aborts, the call is answered at once; the session's next call waits until the
   * statement has ended in the database.
   */
  async use<T>(
    id: string,
    fn: (conn: BackendConnection, session: Session) => Promise<T>,
    owner: string,
    kind?: SessionKind,
    signal?: AbortSignal,
  ): Promise<T> {
    const session = this.get(id, owner, kind);
    session.active++;
    if (session.timer) clearTimeout(session.timer);
    session.timer = undefined;
    const prev = session.tail;
    let done!: () => void;
    session.tail = new Promise<void>((r) => (done = r));
    const work = (async () => {
      try {
        await prev;
        if (session.closed) throw this.gone(id, session.kind);
        // The caller left while the call waited its turn: it must not run.
        if (signal?.aborted) throw abortError(signal);
        return await fn(session.conn, session);
      } finally {
        // A cancel sent during this call must land before the session's next statement starts.
        const state = stateOf(session.conn);
        if (state.cancel) {
          await state.cancel;
          state.cancel = undefined;
        }
        session.active--;
        done();
        if (!session.closed && !isUsable(session.conn)) {
          // Its connection broke during this call: the session is over.
          remember(this.lost, id);
          this.close(session, true);
        }
        if (!session.closed) this.arm(session);
      }
    })();
    if (!signal) return work;
    return raceAbort(work, signal);
  }

  /**
   * Ends a transaction: runs `endSql` (COMMIT or ROLLBACK) and returns its connection. `before`
   * runs on the session's connection first (recording an idempotency key); when it throws, the
   * transaction is rolled back instead and the error passed on. The outcome of a COMMIT whose
   * connection broke is unknown: the error says so.
   */
  async end(
    id: string,
    endSql: 'COMMIT' | 'ROLLBACK',
    owner: string,
    before?: (conn: BackendConnection, session: Session) => Promise<void>,
  ): Promise<{ command: string }> {
    return this.use(
      id,
      async (conn, session) => {
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
            const r = await conn.query(endSql);
            return { command: r.command };
          } catch (e) {
            broken = !(e && typeof e === 'object' && 'severity' in e);
            if (broken && endSql === 'COMMIT') {
              throw serverError(
                Code.Unavailable,
                `the database connection was lost while the transaction committed, so whether it committed is unknown: ${e instanceof Error ? e.message : String(e)}`,
                { reason: ErrorReason.BACKEND_CONNECTION_LOST, retryable: false },
              );
            }
            throw e;
          }
        } finally {
          this.close(session, broken);
        }
      },
      owner,
      'transaction',
    );
  }

  /** Releases a reserved session: clears its connection and returns it. */
  async release(id: string, owner: string): Promise<void> {
    await this.use(
      id,
      async (_conn, session) => {
        this.close(session, false);
      },
      owner,
      'reserved',
    );
  }

  /**
   * Ends every open session (shutdown), each after the call running on it (a Commit in flight
   * still completes); calls arriving later find it gone.
   */
  async closeAll(): Promise<void> {
    await Promise.all(
      [...this.sessions.values()].map((s) => this.use(s.id, async (_conn, session) => this.close(session, false), s.owner).catch(() => {})),
    );
  }

  private checkLimits(owner: string): void {
    if (this.sessions.size >= this.limits.maxOpen) {
      throw serverError(Code.ResourceExhausted, `too many open transactions and sessions (limit ${this.limits.maxOpen})`, {
        reason: ErrorReason.TOO_MANY_TRANSACTIONS,
        retryable: true,
        retryAfterMs: 1000,
      });
    }
    if (owner !== '' && (this.perOwner.get(userOf(owner)) ?? 0) >= this.limits.maxPerPrincipal) {
      throw serverError(
        Code.ResourceExhausted,
        `this user already holds ${this.limits.maxPerPrincipal} open transactions and reserved sessions (its API keys together), its limit (--max-transactions-per-principal); end one first`,
        { reason: ErrorReason.TOO_MANY_TRANSACTIONS, retryable: true, retryAfterMs: 1000 },
      );
    }
  }

  private count(owner: string, delta: number): void {
    const user = userOf(owner);
    const n = (this.perOwner.get(user) ?? 0) + delta;
    if (n <= 0) this.perOwner.delete(user);
    else this.perOwner.set(user, n);
  }

  private get(id: string, owner: string, kind?: SessionKind): Session {
    const session = this.sessions.get(id);
    // Another principal's session is as unknown to a caller as one that never existed.
    if (session && owner === session.owner && (kind === undefined || kind === session.kind)) return session;
    throw this.gone(id, kind ?? session?.kind ?? 'transaction');
  }

  private gone(id: string, kind: SessionKind) {
    const what = kind === 'reserved' ? 'reserved session' : 'transaction';
    if (this.lost.has(id)) {
      return serverError(
        Code.NotFound,
        `${what} ${JSON.stringify(id)} lost its database connection, so it is over${kind === 'transaction' ? ' (rolled back: it did not commit)' : ''}`,
        {
          reason: ErrorReason.TRANSACTION_NOT_FOUND,
        },
      );
    }
    if (this.expired.has(id)) {
      return serverError(
        Code.FailedPrecondition,
        kind === 'reserved'
          ? `reserved session ${id} was released after ${this.limits.idleTimeoutMs} ms without a call (the server's idle timeout)`
          : `transaction ${id} was rolled back after ${this.limits.idleTimeoutMs} ms without a call (the server's transaction idle timeout)`,
        { reason: ErrorReason.TRANSACTION_EXPIRED },
      );
    }
    return serverError(
      Code.NotFound,
      `${what} ${JSON.stringify(id)} is not open on this server (never begun, already finished, or the server restarted)`,
      {
        reason: ErrorReason.TRANSACTION_NOT_FOUND,
      },
    );
  }

  private arm(session: Session): void {
    if (session.timer) clearTimeout(session.timer);
    session.timer = setTimeout(() => void this.expire(session), this.limits.idleTimeoutMs);
    session.timer.unref();
  }

  private expire(session: Session): void {
    if (session.closed || session.active > 0) return;
    this.log.info(
      { transactionId: session.id, kind: session.kind },
      session.kind === 'reserved' ? 'releasing idle reserved session' : 'rolling back idle transaction',
    );
    remember(this.expired, session.id);
    this.close(session, false);
  }

  /** Marks a session ended and gives its connection back (cleared, or destroyed). */
  private close(session: Session, destroy: boolean): void {
    if (session.closed) return;
    session.closed = true;
    session.unwatch();
    if (session.timer) clearTimeout(session.timer);
    this.sessions.delete(session.id);
    this.count(session.owner, -1);
    void recycle(this.backend, session.conn, { destroy });
  }
}

/** Remembers an ended id (bounded: the oldest are forgotten first). */
function remember(map: Map<string, number>, id: string): void {
  map.set(id, Date.now());
  if (map.size > 10_000) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
}

/**
 * Resolves or rejects with `work`, or rejects at once with the abort error when `signal` aborts
 * first (`work` goes on; its eventual failure is handled).
 */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(abortError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => {});
      reject(abortError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(signal.aborted ? abortError(signal) : e);
      },
    );
  });
}

/** Whether the connection is still inside the transaction a session began. */
export function inTransactionBlock(conn: BackendConnection): boolean {
  return txStatusOf(conn) !== 'I';
}

/** The user of an owner key (see ownerKeyOf): the limits count a user's keys together. */
function userOf(owner: string): string {
  const i = owner.indexOf('\u0000');
  return i < 0 ? owner : owner.slice(0, i);
}
