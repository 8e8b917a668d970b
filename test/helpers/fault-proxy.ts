/**
 * A fault-injecting TCP proxy for the fault tests, loopback only: it listens on 127.0.0.1 and
 * forwards to a server on this machine, and on command delays bytes, black-holes connections
 * (bytes vanish, the sockets stay open: a half-open connection), resets them (TCP RST), cuts them
 * after N more bytes, swallows a response then resets (a write whose answer is lost after the
 * server applied it), or stops listening (connection refused). Faults are bounded: every mode is
 * switched off by `heal()` and `close()` destroys everything.
 * @packageDocumentation
 */
import { once } from 'node:events';
import net from 'node:net';

/** Which way bytes travel: `up` client → server, `down` server → client. */
export type Direction = 'up' | 'down';

interface Pair {
  client: net.Socket;
  server: net.Socket;
  /** Bytes vanish (both ways) instead of being forwarded. */
  blackholed: boolean;
  /** Reset after this many more bytes in `cut.direction`. */
  cut?: { direction: Direction; left: number };
  /** Ordered forwarding when delayed. */
  tail: { up: Promise<void>; down: Promise<void> };
  closed: boolean;
}

/** Counters of what the proxy did. */
export interface FaultProxyStats {
  /** Connections accepted. */
  accepted: number;
  /** Connections reset by a fault. */
  resets: number;
  /** Bytes forwarded each way. */
  bytesUp: number;
  bytesDown: number;
  /** Bytes swallowed by black holes and lost responses. */
  bytesDropped: number;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** See the file comment. Start one with {@link FaultProxy.start}. */
export class FaultProxy {
  readonly stats: FaultProxyStats = { accepted: 0, resets: 0, bytesUp: 0, bytesDown: 0, bytesDropped: 0 };
  private readonly pairs = new Set<Pair>();
  private server: net.Server | undefined;
  private delayMs = 0;
  private blackholeNew = false;
  private cutNew: { direction: Direction; bytes: number } | undefined;
  private loseArmed: { resetAfterMs: number } | undefined;
  private resetTimers = new Set<NodeJS.Timeout>();

