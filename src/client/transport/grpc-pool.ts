/**
 * The Node connection pool: HTTP/2 channels on `@grpc/grpc-js`, each its own TCP connection.
 * Calls go to the least-loaded channel; the pool grows when every channel carries
 * `maxStreamsPerConnection` calls and shrinks idle channels back to `minConnections`; channels are
 * recycled after `maxLifetimeSeconds` (draining: no call is cut off) and replaced when a
 * grpc.health.v1 check fails.
 *
 * With several endpoints (servers), channels are spread over them and calls rotate between the
 * healthy ones. Each endpoint has a circuit breaker (../circuit-breaker.ts) fed by the outcome of
 * every call and health check: an endpoint whose circuit is open gets no new calls (they go to the
 * others, or fail fast with CIRCUIT_OPEN when none is left) until a probe (a health check run by
 * the pool, or one call) succeeds. A channel that cannot connect fails its calls at once instead of
 * waiting `connectTimeoutMs`.
 * @packageDocumentation
 */
import * as grpc from '@grpc/grpc-js';
import { Code } from '@connectrpc/connect';
import { CircuitBreaker, type CircuitBreakerOptions, circuitBreakerDefaults } from '../circuit-breaker.js';
import { type ConnectionError, ConnectionTimeoutError, HeliosDBError } from '../errors.js';
import { circuitOpenError } from '../interceptors/breaker-interceptor.js';
import { isTransportFailure } from '../interceptors/failure.js';
import type { EndpointStats, PoolCounters } from '../pool-stats.js';
import type { ClientEventMap, ClientEvents } from '../telemetry/client-events.js';
import { annotateAttempt } from './attempt-info.js';
import { checkHealth, waitReady } from './channel-health.js';
import { endpointForNewChannel, pickForCall, pickForPin } from './channel-picking.js';
import { Endpoint, type EndpointSpec, PooledChannel } from './pooled-channel.js';

/** Receive window of each HTTP/2 connection and stream (see `open`). */
const flowControlWindowBytes = 2 * 1024 * 1024;

/** Pool settings (all required here; defaults live in the client config). */
export interface GrpcPoolOptions {
  /** The servers. */
  endpoints: EndpointSpec[];
  credentials: grpc.ChannelCredentials;
  /** Circuit breaker settings of each endpoint. Default: the defaults of ../circuit-breaker.ts. */
  circuitBreaker?: CircuitBreakerOptions | false;
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
  /** Where the pool reports connections opened and closed, acquisition timeouts and circuit transitions. Default none. */
  events?: ClientEvents;
}

type CloseReason = ClientEventMap['connectionClosed']['reason'];

interface Waiter {
  resolve: (ch: PooledChannel) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout;
}

/** See the file comment. */
export class GrpcChannelPool {
  private readonly channels: PooledChannel[] = [];
  private readonly waiters: Waiter[] = [];
  private endpoints: Endpoint[] = [];
  private nextId = 1;
  private rotation = 0;
  private closing = false;
  private readonly timer: NodeJS.Timeout;
  private stats = { poolHits: 0, poolMisses: 0, created: 0, closed: 0, healthCheckFailures: 0, acquisitionTimeouts: 0 };
  private readonly drainReasons = new WeakMap<PooledChannel, CloseReason>();

  constructor(private readonly opts: GrpcPoolOptions) {
    if (opts.endpoints.length === 0) throw new HeliosDBError('the pool needs at least one endpoint', 'INVALID_CONFIG');
    this.endpoints = opts.endpoints.map((e) => new Endpoint(e, this.breaker(e.url)));
    this.fill();
    // Often enough to probe an open circuit soon after its open period.
    const openMs = opts.circuitBreaker === false ? Infinity : (opts.circuitBreaker?.openMs ?? circuitBreakerDefaults.openMs);
    const tick = Math.max(
      250,
      Math.min(Math.min(opts.healthCheckIntervalSeconds, opts.idleTimeoutSeconds, opts.maxLifetimeSeconds) * 1000, openMs) / 2,
    );
    this.timer = setInterval(() => this.maintain(), tick);
    this.timer.unref();
  }

