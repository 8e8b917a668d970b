/**
 * The count both listeners keep of requests still receiving their body: from their headers until
 * the request's end (HTTP/2 END_STREAM, the last byte of an HTTP/1.1 body, a gRPC half-close) or
 * the end of the call. Over the cap, a connection that already has such a request gets its new
 * ones refused (unless they turn out to have arrived whole); a connection without one may always
 * start one, so clients that send their requests whole are served while others hold the cap.
 * @packageDocumentation
 */
import type { Logger } from 'pino';

/** How often refusals are logged at most, ms. */
const refusalLogIntervalMs = 10_000;

/**
 * Requests of one listener still receiving their body, counted per connection (`K` is whatever
 * names a connection: an HTTP/2 session, a socket, an address).
 */
export class IncompleteRequests<K> {
  private total = 0;
  private readonly perConnection = new Map<K, number>();
  private refused = 0;
  private lastLog = 0;

  /**
   * @param max Requests receiving their body at once beyond which a connection that already has
   *   one is refused new ones; the count may pass it by one per connection.
   */
  constructor(
    readonly max: number,
    private readonly listener: string,
    private readonly log: Logger,
  ) {}

  /** Requests counted now. */
  get count(): number {
    return this.total;
  }

  /** Requests of `connection` counted now. */
  countOf(connection: K): number {
    return this.perConnection.get(connection) ?? 0;
  }

  /**
   * Counts a new request of `connection` and returns true; or returns false, counting nothing,
   * when the cap is reached and `connection` already has a request receiving its body. The
   * refusals are logged as one warning per 10 s.
   */
  admit(connection: K): boolean {
    const mine = this.perConnection.get(connection) ?? 0;
    if (this.total >= this.max && mine > 0) {
      this.refused++;
      const now = Date.now();
      if (now - this.lastLog >= refusalLogIntervalMs) {
        this.lastLog = now;
        this.log.warn(
          { listener: this.listener, maxIncompleteRequests: this.max, incomplete: this.total, refused: this.refused },
          'too many requests still receiving their body: new ones on connections that have one are refused unless they arrive whole',
        );
      }
      return false;
    }
    this.total++;
    this.perConnection.set(connection, mine + 1);
    return true;
  }

  /** Stops counting one admitted request of `connection` (once per admitted request). */
  release(connection: K): void {
    const mine = this.perConnection.get(connection);
    if (mine === undefined) return;
    this.total--;
    if (mine > 1) this.perConnection.set(connection, mine - 1);
    else this.perConnection.delete(connection);
  }
}
