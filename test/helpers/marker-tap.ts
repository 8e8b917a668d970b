/**
 * A TCP forwarder for the fault tests (loopback only) that loses the answer to one chosen request:
 * it watches the bytes clients send for a marker (a unique string in the request's parameters:
 * protobuf strings travel as plain UTF-8 in HTTP/2 DATA frames), and after a chosen request
 * carrying it (the first, the second, ...: each attempt of a call sends it again) has gone to
 * the server, it loses what comes back: all of it (the server still finishes; the connection is
 * reset a little later), all but its first bytes (the answer had started), or whatever comes
 * because the connection is reset at once. The generic
 * test/helpers/fault-proxy.ts loses "the next response", whichever request it answers; a read
 * the server refuses as NOT_A_READ is answered before the keyed write that follows it, so these
 * tests need to pick the request by what it carries.
 * @packageDocumentation
 */
import { once } from 'node:events';
import net from 'node:net';

/** What happens once the chosen request has gone to the server. */
export type TapFault =
  /** Every byte the server sends back is dropped; both sockets are reset after `resetAfterMs`. */
  | { kind: 'lose'; resetAfterMs: number }
  /**
   * At most `bytes` of the first chunk the server sends next reach the client, then both sockets
   * are reset (a complete gRPC answer needs more than 12 bytes, so with up to 12 it is lost for
   * certain, and nothing of a later answer on that connection gets through).
   */
  | { kind: 'cut'; bytes: number }
  /** Both sockets are reset `afterMs` after the request went up (0: at once), whatever came back. */
  | { kind: 'reset'; afterMs: number };

interface Pair {
  client: net.Socket;
  server: net.Socket;
  /** The last bytes sent up, to find a marker split across chunks. */
  tail: Buffer;
  /** Bytes of the next chunk down let through before the reset ('cut'); undefined: no fault here. */
  passDown?: number;
  dropDown: boolean;
  closed: boolean;
}

interface Armed {
  marker: Buffer;
  /** The fault for each request carrying the marker, in order (null: it passes). */
  plan: (TapFault | null)[];
  seen: number;
}

/** See the file comment. Start one with {@link MarkerTap.start}. */
export class MarkerTap {
  /** Faults that fired, and connections accepted. */
  readonly stats = { accepted: 0, fired: 0, resets: 0 };
  private readonly pairs = new Set<Pair>();
  private server: net.Server | undefined;
  private armed: Armed | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(
    readonly port: number,
    readonly targetPort: number,
  ) {}

  /** Listens on a free port of 127.0.0.1 and forwards to `targetPort` on 127.0.0.1. */
  static async start(targetPort: number): Promise<MarkerTap> {
    const tap = new MarkerTap(0, targetPort);
    const server = net.createServer((c) => tap.accept(c));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    (tap as { port: number }).port = (server.address() as net.AddressInfo).port;
    tap.server = server;
    return tap;
  }

  /** `grpc://127.0.0.1:<port>`. */
  get grpcUrl(): string {
    return `grpc://127.0.0.1:${this.port}`;
  }

  /**
   * Arms a plan: once the k-th request carrying `marker` has gone up, `plan[k - 1]` is applied to
   * its connection (null: none). One plan at a time; a new one replaces the last.
   */
  arm(marker: string, plan: (TapFault | null)[]): void {
    this.armed = { marker: Buffer.from(marker, 'utf8'), plan, seen: 0 };
  }

  /** Requests carrying the armed marker seen so far. */
  get seen(): number {
    return this.armed?.seen ?? 0;
  }

  /** Whether some fault of the armed plan has not fired yet. */
  get pending(): boolean {
    const a = this.armed;
    return a?.plan.slice(a.seen).some((f) => f !== null) ?? false;
  }

  /** Forgets the armed plan. */
  disarm(): void {
    this.armed = undefined;
  }

  private accept(client: net.Socket): void {
    this.stats.accepted++;
    const server = net.connect({ host: '127.0.0.1', port: this.targetPort });
    const pair: Pair = { client, server, tail: Buffer.alloc(0), dropDown: false, closed: false };
    this.pairs.add(pair);
    client.setNoDelay(true);
    server.setNoDelay(true);
    client.on('data', (d: Buffer) => this.up(pair, d));
    server.on('data', (d: Buffer) => this.down(pair, d));
    const end = () => this.closePair(pair, false);
    client.on('close', end);
    server.on('close', end);
    client.on('error', () => {});
    server.on('error', () => {});
  }

  private up(pair: Pair, data: Buffer): void {
    if (pair.closed) return;
    pair.server.write(data);
    const a = this.armed;
    if (!a) return;
    const hay = Buffer.concat([pair.tail, data]);
    pair.tail = hay.subarray(Math.max(0, hay.length - (a.marker.length - 1)));
    for (let at = hay.indexOf(a.marker); at >= 0; at = hay.indexOf(a.marker, at + a.marker.length)) {
      // A marker that ended inside the kept tail was counted with the previous chunk.
      if (at + a.marker.length <= hay.length - data.length) continue;
      const fault = a.plan[a.seen++];
      if (fault) {
        this.fire(pair, fault);
        return;
      }
    }
  }

  private fire(pair: Pair, fault: TapFault): void {
    this.stats.fired++;
    if (fault.kind === 'lose') {
      pair.dropDown = true;
      this.later(pair, fault.resetAfterMs);
    } else if (fault.kind === 'cut') {
      pair.passDown = fault.bytes;
    } else if (fault.afterMs <= 0) {
      // The request's bytes were handed to the kernel just now; reset on the next turn so that
      // they leave first (on loopback they reach the server's socket at once).
      setImmediate(() => this.reset(pair));
    } else {
      this.later(pair, fault.afterMs);
    }
  }

  private later(pair: Pair, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.reset(pair);
    }, ms);
    this.timers.add(t);
  }

  private down(pair: Pair, data: Buffer): void {
    if (pair.closed || pair.dropDown) return;
    if (pair.passDown !== undefined) {
      const n = Math.min(pair.passDown, data.length);
      if (n > 0) pair.client.write(data.subarray(0, n));
      this.reset(pair);
      return;
    }
    pair.client.write(data);
  }

  private reset(pair: Pair): void {
    if (pair.closed) return;
    this.stats.resets++;
    this.closePair(pair, true);
  }

  private closePair(pair: Pair, reset: boolean): void {
    if (pair.closed) return;
    pair.closed = true;
    this.pairs.delete(pair);
    for (const s of [pair.client, pair.server]) {
      if (reset && !s.destroyed) s.resetAndDestroy();
      else s.destroy();
    }
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const p of [...this.pairs]) this.closePair(p, true);
    const s = this.server;
    this.server = undefined;
    if (s) {
      s.close();
      await once(s, 'close');
    }
  }
}
