/**
 * The LISTENs of one client of the embedded engine's PostgreSQL port (./pglite-session.ts): its
 * subscriptions to the server's notification hub (../notifications.ts), by channel, and the
 * NotificationResponses they bring, held until the client is idle outside a transaction block, as
 * PostgreSQL delivers them. A client that lets more than {@link maxHeldNotifications} pile up
 * inside a transaction block is disconnected (53200) rather than held without bound.
 * @packageDocumentation
 */
import type { NotificationEvent, Subscriber, Subscription } from '../notifications.js';
import { endWithFatal, type PgClient } from './client.js';
import { cstr, message } from './messages.js';

/** Notifications held for a client inside a transaction block, at most. */
export const maxHeldNotifications = 10_000;

/** See the file comment. */
export class ClientListens {
  private readonly subscriptions = new Map<string, Subscription>();
  private held: Buffer[] = [];
  private closed = false;
  /** What the hub calls for this client's channels. */
  readonly subscriber: Subscriber;

  /**
   * @param canSend whether the client is idle outside a transaction block now
   * @param overflow ends the client (too many held notifications)
   */
  constructor(
    private readonly client: PgClient,
    private readonly canSend: () => boolean,
    private readonly overflow: () => void,
  ) {
    this.subscriber = {
      onNotification: (n) => this.notified(n),
      onGap: (reason) => client.log.debug({ reason }, 'pg port: notifications may have been missed'),
      onClose: () => {},
    };
  }

  /** Whether the client listens on `channel`. */
  has(channel: string): boolean {
    return this.subscriptions.has(channel);
  }

  /** Keeps the subscription of a LISTEN (closed at once if the client is gone). */
  add(channel: string, sub: Subscription): void {
    if (this.closed) sub.close();
    else this.subscriptions.set(channel, sub);
  }

  /** UNLISTEN `channel`, or every channel (undefined: `UNLISTEN *`). */
  remove(channel: string | undefined): void {
    for (const ch of channel === undefined ? [...this.subscriptions.keys()] : [channel]) {
      this.subscriptions.get(ch)?.close();
      this.subscriptions.delete(ch);
    }
  }

  /** Sends the held notifications when the client can take them. */
  flush(): void {
    if (this.held.length === 0 || this.closed || !this.canSend()) return;
    const out = this.held;
    this.held = [];
    this.client.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
  }

  /** The client is gone: its listens end. */
  close(): void {
    this.closed = true;
    this.remove(undefined);
    this.held = [];
  }

  private notified(n: NotificationEvent): void {
    if (this.closed) return;
    const pid = Buffer.alloc(4);
    pid.writeInt32BE(n.processId | 0, 0);
    this.held.push(message('A', Buffer.concat([pid, cstr(n.channel), cstr(n.payload)])));
    if (this.held.length > maxHeldNotifications) {
      endWithFatal(this.client.socket, {
        code: '53200',
        message: `more than ${maxHeldNotifications} notifications are waiting for this client to leave its transaction block`,
      });
      this.overflow();
      return;
    }
    this.flush();
  }
}
