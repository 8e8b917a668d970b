/**
 * Fuzzing every client decoder (compact row batches, array literals, dates, timestamps,
 * intervals, bytea, numbers and numerics, json, and typed ROW_FORMAT_VALUES batches) with
 * well-formed, mutated and random input: each case must return a value (the right one, for
 * well-formed input) or throw a typed HeliosDBError subclass — never a raw TypeError /
 * RangeError / SyntaxError — and finish within 50 ms. The cases run in a worker thread so that a
 * decoder that never returns (the array parser looped forever on `{"abc`) fails the test, naming
 * the input, instead of hanging it.
 *
 * The pseudo-random sequence starts from a fixed value, so every run checks the same cases;
 * HELIOSDB_FUZZ_START=<number> and HELIOSDB_FUZZ_CASES=<count> explore others.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { DecodeError, HeliosDBError } from '@heliosdb/client';
import { parseArrayLiteral } from '../src/client/protocol/array-literal.js';
import { decoders } from './helpers/decoder-fuzz.js';

const START = Number(process.env.HELIOSDB_FUZZ_START ?? 0x48454c49);
const CASES = Number(process.env.HELIOSDB_FUZZ_CASES ?? 3000);
const LIMIT_MS = 50;
/** A case that sends nothing for this long is taken to never return. */
const HANG_MS = 3000;

interface Done {
  type: 'done';
  failures: { i: number; input: string; why: string }[];
  failureCount: number;
  outcomes: Record<string, number>;
  slowest: number;
}

/** Runs one decoder's cases in a worker; rejects naming the input of a case that does not return. */
function runInWorker(decoder: string, start: number): Promise<Done> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./helpers/ts-worker.mjs', import.meta.url), {
      workerData: {
        module: pathToFileURL(new URL('./helpers/decoder-fuzz-worker.ts', import.meta.url).pathname).href,
        decoder,
        count: CASES,
        start,
        limitMs: LIMIT_MS,
      },
    });
    let last: { i: number; input: string } | undefined;
    let lastAt = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastAt < HANG_MS) return;
      clearInterval(watchdog);
      void worker.terminate();
      reject(
        new Error(
          `${decoder}: case ${last?.i ?? 0} did not return within ${HANG_MS} ms (start ${start}); input: ${last?.input ?? '(before the first case)'}`,
        ),
      );
    }, 100);
    worker.on('message', (m: { type: 'case'; i: number; input: string } | Done) => {
      lastAt = Date.now();
      if (m.type === 'case') last = m;
      else {
        clearInterval(watchdog);
        void worker.terminate();
        resolve(m);
      }
    });
    worker.on('error', (e) => {
      clearInterval(watchdog);
      reject(e);
    });
  });
}

for (const decoder of Object.keys(decoders)) {
  test(`${decoder}: ${CASES} cases return a value or throw a typed HeliosDBError, each within ${LIMIT_MS} ms`, async (t) => {
    const done = await runInWorker(decoder, START);
    const summary = `${decoder}: outcomes ${JSON.stringify(done.outcomes)}, slowest case ${done.slowest.toFixed(2)} ms`;
    t.diagnostic(summary);
    assert.equal(
      done.failureCount,
      0,
      `${summary}\n${done.failureCount} failing cases (start ${START}), the first ones:\n${done.failures.map((f) => `  #${f.i}: ${f.why}\n      input: ${f.input}`).join('\n')}`,
    );
    const total = Object.values(done.outcomes).reduce((a, b) => a + b, 0);
    assert.equal(total, CASES, summary);
    // The generators must reach both sides: values and typed errors (except where every text is a
    // value: dates pass through, timestamps and intervals not in PostgreSQL's format come back as text).
    assert.ok((done.outcomes.value ?? 0) > 0, `${summary}: no case decoded to a value`);
    if (!['dates', 'timestamps', 'intervals'].includes(decoder))
      assert.ok(
        Object.keys(done.outcomes).some((k) => k.startsWith('typed:')),
        `${summary}: no case was refused`,
      );
  });
}

test('the array parser: an unterminated quoted element and other malformed literals throw DecodeError at once', () => {
  for (const text of ['{"abc', '{"abc\\', '{abc', '{', '{1,}', '{,}', '{1}x', '{"a"b}', '{{{{{{{1}}}}}}}', '', '[1:2]']) {
    const t0 = performance.now();
    assert.throws(() => parseArrayLiteral(text), DecodeError, JSON.stringify(text));
    assert.ok(performance.now() - t0 < LIMIT_MS, JSON.stringify(text));
  }
  // PostgreSQL's output, exactly: quoting, escapes, NULL against "NULL", bounds, several dimensions, `;` as data.
  assert.deepEqual(parseArrayLiteral('{NULL,"NULL","","a\\"b","c\\\\d","e,f",g;h}'), [null, 'NULL', '', 'a"b', 'c\\d', 'e,f', 'g;h']);
  assert.deepEqual(parseArrayLiteral('[0:1]={{1,2},{3,4}}'), [
    ['1', '2'],
    ['3', '4'],
  ]);
  assert.deepEqual(parseArrayLiteral('{}'), []);
  assert.throws(
    () => parseArrayLiteral('{"abc'),
    (err: unknown) => err instanceof HeliosDBError && err.code === 'DECODE_ERROR',
  );
});
