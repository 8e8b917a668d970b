/**
 * `client.listen(channel, onNotification)`: PostgreSQL's LISTEN through the server's Listen
 * stream. The listener stays until `unlisten()`: when its stream breaks (a lost connection, a
 * server restart) it listens again, backing off, and tells the callback that notifications may
 * have been missed meanwhile. Browser-safe.
 * @packageDocumentation
 */
import type { Client as RpcClient } from '@connectrpc/connect';
import type { DatabaseService } from '../../gen/heliosdb/v1/database_pb.js';
import { AuthenticationError, type HeliosDBError, toHeliosError } from './errors.js';

/** One event a listener's callback receives. */
export interface Notification {
  /** The channel it was sent on ('' for a `missed` event, which concerns every channel). */
  channel: string;
  /** Its payload ('' when none). */
  payload: string;
  /** The PostgreSQL backend that sent it (0 for a `missed` event). */
  processId: number;
  /**
   * True for the event that says notifications may have been missed: the listener's stream broke
   * and it listens again (or the server dropped some for a callback that did not keep up).
   */
  missed: boolean;
  /** Why notifications may have been missed (`missed` events only). */
  reason?: string;
}

/** Options of `client.listen`. */
export interface ListenOptions {
  /** Ends the listener when aborted (as `unlisten()`). */
  signal?: AbortSignal;
  /**
   * Errors after the first successful listen, each followed by a new attempt; an
   * AuthenticationError (its credentials revoked or expired) ends the listener instead, and
   * `closed` turns true. Default: none.
   */
  onError?: (error: HeliosDBError) => void;
  /** Longest wait between attempts to listen again, ms. Default `5000`. */
  maxReconnectDelayMs?: number;
}

/** A listener; see the file comment. */
export class Listener implements AsyncDisposable {
  /** The channels it listens on. */
  readonly channels: readonly string[];
  readonly #ac = new AbortController();
  #done: Promise<void> = Promise.resolve();
  #closed = false;

  /** @internal Made by `client.listen()`. */
  constructor(channels: readonly string[]) {
    this.channels = channels;
  }

  /** Whether `unlisten()` was called, or the server refused the listener's credentials. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Stops listening; resolves once the stream has ended. Idempotent. */
  async unlisten(): Promise<void> {
    this.#closed = true;
    this.#ac.abort();
    await this.#done;
  }

  /** `await using listener = await client.listen(...)` unlistens at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.unlisten();
  }

  /** @internal Starts the listener; resolves once the server listens on every channel. */
  start(
    rpc: RpcClient<typeof DatabaseService>,
    callOptions: object,
    onNotification: (n: Notification) => void,
    options: ListenOptions,
  ): Promise<void> {
    const signal = this.#ac.signal;
    options.signal?.addEventListener('abort', () => void this.unlisten(), { once: true });
    let resolveReady!: () => void;
    let rejectReady!: (e: unknown) => void;
    const ready = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    let listening = false;
    const deliver = (n: Notification) => {
      try {
        onNotification(n);
      } catch {
        // A failing callback must not end the listener.
      }
    };
    const once = async (): Promise<void> => {
      for await (const m of rpc.listen({ channels: [...this.channels] }, { ...callOptions, signal })) {
        const ev = m.event;
        if (ev.case === 'ready') {
          if (!listening) {
            listening = true;
            resolveReady();
          } else {
            deliver({
              channel: '',
              payload: '',
              processId: 0,
              missed: true,
              reason: 'the connection to the server was lost and the listener listens again',
            });
          }
        } else if (ev.case === 'notification') {
          deliver({ channel: ev.value.channel, payload: ev.value.payload, processId: ev.value.processId, missed: false });
        } else if (ev.case === 'gap') {
          deliver({ channel: '', payload: '', processId: 0, missed: true, reason: ev.value.reason });
        }
      }
    };
    const max = options.maxReconnectDelayMs ?? 5000;
    this.#done = (async () => {
      let delay = 100;
      while (!signal.aborted) {
        try {
          await once();
          delay = 100; // the server ended the stream (shutting down): listen again
        } catch (e) {
          if (signal.aborted) break;
          const err = toHeliosError(e);
          if (!listening) {
            rejectReady(err);
            return;
          }
          try {
            options.onError?.(err);
          } catch {
            // ignore
          }
          // Asking again with credentials the server refused would only count as guessing.
          if (err instanceof AuthenticationError) {
            this.#closed = true;
            break;
          }
        }
        if (signal.aborted) break;
        await new Promise<void>((r) => {
          const t = setTimeout(r, delay);
          signal.addEventListener(
            'abort',
            () => {
              clearTimeout(t);
              r();
            },
            { once: true },
          );
        });
        delay = Math.min(max, delay * 2);
      }
      if (!listening) rejectReady(toHeliosError(signal.reason ?? new Error('the listener was closed before it listened')));
    })();
    return ready;
  }
}
