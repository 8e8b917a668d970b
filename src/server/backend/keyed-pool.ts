/**
 * A pool of database connections per login under one global cap: each login (a HeliosDB user's
 * PostgreSQL login role, or the server's own) has connections of its own, none is ever handed to
 * a call of another login, and together they never exceed `max`. When every connection is busy,
 * waiting calls are served fairly: a freed connection goes to the waiting login that holds the
 * fewest connections (so one principal flooding the server cannot starve the others), reusing it
 * when the logins match and otherwise closing it and opening one for the waiter. An idle
 * connection of one login is closed to make room for another's when the cap is reached.
 *
 * With `shared` (the embedded engine: one session), connections are interchangeable: the key only
 * decides whose turn it is.
 *
 * pg-pool keeps one pool per configuration and has no global cap across pools, hence this file.
 * @packageDocumentation
 */
import { ErrorReason } from '@heliosdb/client/wire';
import { Code } from '@connectrpc/connect';
import type { Logger } from 'pino';
import { serverError } from '../errors.js';
import { type BackendConnection, isUsable } from './connection.js';
import type { BackendLogin } from './login.js';

/** Options of {@link KeyedPool}. */
export interface KeyedPoolOptions {
  /** Most connections open at once, all logins together. */
  max: number;
  /** Opens a connection for `login` (connected and ready). */
  open(login: BackendLogin): Promise<BackendConnection>;
  /** Closes a connection (never throws). */
  close(conn: BackendConnection): Promise<void>;
  /** An idle connection is closed after this long, ms; 0 keeps it. */
  idleTimeoutMs: number;
  /** Longest wait for a connection, ms. */
  acquireTimeoutMs: number;
  /** Connections are interchangeable between logins (one shared session). */
  shared?: boolean;
  /**
   * Most connections the calls of one login role (`login.user`: a HeliosDB user, its read-write and
   * read-only keys together) hold at once; more wait. The server's own login is not limited.
   * Default: no limit.
   */
  maxBusyPerUser?: number;
  log: Logger;
}

interface Entry {
  readonly conn: BackendConnection;
  readonly key: string;
  idleSince: number;
  isIdle: boolean;
  /** The login key of the call holding it (fairness accounting). */
  holder: string;
  /** The login role of the call holding it ('' for the server's own), for `maxBusyPerUser`. */
  holderUser: string;
  timer?: NodeJS.Timeout;
}

interface Waiter {
  readonly login: BackendLogin;
  resolve(conn: BackendConnection): void;
  reject(e: unknown): void;
  timer: NodeJS.Timeout;
  cleanup(): void;
}

/** Pool counters. */
export interface KeyedPoolStats {
  /** Connections open or opening. */
  total: number;
  idle: number;
  /** Calls waiting for a connection. */
  waiting: number;
  /** Logins with at least one connection. */
  logins: number;
}

/** See the file comment. */
export class KeyedPool {
  private total = 0;
  private readonly idle = new Map<string, Entry[]>();
  private idleCount = 0;
  private readonly entries = new Map<BackendConnection, Entry>();
  /** Connections each key holds (open, opening, idle or busy). */
  private readonly held = new Map<string, number>();
  /** Calls each key has in progress (for fairness). */
  private readonly busy = new Map<string, number>();
  /** Connections held, by login role (`maxBusyPerUser`). */
  private readonly busyUsers = new Map<string, number>();
  private readonly waiters = new Map<string, Waiter[]>();
  private waiting = 0;
  private closed = false;

  constructor(private readonly o: KeyedPoolOptions) {}

