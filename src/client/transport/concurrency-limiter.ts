/**
 * The "pool" of clients whose connections belong to the platform (a browser's `fetch`, Node's
 * HTTP stack under `@connectrpc/connect-node`): a limit on calls in flight. Calls beyond the
 * limit wait in line; a waiting call gives up after `acquisitionTimeoutMs` with
 * ConnectionTimeoutError, when its own deadline passes (TimeoutError) or when its AbortSignal
 * fires (CancelledError). Its statistics have the shape of the Node channel pool's. Browser-safe.
 * @packageDocumentation
 */
import { Code, ConnectError, type StreamResponse, type Transport, type UnaryResponse } from '@connectrpc/connect';
import { ConnectionTimeoutError, HeliosDBError } from '../errors.js';
import type { PoolCounters } from '../pool-stats.js';
import type { ClientEvents } from '../telemetry/client-events.js';

/** Settings of a {@link ConcurrencyLimiter}. */
export interface ConcurrencyLimiterOptions {
  /** Most calls in flight at once (streams count until their last message). */
  maxConcurrentCalls: number;
  /** How long a call waits for a free slot before failing with ConnectionTimeoutError, ms. */
  acquisitionTimeoutMs: number;
  /** Where acquisition timeouts are reported. Default none. */
  events?: ClientEvents;
}

interface Waiter {
  grant: () => void;
  fail: (e: unknown) => void;
}

/**
 * See the file comment. In {@link ConcurrencyLimiter.getStats} the connection fields
 * (`totalConnections`, `activeConnections`, `idleConnections`, `created`, `closed`,
 * `healthCheckFailures`) are always 0: the platform opens and closes the connections and does not
 * tell. `inFlight`, `waiting`, `poolHits` (calls that started at once), `poolMisses` (calls that
 * had to wait) and `acquisitionTimeouts` are counted as in the Node pool.
 */
export class ConcurrencyLimiter {
  private active = 0;
  private readonly queue: Waiter[] = [];
  private closing = false;
  private readonly counters = { poolHits: 0, poolMisses: 0, acquisitionTimeouts: 0 };

  constructor(readonly options: ConcurrencyLimiterOptions) {
    if (!(options.maxConcurrentCalls >= 1))
      throw new RangeError(`maxConcurrentCalls must be at least 1, got ${options.maxConcurrentCalls}`);
  }

  /**
   * Takes a call slot. Returns undefined when one was free (the common case, no promise), or a
   * promise that resolves once a slot is granted. `deadlineMs` (the call's own timeout) and
   * `signal` end the wait early. Every granted slot must be given back with {@link release}.
   */
  acquire(signal?: AbortSignal, deadlineMs?: number): Promise<void> | undefined {
    if (this.closing) throw new HeliosDBError('the client is closed', 'CLIENT_CLOSED');
    if (signal?.aborted)
      throw new ConnectError('the call was cancelled before it started', Code.Canceled, undefined, undefined, signal.reason);
    if (this.active < this.options.maxConcurrentCalls && this.queue.length === 0) {
      this.active++;
      this.counters.poolHits++;
      return undefined;
    }
    this.counters.poolMisses++;
    return new Promise<void>((resolve, reject) => {
      const timeoutMs = this.options.acquisitionTimeoutMs;
      const byDeadline = deadlineMs !== undefined && deadlineMs > 0 && deadlineMs < timeoutMs;
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
      };
      const waiter: Waiter = {
        grant: () => {
          done();
          resolve();
        },
        fail: (e) => {
          done();
          reject(e);
        },
      };
      const timer = setTimeout(
        () => {
          if (byDeadline) {
            waiter.fail(
              new ConnectError(`the call's deadline (${deadlineMs} ms) passed while it waited for a free call slot`, Code.DeadlineExceeded),
            );
            return;
          }
          this.counters.acquisitionTimeouts++;
          waiter.fail(
            new ConnectionTimeoutError(
              `no call slot became free within ${timeoutMs} ms (acquisitionTimeoutMs): ${this.options.maxConcurrentCalls} calls are in flight (maxConcurrentCalls)`,
              'ACQUISITION_TIMEOUT',
            ),
          );
          this.options.events?.emit('acquisitionTimeout', { timeoutMs, waiting: this.queue.length });
        },
        byDeadline ? deadlineMs : timeoutMs,
      );
      const onAbort = () =>
        waiter.fail(
          new ConnectError(
            'the call was cancelled while it waited for a free call slot',
            Code.Canceled,
            undefined,
            undefined,
            signal?.reason,
          ),
        );
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  /** Gives a slot back; the longest-waiting call gets it. */
  release(): void {
    const next = this.queue.shift();
    if (next && !this.closing) {
      next.grant(); // the slot passes on: `active` stays the same
      return;
    }
    if (this.active > 0) this.active--;
  }

  getStats(): PoolCounters {
    return {
      totalConnections: 0,
      activeConnections: 0,
      idleConnections: 0,
      inFlight: this.active,
      waiting: this.queue.length,
      poolHits: this.counters.poolHits,
      poolMisses: this.counters.poolMisses,
      created: 0,
      closed: 0,
      healthCheckFailures: 0,
      acquisitionTimeouts: this.counters.acquisitionTimeouts,
    };
  }

  /** Refuses new calls, fails the waiting ones, and waits (at most `graceMs`) for calls in flight. */
  async close(graceMs = 5000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const w of [...this.queue])
      w.fail(new HeliosDBError('the client was closed while the call waited for a free call slot', 'CLIENT_CLOSED'));
    const deadline = Date.now() + graceMs;
    while (this.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Wraps a transport so that every call holds a slot of `limiter`: unary calls until their response,
 * streams until their last message, an error, the consumer's `return()`, or their signal's abort.
 * The time spent waiting counts against the call's `timeoutMs`.
 */
export function limitTransport(inner: Transport, limiter: ConcurrencyLimiter): Transport {
  const take = async (signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<number | undefined> => {
    const t0 = Date.now();
    const wait = limiter.acquire(signal, timeoutMs);
    if (!wait) return timeoutMs;
    await wait;
    return timeoutMs === undefined || timeoutMs <= 0 ? timeoutMs : Math.max(1, timeoutMs - (Date.now() - t0));
  };
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues): Promise<UnaryResponse<any, any>> {
      const remaining = await take(signal, timeoutMs);
      try {
        return await inner.unary(method, signal, remaining, header, input, contextValues);
      } finally {
        limiter.release();
      }
    },
    async stream(method, signal, timeoutMs, header, input, contextValues): Promise<StreamResponse<any, any>> {
      const remaining = await take(signal, timeoutMs);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        signal?.removeEventListener('abort', release);
        limiter.release();
      };
      signal?.addEventListener('abort', release, { once: true });
      let res: StreamResponse<any, any>;
      try {
        res = await inner.stream(method, signal, remaining, header, input, contextValues);
      } catch (e) {
        release();
        throw e;
      }
      const messages = res.message;
      return {
        ...res,
        message: {
          [Symbol.asyncIterator]() {
            const it = messages[Symbol.asyncIterator]();
            return {
              async next() {
                try {
                  const r = await it.next();
                  if (r.done) release();
                  return r;
                } catch (e) {
                  release();
                  throw e;
                }
              },
              async return(value?: unknown) {
                release();
                return (await it.return?.(value)) ?? { done: true as const, value: undefined };
              },
            };
          },
        },
      };
    },
  };
}
