/**
 * The Node connection pool: HTTP/2 channels on `@grpc/grpc-js`, each its own TCP connection.
 * Calls go to the least-loaded channel; the pool grows when every channel carries
 * `maxStreamsPerConnection` calls and shrinks idle channels back to `minConnections`; channels are
 * recycled after `maxLifetimeSeconds` (draining: no call is cut off) and replaced when a
 * grpc.health.v1 check fails.
 * @packageDocumentation
 */
import * as grpc from '@grpc/grpc-js';
import { ConnectionTimeoutError, HeliosDBError } from '../errors.js';
import type { PoolStats } from '../pool-stats.js';

/** Pool settings (all required here; defaults live in the client config). */
export interface GrpcPoolOptions {
  /** `host:port` target. */
  target: string;
  credentials: grpc.ChannelCredentials;
  minConnections: number;
  maxConnections: number;
  maxStreamsPerConnection: number;
  maxLifetimeSeconds: number;
  healthCheckIntervalSeconds: number;
  idleTimeoutSeconds: number;
  acquisitionTimeoutMs: number;
  connectTimeoutMs: number;
  maxMessageBytes: number;
  /** Extra grpc-js channel options (keepalive, compression, TLS name override). */
  channelOptions?: grpc.ChannelOptions;
}

/** One pooled channel. */
export class PooledChannel {
  inFlight = 0;
  /** Pinned transactions using this channel. */
  pins = 0;
  draining = false;
  closed = false;
  lastUsed = Date.now();
  readonly createdAt = Date.now();
  constructor(
    readonly id: number,
    readonly client: grpc.Client,
  ) {}
}

interface Waiter {
  resolve: (ch: PooledChannel) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout;
}

const healthCheckPath = '/grpc.health.v1.Health/Check';
// HealthCheckRequest{service: ""} encodes to zero bytes; the response's field 1 is the status.
const emptyRequest = Buffer.alloc(0);

/** See the file comment. */
export class GrpcChannelPool {
  private readonly channels: PooledChannel[] = [];
  private readonly waiters: Waiter[] = [];
  private nextId = 1;
  private closing = false;
  private readonly timer: NodeJS.Timeout;
  private stats = { poolHits: 0, poolMisses: 0, created: 0, closed: 0, healthCheckFailures: 0, acquisitionTimeouts: 0 };

  constructor(private readonly opts: GrpcPoolOptions) {
    for (let i = 0; i < opts.minConnections; i++) this.open();
    const tick = Math.max(250, Math.min(opts.healthCheckIntervalSeconds, opts.idleTimeoutSeconds, opts.maxLifetimeSeconds) * 1000 / 2);
    this.timer = setInterval(() => this.maintain(), tick);
    this.timer.unref();
  }

  private open(): PooledChannel {
    const client = new grpc.Client(this.opts.target, this.opts.credentials, {
      // Each channel its own subchannel, so its own TCP connection.
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': this.opts.maxMessageBytes,
      'grpc.max_send_message_length': this.opts.maxMessageBytes,
      'grpc.enable_retries': 0,
      ...this.opts.channelOptions,
    });
    const ch = new PooledChannel(this.nextId++, client);
    // Start connecting now so the first call finds the channel ready.
    client.getChannel().getConnectivityState(true);
    this.channels.push(ch);
    this.stats.created++;
    return ch;
  }

  private closeChannel(ch: PooledChannel): void {
    if (ch.closed) return;
    ch.closed = true;
    const i = this.channels.indexOf(ch);
    if (i >= 0) this.channels.splice(i, 1);
    ch.client.close();
    this.stats.closed++;
  }

  private leastLoaded(): PooledChannel | undefined {
    let best: PooledChannel | undefined;
    for (const ch of this.channels) {
      if (ch.draining) continue;
      if (!best || ch.inFlight < best.inFlight) best = ch;
      if (ch.inFlight === 0) break;
    }
    return best && best.inFlight < this.opts.maxStreamsPerConnection ? best : undefined;
  }

  private liveCount(): number {
    let n = 0;
    for (const ch of this.channels) if (!ch.draining) n++;
    return n;
  }

  /** Takes a call slot on the least-loaded channel, opening or waiting for one when all are full. */
  acquire(): PooledChannel | Promise<PooledChannel> {
    if (this.closing) throw new HeliosDBError('the client is closed', 'CLIENT_CLOSED');
    const ch = this.leastLoaded();
    if (ch) {
      this.stats.poolHits++;
      return this.take(ch);
    }
    this.stats.poolMisses++;
    if (this.liveCount() < this.opts.maxConnections) return this.take(this.open());
    return new Promise<PooledChannel>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          this.stats.acquisitionTimeouts++;
          reject(
            new ConnectionTimeoutError(
              `no connection became free within ${this.opts.acquisitionTimeoutMs} ms (acquisitionTimeoutMs): all ${this.opts.maxConnections} connections carry ${this.opts.maxStreamsPerConnection} calls each`,
              'ACQUISITION_TIMEOUT',
            ),
          );
        }, this.opts.acquisitionTimeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  private take(ch: PooledChannel): PooledChannel {
    ch.inFlight++;
    ch.lastUsed = Date.now();
    return ch;
  }

  /** Returns a call slot. */
  release(ch: PooledChannel): void {
    ch.inFlight--;
    ch.lastUsed = Date.now();
    if (this.waiters.length > 0 && !ch.draining && !ch.closed) {
      const w = this.waiters.shift()!;
      clearTimeout(w.timer);
      w.resolve(this.take(ch));
      return;
    }
    if (ch.draining && ch.inFlight === 0 && ch.pins === 0) this.closeChannel(ch);
  }