  /** Waits for a connection of `login`; fails after `acquireTimeoutMs` or when `signal` aborts. */
  acquire(login: BackendLogin, signal?: AbortSignal): Promise<BackendConnection> {
    if (this.closed)
      return Promise.reject(serverError(Code.Unavailable, 'the server is shutting down', { reason: ErrorReason.SHUTTING_DOWN }));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.atUserLimit(login)) {
      const idle = this.takeIdle(this.keyOf(login));
      if (idle) return Promise.resolve(this.handOut(idle, login));
      if (this.total < this.o.max || this.evictIdle()) return this.openFor(login);
    }
    return new Promise<BackendConnection>((resolve, reject) => {
      const group = login.key;
      const onAbort = () => {
        w.cleanup();
        reject(signal?.reason);
      };
      const w: Waiter = {
        login,
        resolve,
        reject,
        timer: setTimeout(() => {
          w.cleanup();
          reject(
            serverError(
              Code.Unavailable,
              this.atUserLimit(login)
                ? `timed out after ${this.o.acquireTimeoutMs} ms waiting for a database connection: this user's calls already hold ${this.o.maxBusyPerUser}, its limit (--max-connections-per-principal)`
                : `timed out after ${this.o.acquireTimeoutMs} ms waiting for a free database connection (all ${this.o.max} are busy)`,
              {
                reason: ErrorReason.ACQUIRE_TIMEOUT,
                retryable: true,
                retryAfterMs: 1000,
              },
            ),
          );
        }, this.o.acquireTimeoutMs),
        cleanup: () => {
          clearTimeout(w.timer);
          signal?.removeEventListener('abort', onAbort);
          const q = this.waiters.get(group);
          const i = q ? q.indexOf(w) : -1;
          if (q && i >= 0) {
            q.splice(i, 1);
            this.waiting--;
            if (q.length === 0) this.waiters.delete(group);
          }
        },
      };
      w.timer.unref?.();
      signal?.addEventListener('abort', onAbort, { once: true });
      let q = this.waiters.get(group);
      if (!q) this.waiters.set(group, (q = []));
      q.push(w);
      this.waiting++;
    });
  }

  /** Returns a connection; `destroy` closes it instead (after errors that leave it unusable). */
  release(conn: BackendConnection, destroy = false): void {
    const entry = this.entries.get(conn);
    if (!entry) return;
    this.count(this.busy, entry.holder, -1);
    if (entry.holderUser) this.count(this.busyUsers, entry.holderUser, -1);
    entry.holder = '';
    entry.holderUser = '';
    if (destroy || this.closed) {
      this.discard(entry);
      this.dispatch();
      return;
    }
    const w = this.nextWaiter();
    if (!w) {
      this.putIdle(entry);
      return;
    }
    w.cleanup();
    if (this.keyOf(w.login) === entry.key) {
      w.resolve(this.handOut(entry, w.login));
      return;
    }
    // Another login's turn: this connection cannot serve it.
    this.discard(entry);
    this.openFor(w.login).then(w.resolve, w.reject);
  }

  /**
   * Drops an idle connection that broke (its 'error' or 'end'); a busy one is dropped by its
   * caller's `release(conn, true)`.
   */
  forget(conn: BackendConnection): void {
    const entry = this.entries.get(conn);
    if (!entry?.isIdle) return;
    this.removeIdle(entry);
    this.discard(entry);
    this.dispatch();
  }

  /** Counters. */
  stats(): KeyedPoolStats {
    return { total: this.total, idle: this.idleCount, waiting: this.waiting, logins: this.held.size };
  }

  /** Closes the idle connections of one login (after a credential change). */
  closeIdle(key: string): void {
    for (const e of [...(this.idle.get(key) ?? [])]) {
      this.removeIdle(e);
      this.discard(e);
    }
  }

  /** Refuses new calls, fails the waiting ones and closes idle connections; busy ones close on release. */
  async close(): Promise<void> {
    this.closed = true;
    for (const q of [...this.waiters.values()]) {
      for (const w of [...q]) {
        w.cleanup();
        w.reject(serverError(Code.Unavailable, 'the server is shutting down', { reason: ErrorReason.SHUTTING_DOWN }));
      }
    }
    const all = [...this.idle.values()].flat();
    for (const e of all) {
      this.removeIdle(e);
      this.discard(e);
    }
  }

  private keyOf(login: BackendLogin): string {
    return this.o.shared ? '*' : login.key;
  }

  private count(map: Map<string, number>, key: string, delta: number): void {
    const n = (map.get(key) ?? 0) + delta;
    if (n <= 0) map.delete(key);
    else map.set(key, n);
  }

  /** Whether the login's role already holds `maxBusyPerUser` connections. */
  private atUserLimit(login: BackendLogin): boolean {
    const max = this.o.maxBusyPerUser;
    return max !== undefined && !!login.user && (this.busyUsers.get(login.user) ?? 0) >= max;
  }

  /** `userCounted`: the connection was opened for the call, which counted it for its user already. */
  private handOut(entry: Entry, login: BackendLogin, userCounted = false): BackendConnection {
    entry.holder = login.key;
    entry.holderUser = login.user ?? '';
    this.count(this.busy, login.key, 1);
    if (entry.holderUser && !userCounted) this.count(this.busyUsers, entry.holderUser, 1);
    return entry.conn;
  }

  private async openFor(login: BackendLogin): Promise<BackendConnection> {
    const key = this.keyOf(login);
    this.total++;
    this.count(this.held, key, 1);
    // Counted for its user while it opens, so that concurrent calls cannot pass the user's limit.
    if (login.user) this.count(this.busyUsers, login.user, 1);
    let conn: BackendConnection;
    try {
      conn = await this.o.open(login);
    } catch (e) {
      this.total--;
      this.count(this.held, key, -1);
      if (login.user) this.count(this.busyUsers, login.user, -1);
      this.dispatch();
      throw e;
    }
    const entry: Entry = { conn, key, idleSince: 0, isIdle: false, holder: '', holderUser: '' };
    this.entries.set(conn, entry);
    if (this.closed) {
      if (login.user) this.count(this.busyUsers, login.user, -1);
      this.discard(entry);
      throw serverError(Code.Unavailable, 'the server is shutting down', { reason: ErrorReason.SHUTTING_DOWN });
    }
    return this.handOut(entry, login, true);
  }

  /** The waiter to serve next: of the waiting logins, the one with the fewest calls in progress; its oldest call. */
  private nextWaiter(): Waiter | undefined {
    let best: Waiter[] | undefined;
    let bestBusy = Infinity;
    for (const [group, q] of this.waiters) {
      if (this.atUserLimit(q[0]!.login)) continue;
      const b = this.busy.get(group) ?? 0;
      if (b < bestBusy) {
        best = q;
        bestBusy = b;
      }
    }
    return best?.[0];
  }

  /** Opens connections for waiters while there is room. */
  private dispatch(): void {
    while (!this.closed && this.waiting > 0) {
      const w = this.nextWaiter();
      if (!w) return;
      const idle = this.takeIdle(this.keyOf(w.login));
      if (idle) {
        w.cleanup();
        w.resolve(this.handOut(idle, w.login));
        continue;
      }
      if (this.total >= this.o.max && !this.evictIdle()) return;
      w.cleanup();
      this.openFor(w.login).then(w.resolve, w.reject);
    }
  }

  private takeIdle(key: string): Entry | undefined {
    const list = this.idle.get(key);
    const e = list?.pop();
    if (!e) return undefined;
    if (!isUsable(e.conn)) {
      // Broke while idle, its 'error' not seen yet: drop it and look again.
      if (list!.length === 0) this.idle.delete(key);
      this.idleCount--;
      e.isIdle = false;
      if (e.timer) clearTimeout(e.timer);
      this.discard(e);
      return this.takeIdle(key);
    }
    if (list!.length === 0) this.idle.delete(key);
    this.idleCount--;
    e.isIdle = false;
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
    return e;
  }

  private putIdle(e: Entry): void {
    e.idleSince = Date.now();
    let list = this.idle.get(e.key);
    if (!list) this.idle.set(e.key, (list = []));
    list.push(e);
    this.idleCount++;
    e.isIdle = true;
    if (this.o.idleTimeoutMs > 0) {
      e.timer = setTimeout(() => {
        this.removeIdle(e);
        this.discard(e);
      }, this.o.idleTimeoutMs);
      e.timer.unref?.();
    }
  }

  private removeIdle(e: Entry): void {
    const list = this.idle.get(e.key);
    const i = list ? list.indexOf(e) : -1;
    if (list && i >= 0) {
      list.splice(i, 1);
      this.idleCount--;
      if (list.length === 0) this.idle.delete(e.key);
    }
    e.isIdle = false;
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
  }

  /** Closes the least recently used idle connection to make room; false when none is idle. */
  private evictIdle(): boolean {
    let oldest: Entry | undefined;
    for (const list of this.idle.values()) {
      const e = list[0];
      if (e && (!oldest || e.idleSince < oldest.idleSince)) oldest = e;
    }
    if (!oldest) return false;
    this.removeIdle(oldest);
    this.discard(oldest);
    return true;
  }

  private discard(e: Entry): void {
    if (!this.entries.delete(e.conn)) return;
    this.total--;
    this.count(this.held, e.key, -1);
    void this.o.close(e.conn).catch((err) => this.o.log.debug({ err }, 'closing a database connection failed'));
  }
}