  /** A circuit breaker for `endpoint` that reports its transitions. */
  private breaker(endpoint: string): CircuitBreaker {
    const b = new CircuitBreaker(this.opts.circuitBreaker);
    const events = this.opts.events;
    if (events) b.onTransition = (from, to) => events.emit('circuitStateChange', { endpoint, from, to });
    return b;
  }

  /** The endpoints in use (not retired). */
  private active(): Endpoint[] {
    return this.endpoints.filter((e) => !e.retired);
  }

  /** Channels each endpoint keeps open at least: `minConnections` spread over them, one each at least. */
  private minPerEndpoint(): number {
    const n = this.active().length;
    return this.opts.minConnections === 0 ? 0 : Math.max(1, Math.ceil(this.opts.minConnections / n));
  }

  private liveOn(ep: Endpoint): number {
    let n = 0;
    for (const ch of this.channels) if (ch.endpoint === ep && !ch.draining) n++;
    return n;
  }

  /** Opens channels up to each endpoint's minimum. */
  private fill(): void {
    const min = this.minPerEndpoint();
    for (const ep of this.active()) for (let n = this.liveOn(ep); n < min; n++) this.open(ep);
  }

  /**
   * Replaces the endpoint list (a DNS name's addresses changed): new endpoints get channels;
   * endpoints no longer listed are retired and their channels drain.
   */
  setEndpoints(specs: EndpointSpec[]): void {
    if (this.closing || specs.length === 0) return;
    const byUrl = new Map(this.endpoints.map((e) => [e.url, e]));
    const next: Endpoint[] = [];
    for (const spec of specs) {
      const known = byUrl.get(spec.url);
      if (known) {
        known.retired = false;
        next.push(known);
      } else {
        next.push(new Endpoint(spec, this.breaker(spec.url)));
      }
    }
    for (const ep of this.endpoints) {
      if (next.includes(ep)) continue;
      ep.retired = true;
      for (const ch of [...this.channels]) if (ch.endpoint === ep) this.drain(ch, 'endpoint');
    }
    this.endpoints = [...next, ...this.endpoints.filter((e) => e.retired && this.channels.some((c) => c.endpoint === e))];
    this.fill();
  }

  private open(endpoint: Endpoint = endpointForNewChannel(this.active(), (ep) => this.liveOn(ep))): PooledChannel {
    const client = new grpc.Client(endpoint.spec.target, this.opts.credentials, {
      // Each channel its own subchannel, so its own TCP connection.
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': this.opts.maxMessageBytes,
      'grpc.max_send_message_length': this.opts.maxMessageBytes,
      'grpc.enable_retries': 0,
      // HTTP/2's default receive window (64 KiB) makes a stream of 1 MiB row batches wait for
      // window updates many times per batch; one batch in flight per stream keeps it moving.
      'grpc-node.flow_control_window': flowControlWindowBytes,
      // Reconnect soon after a server comes back (grpc-js waits 1 s, growing to 120 s, by default).
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 5000,
      ...this.opts.channelOptions,
      ...endpoint.spec.channelOptions,
    });
    const ch = new PooledChannel(this.nextId++, client, endpoint);
    // Start connecting now so the first call finds the channel ready.
    client.getChannel().getConnectivityState(true);
    this.channels.push(ch);
    this.stats.created++;
    this.opts.events?.emit('connectionOpened', { endpoint: endpoint.url, connectionId: ch.id });
    return ch;
  }

  /** Takes `ch` out of service: it closes once unused (at once if it is). */
  private drain(ch: PooledChannel, reason: CloseReason): void {
    ch.draining = true;
    if (!this.drainReasons.has(ch)) this.drainReasons.set(ch, reason);
    if (ch.unused) this.closeChannel(ch);
  }