  private constructor(
    readonly port: number,
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  /** Starts a proxy on 127.0.0.1 (a free port, or `port`) to `targetPort` on `targetHost` (loopback only). */
  static async start(targetPort: number, opts: { targetHost?: string; port?: number } = {}): Promise<FaultProxy> {
    const host = opts.targetHost ?? '127.0.0.1';
    if (!isLoopback(host)) throw new Error(`the fault proxy only targets loopback addresses, not ${host}`);
    const p = new FaultProxy(opts.port ?? 0, host, targetPort);
    await p.up();
    return p;
  }

  /** `grpc://127.0.0.1:<port>`. */
  get grpcUrl(): string {
    return `grpc://127.0.0.1:${this.port}`;
  }

  /** Open connections through the proxy. */
  get connections(): number {
    return this.pairs.size;
  }

  /** Listens (again): new connections are accepted. */
  async up(): Promise<void> {
    if (this.server) return;
    const server = net.createServer((c) => this.accept(c));
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    (this as { port: number }).port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Stops listening (new connections are refused) and resets every connection: the server is "down". */
  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    this.resetAll();
    if (s) {
      s.close();
      await once(s, 'close');
    }
  }

  private accept(client: net.Socket): void {
    this.stats.accepted++;
    const server = net.connect({ host: this.targetHost, port: this.targetPort });
    const pair: Pair = {
      client,
      server,
      blackholed: this.blackholeNew,
      tail: { up: Promise.resolve(), down: Promise.resolve() },
      closed: false,
    };
    if (this.cutNew) pair.cut = { direction: this.cutNew.direction, left: this.cutNew.bytes };
    this.pairs.add(pair);
    client.setNoDelay(true);
    server.setNoDelay(true);
    client.on('data', (d: Buffer) => this.forward(pair, 'up', d));
    server.on('data', (d: Buffer) => this.forward(pair, 'down', d));
    const end = () => this.closePair(pair, false);
    client.on('close', end);
    server.on('close', end);
    client.on('error', () => {});
    server.on('error', () => {});
  }

  private forward(pair: Pair, direction: Direction, data: Buffer): void {
    if (pair.closed) return;
    if (direction === 'down' && this.loseArmed && !pair.blackholed) {
      // The server's answer is lost; after a while the connection dies (both sides).
      const { resetAfterMs } = this.loseArmed;
      this.loseArmed = undefined;
      pair.blackholed = true;
      const t = setTimeout(() => {
        this.resetTimers.delete(t);
        this.resetPair(pair);
      }, resetAfterMs);
      this.resetTimers.add(t);
    }
    if (pair.blackholed) {
      this.stats.bytesDropped += data.length;
      return;
    }
    let chunk = data;
    let resetAfter = false;
    if (pair.cut && pair.cut.direction === direction) {
      if (chunk.length >= pair.cut.left) {
        chunk = chunk.subarray(0, pair.cut.left);
        resetAfter = true;
      }
      pair.cut.left -= chunk.length;
    }
    const to = direction === 'up' ? pair.server : pair.client;
    const send = () => {
      if (pair.closed) return;
      if (chunk.length > 0) {
        to.write(chunk);
        if (direction === 'up') this.stats.bytesUp += chunk.length;
        else this.stats.bytesDown += chunk.length;
      }
      if (resetAfter) this.resetPair(pair);
    };
    if (this.delayMs > 0) {
      const ms = this.delayMs;
      pair.tail[direction] = pair.tail[direction].then(() => new Promise<void>((r) => setTimeout(r, ms))).then(send);
    } else {
      send();
    }
  }

  private resetPair(pair: Pair): void {
    if (pair.closed) return;
    this.stats.resets++;
    this.closePair(pair, true);
  }

  private closePair(pair: Pair, reset: boolean): void {
    if (pair.closed) return;
    pair.closed = true;
    this.pairs.delete(pair);
    for (const s of [pair.client, pair.server]) {
      if (reset && typeof s.resetAndDestroy === 'function' && !s.destroyed) s.resetAndDestroy();
      else s.destroy();
    }
  }

  /** Delays every chunk each way by `ms` (0: none). */
  delay(ms: number): void {
    this.delayMs = ms;
  }

  /** Black-holes the open connections (bytes vanish, sockets stay open); `alsoNew`: new ones too. */
  blackhole(alsoNew = false): void {
    for (const p of this.pairs) p.blackholed = true;
    this.blackholeNew = alsoNew;
  }

  /** Resets (TCP RST) every open connection. */
  resetAll(): void {
    for (const p of [...this.pairs]) this.resetPair(p);
  }

  /** Resets each open connection after `bytes` more bytes in `direction`; `alsoNew`: new ones too. */
  cutAfter(bytes: number, direction: Direction = 'down', alsoNew = false): void {
    for (const p of this.pairs) p.cut = { direction, left: bytes };
    this.cutNew = alsoNew ? { direction, bytes } : undefined;
  }

  /**
   * Swallows the next bytes the server sends (the answer to the next request) and resets that
   * connection `resetAfterMs` later, leaving the server free to finish: a write applied whose
   * answer is lost.
   */
  loseNextResponse(resetAfterMs = 200): void {
    this.loseArmed = { resetAfterMs };
  }

  /** Switches every fault off (open black-holed connections stay dead: reset them with `resetAll`). */
  heal(): void {
    this.delayMs = 0;
    this.blackholeNew = false;
    this.cutNew = undefined;
    this.loseArmed = undefined;
    for (const p of this.pairs) p.cut = undefined;
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    for (const t of this.resetTimers) clearTimeout(t);
    this.resetTimers.clear();
    await this.down();
  }
}
