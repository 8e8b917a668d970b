/**
 * The PostgreSQL transport's connection pool: node-postgres clients, one call each at a time,
 * with the same counters as the gRPC channel pool (`PoolCounters`), a wait for a free connection
 * bounded by `acquisitionTimeoutMs`, idle and lifetime limits, and the transaction status each
 * connection last reported (`ReadyForQuery`). Node only.
 * @packageDocumentation
 */
import type pg from 'pg';
import { ConnectionTimeoutError, HeliosDBError } from '../errors.js';
import type { PoolCounters } from '../pool-stats.js';

/** One pooled connection. */
export interface PgConn {
  readonly client: pg.Client;
  readonly createdAt: number;
  /** The transaction status of the last ReadyForQuery: `I` idle, `T` in a transaction, `E` failed one. */
  txStatus: string;
  /** The application_name the connection has now. */
  applicationName: string;
  /** Whether its default_transaction_read_only is on. */
  readOnly: boolean;
  /** Set when the connection failed: it is closed instead of reused. */
  broken: boolean;
  /** Set when a cancel request was sent for it: it is closed instead of reused. */
  cancelled: boolean;
  /** When it was last given back (ms since the epoch). */
  idleSince: number;
  /** The command tags PostgreSQL sent since the last statement began (node-postgres keeps only their first word). */
  tags: string[];
}

/** Options of {@link PgPool}. */
export interface PgPoolOptions {
  /** Opens a connected client. */
  connect(): Promise<pg.Client>;
  /** The application_name new connections start with. */
  applicationName: string;
  maxConnections: number;
  minConnections: number;
  acquisitionTimeoutMs: number;
  /** Idle connections beyond `minConnections` are closed after this long; 0 keeps them. */
  idleTimeoutSeconds: number;
  /** Connections are closed when given back after this long; 0 keeps them. */
  maxLifetimeSeconds: number;
}

interface Waiter {
  resolve(c: PgConn): void;
  reject(e: unknown): void;
  timer: NodeJS.Timeout;
}

/** See the file comment. */
export class PgPool {
  private readonly idle: PgConn[] = [];
  private readonly busy = new Set<PgConn>();
  private readonly waiters: Waiter[] = [];
  /** Connections being opened. */
  private opening = 0;
  private closedPool = false;
  private readonly sweep: NodeJS.Timeout;
  private readonly counters = { poolHits: 0, poolMisses: 0, created: 0, closed: 0, acquisitionTimeouts: 0 };

  /** Connections opened ahead of calls (`minConnections`) that no call has claimed yet. */
  private readonly warming: Promise<PgConn>[] = [];

  constructor(private readonly opts: PgPoolOptions) {
    this.sweep = setInterval(() => this.trimIdle(), 1000);
    this.sweep.unref();
    // One connection at once (a PostgreSQL connection is a server process): the rest of
    // `minConnections` open on demand and are then kept, idle or not.
    for (let i = 0; i < Math.min(1, opts.minConnections); i++) {
      const p = this.open();
      this.warming.push(p);
      p.then(
        (c) => {
          const at = this.warming.indexOf(p);
          if (at < 0) return; // a call took it
          this.warming.splice(at, 1);
          this.release(c);
        },
        () => {
          const at = this.warming.indexOf(p);
          if (at >= 0) this.warming.splice(at, 1);
        },
      );
    }
  }

