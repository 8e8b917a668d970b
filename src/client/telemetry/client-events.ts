/**
 * The client's typed events (`client.events`): connections opened and closed, acquisitions that
 * timed out, retries and circuit-breaker transitions. A small typed emitter with no platform
 * dependency (Node and browsers alike). A listener that throws is ignored: events never change a
 * call. Browser-safe.
 * @packageDocumentation
 */
import type { CircuitState } from '../circuit-breaker.js';

/** Every event and what its listeners receive. */
export interface ClientEventMap {
  /** The pool opened a connection (an HTTP/2 channel; native gRPC only: elsewhere the platform owns connections). */
  connectionOpened: { endpoint: string; connectionId: number };
  /**
   * The pool closed a connection: `idle` (above `minConnections` and idle), `lifetime`
   * (`maxLifetimeSeconds`), `unhealthy` (a failed health check), `endpoint` (its server left the
   * pool) or `close` (the client closed).
   */
  connectionClosed: { endpoint: string; connectionId: number; reason: 'idle' | 'lifetime' | 'unhealthy' | 'endpoint' | 'close' };
  /** A call gave up waiting for a connection (or, over http(s)://, a call slot) after `acquisitionTimeoutMs`. */
  acquisitionTimeout: {
    timeoutMs: number;
    /** Calls still waiting after this one gave up. */
    waiting: number;
  };
  /** The retry interceptor is about to send a call again. */
  retry: { method: string; attempt: number; delayMs: number; error: unknown };
  /** An endpoint's circuit breaker changed state (`half-open`: its probe call is let through). */
  circuitStateChange: { endpoint: string; from: CircuitState; to: CircuitState };
}

/** The name of a client event. */
export type ClientEventName = keyof ClientEventMap;

/** A listener of event `K`. */
export type ClientEventListener<K extends ClientEventName> = (event: ClientEventMap[K]) => void;

/** See the file comment. */
export class ClientEvents {
  private readonly listeners = new Map<ClientEventName, Set<(e: never) => void>>();

  /** Calls `listener` on every event `name`; returns a function that removes it. */
  on<K extends ClientEventName>(name: K, listener: ClientEventListener<K>): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(listener as (e: never) => void);
    return () => this.off(name, listener);
  }

  /** Calls `listener` on the next event `name` only. */
  once<K extends ClientEventName>(name: K, listener: ClientEventListener<K>): () => void {
    const off = this.on(name, (e) => {
      off();
      listener(e);
    });
    return off;
  }

  /** Removes `listener`. */
  off<K extends ClientEventName>(name: K, listener: ClientEventListener<K>): void {
    this.listeners.get(name)?.delete(listener as (e: never) => void);
  }

  /** Whether anyone listens to `name` (emitters skip building events nobody reads). */
  has(name: ClientEventName): boolean {
    return (this.listeners.get(name)?.size ?? 0) > 0;
  }

  /** Delivers an event to its listeners, synchronously, in the order they were added. */
  emit<K extends ClientEventName>(name: K, event: ClientEventMap[K]): void {
    const set = this.listeners.get(name);
    if (!set || set.size === 0) return;
    for (const listener of [...set]) {
      try {
        (listener as ClientEventListener<K>)(event);
      } catch {
        // A listener must not change the call or the pool.
      }
    }
  }
}
