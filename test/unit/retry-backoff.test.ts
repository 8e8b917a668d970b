/** Backoff, options and the retry budget, without a server. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RetryBudget } from '../../src/client/interceptors/retry-budget.js';
import { resolveRetryOptions, retryDefaults, retryDelayFor } from '../../src/client/interceptors/retry-options.js';

test('delay: exponential from baseDelayMs, capped at maxDelayMs, jitter on top, never below retryAfterMs', () => {
  const o = resolveRetryOptions({ baseDelayMs: 100, maxDelayMs: 1000, exponentialBase: 2, jitter: 0.5 });
  const none = () => 0;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 10].map((r) => retryDelayFor(r, o, undefined, none)),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.equal(
    retryDelayFor(1, o, undefined, () => 1),
    300,
    'full jitter adds jitter x delay',
  );
  assert.equal(retryDelayFor(0, o, 5000, none), 5000, "the server's retryAfterMs wins");
  for (let i = 0; i < 200; i++) {
    const d = retryDelayFor(2, o);
    assert.ok(d >= 400 && d <= 600, `${d}`);
  }
});

test('options: defaults, false = one attempt without keys, nested budget merge, invalid values refused', () => {
  assert.deepEqual(resolveRetryOptions(undefined), retryDefaults);
  const off = resolveRetryOptions(false);
  assert.equal(off.maxAttempts, 1);
  assert.equal(off.idempotencyKeys, false);
  assert.deepEqual(resolveRetryOptions({ budget: { maxTokens: 4 } as never }).budget, { maxTokens: 4, tokenRatio: 0.1 });
  assert.equal(resolveRetryOptions({ budget: false }).budget, false);
  assert.equal(resolveRetryOptions({ maxAttempts: undefined }).maxAttempts, retryDefaults.maxAttempts);
  for (const bad of [
    { maxAttempts: 0 },
    { maxAttempts: 1.5 },
    { baseDelayMs: 10, maxDelayMs: 5 },
    { exponentialBase: 0.5 },
    { jitter: 2 },
  ]) {
    assert.throws(() => resolveRetryOptions(bad), RangeError, JSON.stringify(bad));
  }
});

test('budget: a retry needs more than half the tokens; successes earn tokenRatio back', () => {
  const b = new RetryBudget(10, 0.5);
  for (let i = 0; i < 4; i++) b.onFailure();
  assert.equal(b.allows(), true);
  b.onFailure();
  assert.equal(b.allows(), false, '5 of 10 tokens is not more than half');
  b.onSuccess();
  assert.equal(b.tokens, 5.5);
  assert.equal(b.allows(), true);
  for (let i = 0; i < 100; i++) b.onFailure();
  assert.equal(b.tokens, 0);
  for (let i = 0; i < 100; i++) b.onSuccess();
  assert.equal(b.tokens, 10);
});