  /**
   * Pins a channel for an interactive transaction: every call of the transaction then goes to this
   * channel (one HTTP/2 connection, so one server behind any load balancer). A pinned channel is
   * never closed by recycling, shrinking or a failed health check until {@link unpin}; calls on it
   * do not wait for a free call slot. Picks the channel with the fewest calls and pins, opening one
   * when all are saturated and the pool is below `maxConnections`.
   */
  pin(): PooledChannel {
    if (this.closing) throw new HeliosDBError('the client is closed', 'CLIENT_CLOSED');
    let best: PooledChannel | undefined;
    for (const ch of this.channels) {
      if (ch.draining) continue;
      if (!best || ch.inFlight + ch.pins < best.inFlight + best.pins) best = ch;
    }
    if (!best || (best.inFlight >= this.opts.maxStreamsPerConnection && this.liveCount() < this.opts.maxConnections)) best = this.open();
    best.pins++;
    best.lastUsed = Date.now();
    return best;
  }

  /** Releases a pin taken with {@link pin}; a draining channel closes once it is unused. */
  unpin(ch: PooledChannel): void {
    if (ch.pins > 0) ch.pins--;
    ch.lastUsed = Date.now();
    if (ch.draining && ch.inFlight === 0 && ch.pins === 0) this.closeChannel(ch);
  }

  /** Waits until the channel is connected, at most `connectTimeoutMs`. */
  ready(ch: PooledChannel): Promise<void> | undefined {
    const channel = ch.client.getChannel();
    if (channel.getConnectivityState(false) === grpc.connectivityState.READY) return undefined;
    return new Promise((resolve, reject) => {
      ch.client.waitForReady(Date.now() + this.opts.connectTimeoutMs, (err) => {
        if (!err) return resolve();
        reject(
          new ConnectionTimeoutError(
            `could not connect to ${this.opts.target} within ${this.opts.connectTimeoutMs} ms (connectTimeoutMs)`,
            'CONNECT_TIMEOUT',
            { cause: err, retryable: true },
          ),
        );
      });
    });
  }

  private maintain(): void {
    if (this.closing) return;
    const now = Date.now();
    for (const ch of [...this.channels]) {
      if (!ch.draining && now - ch.createdAt > this.opts.maxLifetimeSeconds * 1000) {
        ch.draining = true;
        if (ch.inFlight === 0 && ch.pins === 0) this.closeChannel(ch);
      }
    }
    // Shrink idle channels above the minimum.
    let live = this.liveCount();
    for (const ch of [...this.channels]) {
      if (live <= this.opts.minConnections) break;
      if (!ch.draining && ch.inFlight === 0 && ch.pins === 0 && now - ch.lastUsed > this.opts.idleTimeoutSeconds * 1000) {
        this.closeChannel(ch);
        live--;
      }
    }
    while (this.liveCount() < this.opts.minConnections) this.open();
    for (const ch of this.channels) {
      if (!ch.draining && now - ((ch as { lastCheck?: number }).lastCheck ?? ch.createdAt) >= this.opts.healthCheckIntervalSeconds * 1000) {
        (ch as { lastCheck?: number }).lastCheck = now;
        this.check(ch);
      }
    }
  }

  /** Runs grpc.health.v1 Check on a channel; an unhealthy channel is replaced. */
  check(ch: PooledChannel): Promise<boolean> {
    return new Promise((resolve) => {
      ch.client.makeUnaryRequest(
        healthCheckPath,
        (b: Buffer) => b,
        (b: Buffer) => b,
        emptyRequest,
        new grpc.Metadata(),
        { deadline: Date.now() + this.opts.connectTimeoutMs },
        (err, res) => {
          // SERVING is status 1: bytes 0x08 0x01.
          const healthy = !err && !!res && res.length >= 2 && res[0] === 0x08 && res[1] === 0x01;
          if (!healthy && !ch.closed && !this.closing) {
            this.stats.healthCheckFailures++;
            ch.draining = true;
            if (ch.inFlight === 0 && ch.pins === 0) this.closeChannel(ch);
            if (this.liveCount() < this.opts.minConnections) this.open();
          }
          resolve(healthy);
        },
      );
    });
  }

  /** Runs a health check on every channel now; resolves to how many were healthy. */
  async checkAll(): Promise<number> {
    const results = await Promise.all(this.channels.filter((c) => !c.draining).map((c) => this.check(c)));
    return results.filter(Boolean).length;
  }

  getStats(): PoolStats {
    let active = 0;
    let inFlight = 0;
    for (const ch of this.channels) {
      inFlight += ch.inFlight;
      if (ch.inFlight > 0 || ch.pins > 0) active++;
    }
    return {
      totalConnections: this.channels.length,
      activeConnections: active,
      idleConnections: this.channels.length - active,
      inFlight,
      waiting: this.waiters.length,
      ...this.stats,
    };
  }

  /** Stops new calls, waits for in-flight calls (at most `graceMs`), then closes every channel. */
  async close(graceMs = 5000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.timer);
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new HeliosDBError('the client was closed while waiting for a connection', 'CLIENT_CLOSED'));
    }
    const deadline = Date.now() + graceMs;
    while (this.channels.some((c) => c.inFlight > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const ch of [...this.channels]) this.closeChannel(ch);
  }
}
