/**
 * When a relayed PostgreSQL-port session (./postgres-relay.ts) is idle, for
 * `--idle-connection-timeout-ms`: the relay passes bytes through unparsed, so this follows the
 * message boundaries of both directions and keeps what it needs. A session is idle when the
 * backend's last ReadyForQuery said 'I' (not in a transaction block), every Query, Sync and
 * FunctionCall the client sent has had its ReadyForQuery, no extended-protocol message waits for
 * a Sync, and no byte went either way. Such a session is ended (FATAL 57P05), as PostgreSQL's
 * `idle_session_timeout` does; a session in a transaction block, in COPY or waiting for a
 * statement is never ended for idleness.
 * @packageDocumentation
 */

/** Follows the boundaries of typed messages (type byte, int32 length) in a byte stream. */
export class MessageBoundaries {
  private readonly header = Buffer.alloc(5);
  private have = 0;
  private remaining = 0;
  private type = 0;
  private wantFirst = false;

  /** @param onMessage called once per message: its type and the first byte of its body (if any) */
  constructor(private readonly onMessage: (type: number, first: number | undefined) => void) {}

  /** Reads the next bytes of the stream. */
  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        if (this.wantFirst) {
          this.wantFirst = false;
          this.onMessage(this.type, chunk[i]);
        }
        const n = Math.min(this.remaining, chunk.length - i);
        i += n;
        this.remaining -= n;
        continue;
      }
      this.header[this.have++] = chunk[i++]!;
      if (this.have < 5) continue;
      this.have = 0;
      this.type = this.header[0]!;
      this.remaining = Math.max(0, this.header.readInt32BE(1) - 4);
      if (this.remaining === 0) this.onMessage(this.type, undefined);
      else this.wantFirst = true;
    }
  }
}

const Q = 0x51;
const F = 0x46;
const S = 0x53;
const Z = 0x5a;
/** Parse, Bind, Execute, Describe, Close: they wait for a Sync. */
const extended = new Set([0x50, 0x42, 0x45, 0x44, 0x43]);

/** See the file comment. */
export class RelayIdleWatch {
  private status = 'I';
  private outstanding = 0;
  private unsynced = false;
  private last = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private readonly client = new MessageBoundaries((type) => {
    if (type === Q || type === F || type === S) this.outstanding++;
    if (type === S) this.unsynced = false;
    else if (extended.has(type)) this.unsynced = true;
  });
  private readonly backend = new MessageBoundaries((type, first) => {
    if (type !== Z) return;
    this.outstanding = Math.max(0, this.outstanding - 1);
    if (first !== undefined) this.status = String.fromCharCode(first);
  });

  /**
   * @param timeoutMs how long an idle session lasts; 0 or less: for ever
   * @param onIdle called once, when the session has been idle that long
   */
  constructor(
    private readonly timeoutMs: number,
    private readonly onIdle: () => void,
  ) {}

  /** Whether the session is idle outside a transaction now (bytes aside). */
  get idle(): boolean {
    return this.status === 'I' && this.outstanding === 0 && !this.unsynced;
  }

  /** Bytes the client sent to the backend. */
  fromClient(chunk: Buffer): void {
    this.last = Date.now();
    this.client.push(chunk);
  }

  /** Bytes the backend sent to the client. */
  fromBackend(chunk: Buffer): void {
    this.last = Date.now();
    this.backend.push(chunk);
  }

  /** Starts the clock (the session starts idle, after its first ReadyForQuery). */
  start(): void {
    if (this.timeoutMs > 0) this.arm(this.timeoutMs);
  }

  /** Stops it for good. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => {
      const since = Date.now() - this.last;
      if (this.idle && since >= this.timeoutMs) {
        this.timer = undefined;
        this.onIdle();
        return;
      }
      this.arm(this.idle ? this.timeoutMs - since : this.timeoutMs);
    }, ms);
    this.timer.unref();
  }
}