  private closeChannel(ch: PooledChannel, reason?: CloseReason): void {
    if (ch.closed) return;
    ch.closed = true;
    const i = this.channels.indexOf(ch);
    if (i >= 0) this.channels.splice(i, 1);
    for (const fn of ch.onClose.splice(0)) fn();
    ch.client.close();
    this.stats.closed++;
    const why = reason ?? this.drainReasons.get(ch) ?? 'close';
    this.opts.events?.emit('connectionClosed', { endpoint: ch.endpoint.url, connectionId: ch.id, reason: why });
  }

  /**
   * The least-loaded channel with a free call slot (./channel-picking.ts), taking its circuit's
   * slot (a half-open circuit's probe).
   */
  private leastLoaded(avoid?: string, pack = false): PooledChannel | undefined {
    const start = this.endpoints.length > 1 ? this.rotation++ % this.endpoints.length : 0;
    const chosen = pickForCall(this.endpoints, this.channels, this.opts.maxStreamsPerConnection, start, avoid, pack);
    return chosen?.endpoint.breaker.tryAcquire() ? chosen : undefined;
  }

  /** Whether every endpoint's circuit is open: calls fail fast. */
  private allOpen(): boolean {
    return this.active().every((e) => !e.breaker.available());
  }

  private circuitOpen(): ConnectionError {
    const eps = this.active();
    const wait = Math.min(...eps.map((e) => e.breaker.retryInMs()));
    for (const e of eps) e.breaker.tryAcquire(); // counted as rejected
    const name = eps.length === 1 ? eps[0].url : `all ${eps.length} endpoints (${eps.map((e) => e.url).join(', ')})`;
    return annotateAttempt(circuitOpenError(name, wait), { sent: false, endpoint: eps.length === 1 ? eps[0].url : undefined });
  }

  private liveCount(): number {
    let n = 0;
    for (const ch of this.channels) if (!ch.draining) n++;
    return n;
  }

  /**
   * Takes a call slot on the least-loaded channel, opening or waiting for one when all are full.
   * Fails fast with CIRCUIT_OPEN when every endpoint's circuit is open. `pack`: the busiest
   * channel with a free slot instead (session operations, which share one stream per channel).
   */
  acquire(avoid?: string, pack = false): PooledChannel | Promise<PooledChannel> {
    if (this.closing) throw new HeliosDBError('the client is closed', 'CLIENT_CLOSED');
    const ch = this.leastLoaded(avoid, pack);
    if (ch) {
      this.stats.poolHits++;
      return this.take(ch);
    }
    if (this.allOpen()) throw this.circuitOpen();
    this.stats.poolMisses++;
    if (this.liveCount() < this.opts.maxConnections) {
      const fresh = this.open();
      fresh.endpoint.breaker.tryAcquire();
      return this.take(fresh);
    }
    return new Promise<PooledChannel>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          this.stats.acquisitionTimeouts++;
          this.opts.events?.emit('acquisitionTimeout', { timeoutMs: this.opts.acquisitionTimeoutMs, waiting: this.waiters.length });
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
    if (ch.draining && ch.unused) this.closeChannel(ch);
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
    if (this.allOpen()) throw this.circuitOpen();
    const n = this.endpoints.length;
    let best = pickForPin(this.endpoints, this.channels, n > 1 ? this.rotation++ % n : 0);
    if (!best || (best.inFlight >= this.opts.maxStreamsPerConnection && this.liveCount() < this.opts.maxConnections)) best = this.open();
    best.pins++;
    best.lastUsed = Date.now();
    return best;
  }

  /** Releases a pin taken with {@link pin}; a draining channel closes once it is unused. */
  unpin(ch: PooledChannel): void {
    if (ch.pins > 0) ch.pins--;
    ch.lastUsed = Date.now();
    if (ch.draining && ch.unused) this.closeChannel(ch);
  }

