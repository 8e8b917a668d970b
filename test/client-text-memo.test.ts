/** The client's memo of answers per SQL text (src/client/text-memo.ts): bounded by size class. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TextMemo } from '../src/client/text-memo.js';

test('short texts: the last thousand; long ones: the last eight; longer than 1 MiB: none', () => {
  const m = new TextMemo<number>();
  for (let i = 0; i < 1001; i++) m.set(`SELECT ${i}`, i);
  assert.equal(m.has('SELECT 0'), false, 'the oldest short text is forgotten');
  assert.equal(m.get('SELECT 1000'), 1000);
  const long = (i: number) => `SELECT ${i} /* ${'x'.repeat(5000)} */`;
  for (let i = 0; i < 9; i++) m.set(long(i), i);
  assert.equal(m.has(long(0)), false);
  assert.equal(m.get(long(8)), 8);
  assert.equal(m.get('SELECT 999'), 999, 'long texts do not push short ones out');
  const huge = `SELECT 1 /* ${'x'.repeat(1024 * 1024)} */`;
  m.set(huge, 1);
  assert.equal(m.has(huge), false);
  m.set('SELECT undefined', undefined as unknown as number);
  assert.equal(m.has('SELECT undefined'), true, 'an undefined answer is remembered too');
});
