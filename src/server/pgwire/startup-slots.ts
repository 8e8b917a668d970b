/**
 * Connections of the PostgreSQL port still in their start-up or authentication, counted per client
 * address: one address may have at most {@link maxStartingPerAddress} at once, so a client that
 * trickles start-up packets from one address cannot take every `--max-connections` slot. A
 * connection beyond it is refused at once with 53300; a connection leaves the count when it is
 * authenticated or closed.
 * @packageDocumentation
 */

/** Connections one address may have in start-up or authentication at once. */
export const maxStartingPerAddress = 32;

/** Ends a connection's count; calling it again does nothing. */
export type LeaveStartup = () => void;

/** See the file comment. One per listener. */
export class StartingConnections {
  private readonly byAddress = new Map<string, number>();

  constructor(private readonly max: number = maxStartingPerAddress) {}

  /** Counts a new connection from `address`, or returns undefined when that address has `max` already. */
  enter(address: string): LeaveStartup | undefined {
    const n = this.byAddress.get(address) ?? 0;
    if (n >= this.max) return undefined;
    this.byAddress.set(address, n + 1);
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const m = (this.byAddress.get(address) ?? 1) - 1;
      if (m > 0) this.byAddress.set(address, m);
      else this.byAddress.delete(address);
    };
  }
}
