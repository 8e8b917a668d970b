/**
 * Asserting that a client call rejects with an SDK error class.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';

/** Awaits `p` (or calls it), asserts it rejects with an instance of `cls`, and returns the error. */
export async function rejects<E extends Error>(p: Promise<unknown> | (() => unknown), cls: new (...a: never[]) => E): Promise<E> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    return e as E;
  }
  assert.fail(`expected ${cls.name}, but the call succeeded`);
}
