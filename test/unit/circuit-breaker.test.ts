/** The circuit breaker's states on a fake clock: closed → open → half-open probe → closed or open for twice as long. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitBreaker } from '../../src/client/circuit-breaker.js';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

test('opens after failureThreshold consecutive failures; a success resets the count', () => {
  const c = clock();
  const b = new CircuitBreaker({ failureThreshold: 3, openMs: 100, maxOpenMs: 1000 }, c.now);
  b.onFailure();
  b.onFailure();
  b.onSuccess();
  b.onFailure();
  b.onFailure();
  assert.equal(b.current, 'closed');
  b.onFailure();
  assert.equal(b.current, 'open');
  assert.equal(b.tryAcquire(), false);
  assert.equal(b.stats().rejected, 1);
  assert.equal(b.retryInMs(), 100);
});

test('half-open lets exactly one probe through; its failure doubles the open time up to maxOpenMs', () => {
  const c = clock();
  const b = new CircuitBreaker({ failureThreshold: 1, openMs: 100, maxOpenMs: 300 }, c.now);
  b.onFailure();
  c.advance(100);
  assert.equal(b.current, 'half-open');
  assert.equal(b.tryAcquire(), true);
  assert.equal(b.tryAcquire(), false, 'a second call while the probe is out');
  b.onFailure();
  assert.equal(b.current, 'open');
  assert.equal(b.retryInMs(), 200);
  c.advance(200);
  assert.equal(b.tryAcquire(), true);
  b.onFailure();
  assert.equal(b.retryInMs(), 300, 'capped at maxOpenMs');
  c.advance(300);
  assert.equal(b.tryAcquire(), true);
  b.onSuccess();
  assert.equal(b.current, 'closed');
  assert.equal(b.stats().opened, 3);
  b.onFailure();
  assert.equal(b.retryInMs(), 100, 'a closed circuit starts again from openMs');
});

test('a cancelled probe frees the slot; a probe that never answers frees it after maxOpenMs', () => {
  const c = clock();
  const b = new CircuitBreaker({ failureThreshold: 1, openMs: 10, maxOpenMs: 50 }, c.now);
  b.onFailure();
  c.advance(10);
  assert.equal(b.tryAcquire(), true);
  b.onNeutral();
  assert.equal(b.available(), true);
  assert.equal(b.tryAcquire(), true);
  assert.equal(b.available(), false);
  c.advance(50);
  assert.equal(b.available(), true);
});

test('false never opens; bad settings throw RangeError', () => {
  const b = new CircuitBreaker(false);
  for (let i = 0; i < 1000; i++) b.onFailure();
  assert.equal(b.current, 'closed');
  assert.throws(() => new CircuitBreaker({ failureThreshold: 0 }), RangeError);
  assert.throws(() => new CircuitBreaker({ openMs: 10, maxOpenMs: 5 }), RangeError);
  assert.throws(() => new CircuitBreaker({ openMs: Number.NaN }), RangeError);
});
