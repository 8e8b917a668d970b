/**
 * LISTEN / NOTIFY for callers: the server holds one listening database connection per login (per
 * principal's login role under authentication, opened outside the pool of --pool-size; the
 * embedded engine's one session) and fans each
 * notification out to the Listen streams that asked for its channel. A connection that breaks is
 * replaced, its channels listened to again, and every subscriber told that notifications may
 * have been missed in between (a gap). On the embedded engine, whose one session callers share,
 * every call's reset listens again on the channels a caller's statement dropped (`UNLISTEN`,
 * `DISCARD ALL`, also inside a function or `DO` block; see Backend.keepListening), and their
 * subscribers get the same gap. Each notification goes to the subscribers of the listener whose
 * connection received it. A subscriber that does not keep up loses notifications
 * beyond a bound, and is told so the same way.
 * @packageDocumentation
 */
import type { Logger } from 'pino';
import type { Principal } from './auth/principal.js';
import type { Backend, BackendConnection, BackendLogin } from './backend.js';
import type { LoginResolver } from './backend/logins.js';
import { serverLogin } from './backend/login.js';
import { recycle } from './backend/recycle.js';
import { quoteIdent } from './sql-quote.js';

/** One notification. */
export interface NotificationEvent {
  channel: string;
  payload: string;
  processId: number;
}

/** What a subscriber is told. */
export interface Subscriber {
  onNotification(n: NotificationEvent): void;
  /** Notifications may have been missed (`reason` says why). */
  onGap(reason: string): void;
  /** The server shuts down: no more notifications. */
  onClose(): void;
}

/** A subscription; `close()` stops it (idempotent). */
export interface Subscription {
  close(): void;
}

interface Listener {
  readonly login: BackendLogin;
  conn: BackendConnection | undefined;
  /** Subscribers by channel. */
  readonly channels: Map<string, Set<Subscriber>>;
  /** Channels its LISTEN succeeded on and no UNLISTEN was sent for. */
  readonly listening: Set<string>;
  /** Serialises LISTEN / UNLISTEN / reconnects on the connection. */
  tail: Promise<void>;
  closed: boolean;
}

const reconnectDelayMs = 500;

/** See the file comment. */
export class NotificationHub {
  private readonly listeners = new Map<string, Listener>();
  private readonly attached = new WeakSet<BackendConnection>();
  private closed = false;

  constructor(
    private readonly backend: Backend,
    private readonly logins: LoginResolver,
    private readonly log: Logger,
  ) {
    // The embedded engine's one session: a caller's UNLISTEN (even inside a DO block or a
    // function) or DISCARD ALL ends the server's listens too; every call's reset listens again.
    backend.keepListening?.(
      () => [...(this.listeners.get('pglite')?.listening ?? [])],
      (channels) => this.dropped(channels),
    );
  }

  /** Subscribers, all channels together. */
  get size(): number {
    let n = 0;
    for (const l of this.listeners.values()) for (const s of l.channels.values()) n += s.size;
    return n;
  }

  /** Listens on `channels` for `principal`; resolves once the database listens on every one. */
  async subscribe(principal: Principal, channels: readonly string[], sub: Subscriber): Promise<Subscription> {
    await this.logins.ready(principal);
    const login = this.logins.loginOf(principal);
    // One listener per login; on the embedded engine every login shares its one session.
    const listener = this.listenerFor(this.backend.engine === 'pglite' ? 'pglite' : login.key, login);
    const { added, subscription } = this.register(listener, channels, sub);
    try {
      await this.serial(listener, () => this.listen(listener, added));
    } catch (e) {
      subscription.close();
      throw e;
    }
    return subscription;
  }

  /**
   * Subscribes `sub` to `channel` on the embedded engine's session, whose holder (the pg port's
   * scheduler) has just run LISTEN on it: from now on the server keeps that listen across calls'
   * resets, as its own.
   */
  adoptEngineListen(channel: string, sub: Subscriber, conn: BackendConnection): Subscription {
    const listener = this.listenerFor('pglite', serverLogin);
    // What the session receives while calls have it comes through the connection's events.
    this.attach(listener, conn);
    const { subscription } = this.register(listener, [channel], sub);
    listener.listening.add(channel);
    return subscription;
  }

  /** The channels the server listens on in the embedded engine's session (its own, not callers'). */
  engineChannels(): string[] {
    return [...(this.listeners.get('pglite')?.listening ?? [])];
  }

  /** A notification the embedded engine sent to the pg port's scheduler, which held its session. */
  deliverEngineNotification(n: NotificationEvent): void {
    const l = this.listeners.get('pglite');
    if (l) this.deliver(l, n);
  }

  private listenerFor(key: string, login: BackendLogin): Listener {
    let l = this.listeners.get(key);
    if (!l)
      this.listeners.set(
        key,
        (l = { login, conn: undefined, channels: new Map(), listening: new Set(), tail: Promise.resolve(), closed: false }),
      );
    return l;
  }

  /** Adds `sub` to `channels` of `listener`: the channels that had no subscriber, and the subscription. */
  private register(listener: Listener, channels: readonly string[], sub: Subscriber): { added: string[]; subscription: Subscription } {
    const added: string[] = [];
    for (const ch of new Set(channels)) {
      let set = listener.channels.get(ch);
      if (!set) {
        listener.channels.set(ch, (set = new Set()));
        added.push(ch);
      }
      set.add(sub);
    }
    let closed = false;
    const subscription: Subscription = {
      close: () => {
        if (closed) return;
        closed = true;
        const removed: string[] = [];
        for (const ch of new Set(channels)) {
          const set = listener.channels.get(ch);
          set?.delete(sub);
          if (set && set.size === 0) {
            listener.channels.delete(ch);
            removed.push(ch);
          }
        }
        if (removed.length > 0) void this.serial(listener, () => this.unlisten(listener, removed));
      },
    };
    return { added, subscription };
  }