  /**
   * A connection for one call, preferring an idle one already in the wanted read-only mode; waits
   * for one when all `maxConnections` are busy.
   */
  acquire(readOnly = false): Promise<PgConn> {
    if (this.closedPool) return Promise.reject(new HeliosDBError('the client is closed', 'CLIENT_CLOSED'));
    // Idle connections the server closed meanwhile are dropped, not handed out.
    for (let i = this.idle.length - 1; i >= 0; i--) {
      if (this.idle[i].broken) this.destroy(this.idle.splice(i, 1)[0]);
    }
    let at = -1;
    for (let i = this.idle.length - 1; i >= 0; i--) {
      if (this.idle[i].readOnly === readOnly) {
        at = i;
        break;
      }
    }
    const c = at >= 0 ? this.idle.splice(at, 1)[0] : this.idle.pop();
    if (c) {
      this.counters.poolHits++;
      this.busy.add(c);
      return Promise.resolve(c);
    }
    // A connection opened ahead of calls, still connecting: it is this call's.
    const early = this.warming.shift();
    if (early) {
      this.counters.poolHits++;
      return early;
    }
    this.counters.poolMisses++;
    if (this.busy.size + this.opening < this.opts.maxConnections) return this.open();
    return new Promise<PgConn>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          this.counters.acquisitionTimeouts++;
          reject(
            new ConnectionTimeoutError(
              `no connection became free within ${this.opts.acquisitionTimeoutMs} ms (acquisitionTimeoutMs): all ${this.opts.maxConnections} PostgreSQL connections are busy`,
              'ACQUISITION_TIMEOUT',
            ),
          );
        }, this.opts.acquisitionTimeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  private async open(): Promise<PgConn> {
    this.opening++;
    try {
      const client = await this.opts.connect();
      this.counters.created++;
      const conn: PgConn = {
        client,
        createdAt: Date.now(),
        txStatus: 'I',
        applicationName: this.opts.applicationName,
        readOnly: false,
        broken: false,
        cancelled: false,
        idleSince: 0,
        tags: [],
      };
      // The status of every ReadyForQuery (node-postgres keeps it on its connection, not public).
      const connection = (
        client as unknown as { connection?: { on(ev: string, fn: (m: { status?: string; text?: string }) => void): void } }
      ).connection;
      connection?.on('readyForQuery', (m) => {
        if (m.status) conn.txStatus = m.status;
      });
      connection?.on('commandComplete', (m) => {
        if (m.text !== undefined) conn.tags.push(m.text);
      });
      client.on('error', () => {
        conn.broken = true;
      });
      client.on('end', () => {
        conn.broken = true;
      });
      if (this.closedPool) {
        await client.end().catch(() => {});
        throw new HeliosDBError('the client is closed', 'CLIENT_CLOSED');
      }
      this.busy.add(conn);
      return conn;
    } finally {
      this.opening--;
    }
  }

  /** Gives a connection back; a broken, failed-transaction or too old one is closed. */
  release(conn: PgConn): void {
    if (!this.busy.delete(conn)) return;
    const tooOld = this.opts.maxLifetimeSeconds > 0 && Date.now() - conn.createdAt > this.opts.maxLifetimeSeconds * 1000;
    if (conn.broken || conn.cancelled || conn.txStatus !== 'I' || tooOld || this.closedPool) {
      this.destroy(conn);
      this.serveWaiter();
      return;
    }
    const w = this.waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      this.busy.add(conn);
      w.resolve(conn);
      return;
    }
    conn.idleSince = Date.now();
    this.idle.push(conn);
  }

  /** A connection freed a slot: open one for the first waiter. */
  private serveWaiter(): void {
    const w = this.waiters.shift();
    if (!w) return;
    clearTimeout(w.timer);
    this.open().then(w.resolve, w.reject);
  }

  private destroy(conn: PgConn): void {
    this.counters.closed++;
    conn.broken = true;
    conn.client.end().catch(() => {});
  }

  private trimIdle(): void {
    const limit = this.opts.idleTimeoutSeconds * 1000;
    if (limit <= 0) return;
    const now = Date.now();
    for (let i = this.idle.length - 1; i >= 0 && this.idle.length > this.opts.minConnections; i--) {
      const c = this.idle[i];
      if (now - c.idleSince > limit) {
        this.idle.splice(i, 1);
        this.destroy(c);
      }
    }
  }

  /** The counters, in the shape of the gRPC pool's. */
  stats(): PoolCounters {
    const total = this.idle.length + this.busy.size;
    return {
      totalConnections: total,
      activeConnections: this.busy.size,
      idleConnections: this.idle.length,
      inFlight: this.busy.size,
      waiting: this.waiters.length,
      poolHits: this.counters.poolHits,
      poolMisses: this.counters.poolMisses,
      created: this.counters.created,
      closed: this.counters.closed,
      healthCheckFailures: 0,
      acquisitionTimeouts: this.counters.acquisitionTimeouts,
    };
  }

  /** Closes every connection; calls waiting fail with CLIENT_CLOSED. */
  async close(): Promise<void> {
    this.closedPool = true;
    clearInterval(this.sweep);
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new HeliosDBError('the client is closed', 'CLIENT_CLOSED'));
    }
    const all = [...this.idle.splice(0), ...this.busy];
    this.busy.clear();
    this.counters.closed += all.length;
    await Promise.all(all.map((c) => c.client.end().catch(() => {})));
  }
}