  /**
   * The outcome of a call on `ch`, for its endpoint's circuit breaker: `error` undefined for a
   * success. Failures of the connection count against the endpoint; answers from the server
   * (SQL errors included) for it; cancellations and deadlines are neutral.
   */
  report(ch: PooledChannel, error?: unknown): void {
    const b = ch.endpoint.breaker;
    if (error === undefined) {
      b.onSuccess();
      return;
    }
    const code = (error as { code?: unknown }).code;
    if (code === Code.Canceled || code === Code.DeadlineExceeded) b.onNeutral();
    else if (isTransportFailure(error)) b.onFailure();
    else b.onSuccess();
  }

  /** Waits until the channel is connected (./channel-health.ts); undefined when it is. */
  ready(ch: PooledChannel): Promise<void> | undefined {
    return waitReady(ch, this.opts.connectTimeoutMs, this.opts.credentials._isSecure(), (e) => this.report(ch, e));
  }

  private maintain(): void {
    if (this.closing) return;
    const now = Date.now();
    for (const ch of [...this.channels]) {
      if (!ch.draining && now - ch.createdAt > this.opts.maxLifetimeSeconds * 1000) this.drain(ch, 'lifetime');
    }
    // Shrink idle channels above the minimum.
    let live = this.liveCount();
    for (const ch of [...this.channels]) {
      if (live <= this.opts.minConnections) break;
      if (!ch.draining && ch.unused && now - ch.lastUsed > this.opts.idleTimeoutSeconds * 1000) {
        this.closeChannel(ch, 'idle');
        live--;
      }
    }
    this.fill();
    for (const ch of this.channels) {
      if (!ch.draining && now - ch.lastCheck >= this.opts.healthCheckIntervalSeconds * 1000) {
        ch.lastCheck = now;
        this.check(ch);
      }
    }
    // Probe endpoints whose circuit is due for it, so that they come back without a caller's call.
    for (const ep of this.active()) {
      if (ep.breaker.current !== 'half-open' || !ep.breaker.tryAcquire()) continue;
      const ch = this.channels.find((c) => c.endpoint === ep && !c.draining) ?? this.open(ep);
      void this.check(ch, true);
    }
  }

  /**
   * Runs grpc.health.v1 Check on a channel; an unhealthy channel is replaced. The outcome feeds
   * the endpoint's circuit breaker (`probe`: it holds the half-open probe slot).
   */
  async check(ch: PooledChannel, probe = false): Promise<boolean> {
    const healthy = await checkHealth(ch, this.opts.connectTimeoutMs);
    if (healthy) ch.endpoint.breaker.onSuccess();
    else if (probe || ch.endpoint.breaker.current === 'closed') ch.endpoint.breaker.onFailure();
    if (!healthy && !ch.closed && !this.closing) {
      this.stats.healthCheckFailures++;
      this.drain(ch, 'unhealthy');
      this.fill();
    }
    return healthy;
  }

  /** Runs a health check on every channel now; resolves to how many were healthy. */
  async checkAll(): Promise<number> {
    const results = await Promise.all(this.channels.filter((c) => !c.draining).map((c) => this.check(c)));
    return results.filter(Boolean).length;
  }

  getStats(): PoolCounters & { endpoints: EndpointStats[] } {
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
      endpoints: this.endpoints.map((ep) => {
        const b = ep.breaker.stats();
        let connections = 0;
        let calls = 0;
        for (const ch of this.channels) {
          if (ch.endpoint !== ep) continue;
          connections++;
          calls += ch.inFlight;
        }
        return {
          url: ep.url,
          circuit: b.state,
          consecutiveFailures: b.consecutiveFailures,
          circuitOpened: b.opened,
          circuitRejected: b.rejected,
          retryAt: b.retryAt,
          connections,
          inFlight: calls,
          retryTokens: undefined,
        };
      }),
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
