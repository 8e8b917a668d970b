/** Which channel a call or a pin gets, on hand-built pool states (no sockets). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as grpc from '@grpc/grpc-js';
import { CircuitBreaker } from '../../src/client/circuit-breaker.js';
import { endpointForNewChannel, leastLoadedOn, pickForCall, pickForPin } from '../../src/client/transport/channel-picking.js';
import { Endpoint, PooledChannel } from '../../src/client/transport/pooled-channel.js';

const endpoint = (url: string) => new Endpoint({ url, target: url }, new CircuitBreaker({ failureThreshold: 1 }));
let ids = 0;
function channel(ep: Endpoint, inFlight: number, pins = 0): PooledChannel {
  const ch = new PooledChannel(ids++, {} as grpc.Client, ep);
  ch.inFlight = inFlight;
  ch.pins = pins;
  return ch;
}

test('least loaded, skipping draining channels and other endpoints', () => {
  const a = endpoint('a');
  const b = endpoint('b');
  const chs = [channel(a, 5), channel(a, 2), channel(b, 0), channel(a, 1)];
  chs[3]!.draining = true;
  assert.equal(leastLoadedOn(chs, a), chs[1]);
  assert.equal(leastLoadedOn(chs, undefined), chs[2]);
  assert.equal(leastLoadedOn([], a), undefined);
});

test('a call: free slot required; avoids the endpoint of the failed attempt unless nothing else has room', () => {
  const a = endpoint('a');
  const b = endpoint('b');
  const ca = channel(a, 1);
  const cb = channel(b, 3);
  assert.equal(pickForCall([a, b], [ca, cb], 10, 0), ca);
  assert.equal(pickForCall([a, b], [ca, cb], 10, 0, 'a'), cb);
  cb.inFlight = 10;
  assert.equal(pickForCall([a, b], [ca, cb], 10, 0, 'a'), ca, 'the avoided endpoint as a fallback');
  ca.inFlight = 10;
  assert.equal(pickForCall([a, b], [ca, cb], 10, 0), undefined, 'every slot taken');
});

test('an open circuit takes no calls, pins or new channels while another endpoint can', () => {
  const a = endpoint('a');
  const b = endpoint('b');
  a.breaker.onFailure();
  const ca = channel(a, 0);
  const cb = channel(b, 7, 2);
  assert.equal(pickForCall([a, b], [ca, cb], 10, 0), cb);
  assert.equal(pickForCall([a], [ca], 10, 0), undefined);
  assert.equal(pickForPin([a, b], [ca, cb], 0), cb);
  assert.equal(
    endpointForNewChannel([a, b], () => 0),
    b,
  );
  b.breaker.onFailure();
  assert.ok([a, b].includes(endpointForNewChannel([a, b], () => 0)), 'any endpoint when none is usable');
});

test('a pin counts calls and pins together; a new channel goes where the fewest live', () => {
  const a = endpoint('a');
  const b = endpoint('b');
  const ca = channel(a, 1, 3);
  const cb = channel(b, 2, 0);
  assert.equal(pickForPin([a, b], [ca, cb], 0), cb);
  b.retired = true;
  assert.equal(pickForPin([a, b], [ca, cb], 0), ca, 'a retired endpoint takes no pin');
  const live = new Map([
    [a, 3],
    [b, 1],
  ]);
  assert.equal(
    endpointForNewChannel([a, b], (ep) => live.get(ep)!),
    b,
  );
});
