/**
 * A one-producer, one-consumer queue between a database callback (rows, COPY data,
 * notifications) and a server-streaming handler's async generator, with backpressure: the
 * producer learns when the consumer has taken everything (`onEmpty`), so it can ask the database
 * for more only then.
 * @packageDocumentation
 */

/** See the file comment. */
export class PushQueue<T> {
  private items: T[] = [];
  private head = 0;
  private wake: (() => void) | undefined;
  private ended = false;
  private failure: unknown;
  private failed = false;
  /** Called each time the consumer finds the queue empty and waits. */
  onEmpty: (() => void) | undefined;
  /** Called each time the consumer takes an item (`length` is then what is left). */
  onTaken: (() => void) | undefined;

  /** Items waiting to be taken. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** Whether `end` was called. */
  get isEnded(): boolean {
    return this.ended;
  }

  /** Adds an item. */
  push(item: T): void {
    if (this.ended) return;
    this.items.push(item);
    this.notify();
  }

  /** Ends the queue; the consumer takes what is left, then ends (or throws `error`). */
  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    if (error !== undefined) {
      this.failed = true;
      this.failure = error;
    }
    this.notify();
  }

  /** Yields items until the end. */
  async *drain(): AsyncGenerator<T> {
    for (;;) {
      while (this.head < this.items.length) {
        const item = this.items[this.head];
        this.items[this.head++] = undefined as T;
        if (this.head > 1024 && this.head * 2 > this.items.length) {
          this.items = this.items.slice(this.head);
          this.head = 0;
        }
        this.onTaken?.();
        yield item;
      }
      if (this.ended) {
        if (this.failed) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.onEmpty?.();
        if (this.ended || this.head < this.items.length) this.notify();
      });
    }
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}
