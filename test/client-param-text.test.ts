/**
 * The scalar fast path of parameter text (scalarParamText, which executeMany's parameter columns
 * use) against the Value path it stands for, `paramToText(toParam(v))`, what the server makes of a
 * parameter Value: the same text, or the same error, for every scalar; `undefined` for the rest.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { paramToText, scalarParamText } from '../src/client/protocol/param-text.js';
import { toParam } from '../src/client/protocol/params.js';

function viaValue(v: unknown, i: number): { text?: string | null; error?: string } {
  try {
    return { text: paramToText(toParam(v, i), i) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function viaScalar(v: unknown, i: number): { text?: string | null; error?: string } | undefined {
  try {
    const t = scalarParamText(v, i);
    return t === undefined ? undefined : { text: t };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

const scalars: unknown[] = [
  undefined,
  null,
  true,
  false,
  0,
  -0,
  1,
  -1,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31),
  -(2 ** 31) - 1,
  2 ** 53 - 1,
  2 ** 53,
  -(2 ** 53) - 2,
  1e20,
  1e21,
  1.5,
  -1.5e-300,
  5e-324,
  Number.MAX_VALUE,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  0n,
  2n ** 63n - 1n,
  2n ** 63n,
  -(2n ** 63n),
  -(2n ** 63n) - 1n,
  10n ** 40n,
  '',
  'abc',
  'ünïcødé ✓ 🙂',
  'quote " back\\slash {1,2} NULL',
  'nul \0 inside',
  new Date(0),
  new Date(-1),
  new Date(Date.UTC(2026, 11, 3, 10, 11, 12, 345)),
  new Date(-62135596800000),
  new Date(-62135596800001),
  new Date(8.64e15),
  new Date(-8.64e15),
];

test('every scalar gives the text (or the error) of its Value', () => {
  for (const [i, v] of scalars.entries()) {
    assert.deepEqual(viaScalar(v, i), viaValue(v, i), `${typeof v} ${String(v)}`);
  }
});

test('random numbers, big integers and dates agree', () => {
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let n = 0; n < 5000; n++) {
    const r = rand();
    const v =
      n % 4 === 0
        ? (rand() - 0.5) * 10 ** Math.floor(rand() * 40 - 20)
        : n % 4 === 1
          ? Math.floor((rand() - 0.5) * 2 ** Math.floor(rand() * 60))
          : n % 4 === 2
            ? BigInt(Math.floor((rand() - 0.5) * 2 ** 50)) * BigInt(Math.floor(r * 2 ** 20))
            : new Date(Math.floor((rand() - 0.5) * 2 * 8.64e15));
    assert.deepEqual(viaScalar(v, 0), viaValue(v, 0), String(v));
  }
});

test('everything else takes the Value path', () => {
  for (const v of [[1, 2], new Uint8Array([1]), new ArrayBuffer(2), { a: 1 }, new Date(Number.NaN), Symbol('s'), () => 1, new Map()]) {
    assert.equal(scalarParamText(v, 0), undefined, String(typeof v));
  }
});
