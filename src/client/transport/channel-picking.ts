/**
 * Which channel a call or a transaction gets: the least-loaded one with a free call slot,
 * rotating between endpoints whose circuit lets calls through, avoiding the endpoint where the
 * call's previous attempt failed when another can take it. Pure functions of the pool's state.
 * @packageDocumentation
 */
import type { Endpoint, PooledChannel } from './pooled-channel.js';

/** The least-loaded live channel of `ep` (of any endpoint when undefined); stops at an idle one. */
export function leastLoadedOn(
  channels: readonly PooledChannel[],
  ep: Endpoint | undefined,
  load: (ch: PooledChannel) => number = (ch) => ch.inFlight,
): PooledChannel | undefined {
  let best: PooledChannel | undefined;
  for (const ch of channels) {
    if (ch.draining || (ep && ch.endpoint !== ep)) continue;
    if (!best || load(ch) < load(best)) best = ch;
    if (load(ch) === 0) break;
  }
  return best;
}

/** The busiest live channel of `ep` (any endpoint when undefined) with fewer than `maxStreams` calls. */
function busiestWithRoom(channels: readonly PooledChannel[], ep: Endpoint | undefined, maxStreams: number): PooledChannel | undefined {
  let best: PooledChannel | undefined;
  for (const ch of channels) {
    if (ch.draining || (ep && ch.endpoint !== ep) || ch.inFlight >= maxStreams) continue;
    if (!best || ch.inFlight > best.inFlight) best = ch;
  }
  return best;
}

/** The endpoints in the order to try, from `start`: not retired, circuit not open. */
function usableFrom(endpoints: readonly Endpoint[], start: number): Endpoint[] {
  const n = endpoints.length;
  const out: Endpoint[] = [];
  for (let i = 0; i < n; i++) {
    const ep = endpoints[(start + i) % n]!;
    if (!ep.retired && ep.breaker.available()) out.push(ep);
  }
  return out;
}

/**
 * The channel for a call: least loaded with a free slot (`maxStreams`), on a usable endpoint,
 * not on `avoid` unless nothing else has room. `start` rotates the endpoints' order. `pack`: the
 * busiest channel with a free slot instead (session operations: fewer, fuller streams). Does not
 * take the circuit's slot (the caller does).
 */
export function pickForCall(
  endpoints: readonly Endpoint[],
  channels: readonly PooledChannel[],
  maxStreams: number,
  start: number,
  avoid?: string,
  pack = false,
): PooledChannel | undefined {
  if (endpoints.length === 1) {
    const ep = endpoints[0]!;
    if (!ep.breaker.available()) return undefined;
    if (pack) return busiestWithRoom(channels, undefined, maxStreams);
    const best = leastLoadedOn(channels, undefined);
    return best && best.inFlight < maxStreams ? best : undefined;
  }
  let pick: PooledChannel | undefined;
  let fallback: PooledChannel | undefined;
  for (const ep of usableFrom(endpoints, start)) {
    const best = pack ? busiestWithRoom(channels, ep, maxStreams) : leastLoadedOn(channels, ep);
    if (!best || best.inFlight >= maxStreams) continue;
    if (ep.url === avoid) {
      fallback ??= best;
      continue;
    }
    if (!pick || best.inFlight < pick.inFlight) pick = best;
  }
  return pick ?? fallback;
}

/** The channel for a transaction's pin: the fewest calls and pins, on a usable endpoint. */
export function pickForPin(endpoints: readonly Endpoint[], channels: readonly PooledChannel[], start: number): PooledChannel | undefined {
  let best: PooledChannel | undefined;
  const load = (ch: PooledChannel) => ch.inFlight + ch.pins;
  for (const ep of usableFrom(endpoints, start)) {
    const c = leastLoadedOn(channels, ep, load);
    if (c && (!best || load(c) < load(best))) best = c;
  }
  return best;
}

/** The endpoint a new channel goes to: the usable one with the fewest live channels (any, when none is usable). */
export function endpointForNewChannel(active: readonly Endpoint[], liveOn: (ep: Endpoint) => number): Endpoint {
  const usable = active.filter((e) => e.breaker.available());
  let best: Endpoint | undefined;
  for (const ep of usable.length > 0 ? usable : active) if (!best || liveOn(ep) < liveOn(best)) best = ep;
  return best!;
}
