/**
 * The parts of the Node pool: a server endpoint with its circuit breaker, and one pooled channel
 * (a grpc-js client with its own TCP connection) with its load and life-cycle state.
 * @packageDocumentation
 */
import type * as grpc from '@grpc/grpc-js';
import type { CircuitBreaker } from '../circuit-breaker.js';

/** One server of the pool. */
export interface EndpointSpec {
  /** The endpoint's URL, as shown in stats and errors (`grpc://host:port`). */
  url: string;
  /** grpc-js `host:port` target. */
  target: string;
  /** Channel options of this endpoint only (e.g. the TLS name of a DNS address). */
  channelOptions?: grpc.ChannelOptions;
}

/** A server endpoint and its circuit breaker. */
export class Endpoint {
  /** No longer part of the pool (DNS changed): its channels drain. */
  retired = false;
  constructor(
    readonly spec: EndpointSpec,
    readonly breaker: CircuitBreaker,
  ) {}
  get url(): string {
    return this.spec.url;
  }
}

/** One pooled channel. */
export class PooledChannel {
  /** Calls in flight. */
  inFlight = 0;
  /** Pinned transactions using this channel. */
  pins = 0;
  /** Takes no new calls; closes once unused. */
  draining = false;
  closed = false;
  lastUsed = Date.now();
  readonly createdAt = Date.now();
  /** Called once when the pool closes the channel (its sessions end with it). */
  readonly onClose: (() => void)[] = [];
  /** When its last health check ran (its creation before the first). */
  lastCheck = this.createdAt;
  constructor(
    readonly id: number,
    readonly client: grpc.Client,
    readonly endpoint: Endpoint,
  ) {}

  /** No call in flight and no pin. */
  get unused(): boolean {
    return this.inFlight === 0 && this.pins === 0;
  }
}