  /** Ends every listener (shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    for (const l of this.listeners.values()) {
      l.closed = true;
      for (const set of l.channels.values()) for (const s of set) s.onClose();
      l.channels.clear();
      await this.serial(l, async () => this.drop(l, true));
    }
    this.listeners.clear();
  }

  private serial(l: Listener, fn: () => Promise<void>): Promise<void> {
    const next = l.tail.then(fn);
    l.tail = next.catch(() => {});
    return next;
  }

  /** The listener's connection, opened (and attached) when it has none. */
  private async connection(l: Listener): Promise<BackendConnection> {
    if (l.conn) return l.conn;
    // PostgreSQL: a connection of its own, outside the pool, so that listening never starves calls.
    const conn = this.backend.openDedicated ? await this.backend.openDedicated(l.login) : await this.backend.acquire(l.login);
    this.attach(l, conn);
    if (this.backend.engine === 'pglite') {
      // One shared session: the LISTEN stays on it between calls (its reset keeps listens).
      return conn;
    }
    l.conn = conn;
    return conn;
  }

  /** Hands the connection's notifications to the listener's subscribers (once per connection). */
  private attach(l: Listener, conn: BackendConnection): void {
    if (this.attached.has(conn)) return;
    this.attached.add(conn);
    // Only this listener's subscribers: on PostgreSQL every login's connection that listens on a
    // channel receives each of its notifications, so delivering to all would deliver it twice.
    conn.on('notification', (msg: { channel: string; payload?: string; processId: number }) => this.deliver(l, msg));
    conn.on('error', () => this.lost(l, conn));
    conn.on('end', () => this.lost(l, conn));
  }

  /** Gives a borrowed connection back (the embedded engine: listens outlive the call). */
  private done(conn: BackendConnection): void {
    if (this.backend.engine === 'pglite') this.backend.release(conn);
  }

  private async listen(l: Listener, channels: string[]): Promise<void> {
    if (channels.length === 0) return;
    const conn = await this.connection(l);
    try {
      await conn.query(channels.map((ch) => `LISTEN ${quoteIdent(ch)}`).join('; '));
      for (const ch of channels) if (l.channels.has(ch)) l.listening.add(ch);
    } finally {
      this.done(conn);
    }
  }

  private async unlisten(l: Listener, removed: string[]): Promise<void> {
    if (l.closed) return;
    // Channels subscribed to again since are kept.
    const channels = removed.filter((ch) => !l.channels.has(ch));
    if (channels.length === 0) return;
    for (const ch of channels) l.listening.delete(ch);
    if (l.channels.size === 0 && this.backend.engine !== 'pglite') {
      await this.drop(l, false);
      return;
    }
    const conn = l.conn ?? (this.backend.engine === 'pglite' ? await this.connection(l) : undefined);
    if (!conn) return;
    try {
      await conn.query(channels.map((ch) => `UNLISTEN ${quoteIdent(ch)}`).join('; '));
    } catch (e) {
      this.log.debug({ err: e }, 'UNLISTEN failed');
    } finally {
      this.done(conn);
    }
  }

  /** Gives the listener's connection back, cleared (or closed). */
  private async drop(l: Listener, shuttingDown: boolean): Promise<void> {
    const conn = l.conn;
    l.conn = undefined;
    if (!conn) return;
    if (this.backend.closeDedicated) this.backend.closeDedicated(conn);
    else await recycle(this.backend, conn, { destroy: shuttingDown });
  }

  private deliver(l: Listener, msg: { channel: string; payload?: string; processId: number }): void {
    const event: NotificationEvent = { channel: msg.channel, payload: msg.payload ?? '', processId: msg.processId };
    const set = l.channels.get(msg.channel);
    if (set) for (const s of set) s.onNotification(event);
  }

  /**
   * A call on the embedded engine's session dropped these channels (`UNLISTEN`, `DISCARD ALL`,
   * also inside a function or `DO` block); its reset listened on them again: tell their
   * subscribers notifications may have been missed.
   */
  private dropped(channels: readonly string[]): void {
    const l = this.listeners.get('pglite');
    if (!l || l.closed || this.closed) return;
    const reason =
      "a call's statement ended the embedded engine session's listens on this channel (UNLISTEN or DISCARD ALL); the server listens again: notifications sent meanwhile may be missing";
    const told = new Set<Subscriber>();
    for (const ch of channels) for (const s of l.channels.get(ch) ?? []) told.add(s);
    for (const s of told) s.onGap(reason);
  }

  /** The listener's connection broke: listen again on a new one, telling every subscriber. */
  private lost(l: Listener, conn: BackendConnection): void {
    if (l.conn !== conn || l.closed || this.closed) return;
    l.conn = undefined;
    if (this.backend.closeDedicated) this.backend.closeDedicated(conn);
    else this.backend.release(conn, true);
    const reason = 'the server lost its database connection and listens again: notifications sent meanwhile may be missing';
    for (const set of l.channels.values()) for (const s of set) s.onGap(reason);
    const retry = () => {
      if (l.closed || this.closed || l.channels.size === 0) return;
      void this.serial(l, () => this.listen(l, [...l.channels.keys()])).catch((e) => {
        this.log.warn({ err: e }, 'listening again failed; retrying');
        setTimeout(retry, reconnectDelayMs).unref();
      });
    };
    setTimeout(retry, reconnectDelayMs).unref();
  }
}
