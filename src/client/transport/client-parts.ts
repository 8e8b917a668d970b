/**
 * The seam between the client and its transports (interfaces only): what an entry point gives
 * the platform-independent client, and the pin that keeps a transaction's calls on one
 * connection. A new transport implements {@link ClientParts} in a file of its own in this folder;
 * an entry chooses it. Browser-safe.
 * @packageDocumentation
 */
import type { ContextValues, Transport } from '@connectrpc/connect';
import type { QueryMetrics } from '../metrics.js';
import type { PoolHandle } from '../pool-stats.js';
import type { ClientEvents } from '../telemetry/client-events.js';

/**
 * One client connection reserved for a transaction: its context values route calls to that
 * connection until `release()` (idempotent).
 */
export interface ConnectionPin {
  readonly contextValues: ContextValues;
  release(): void;
}

/** What an entry point gives the client: a transport and its pool. */
export interface ClientParts {
  transport: Transport;
  pool: PoolHandle;
  metrics: QueryMetrics;
  /**
   * Pins one connection for a transaction (Node: one pooled HTTP/2 channel). Optional: without it
   * (e.g. a browser transport, where the browser owns connections) transaction calls go wherever
   * the transport sends them.
   */
  pin?(): ConnectionPin;
  /** Where the transport reports connections, acquisition timeouts, retries and circuit transitions (`client.events`). Optional. */
  events?: ClientEvents;
  /** Closes the transport's connections. */
  close(): Promise<void>;
  /**
   * Why the transport cannot send a streaming request (copyFrom), when it cannot: browsers and
   * HTTP/1.1. Default: it can.
   */
  noRequestStreams?: string;
}
