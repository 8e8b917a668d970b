/**
 * The worker side of test/client-decoders-fuzz.test.ts: runs `count` cases of one decoder and
 * reports each case's input before running it (so that a case that never returns is known), and
 * at the end every case that failed or took longer than the limit.
 * @packageDocumentation
 */
import { parentPort, workerData } from 'node:worker_threads';
import { classify, decoders, type Outcome } from './decoder-fuzz.js';
import { Rng } from './fuzz-text.js';

const { decoder, count, start, limitMs } = workerData as { decoder: string; count: number; start: number; limitMs: number };
const rng = new Rng(start);
const make = decoders[decoder];
const failures: { i: number; input: string; why: string }[] = [];
const outcomes: Record<string, number> = {};
let slowest = 0;
for (let i = 0; i < count; i++) {
  const c = make(rng);
  parentPort!.postMessage({ type: 'case', i, input: c.input });
  let best = Infinity;
  let outcome: Outcome = { kind: 'value' };
  // A case over the limit runs twice more: a garbage collection or a busy machine does not repeat.
  for (let attempt = 0; attempt < 3 && best > limitMs; attempt++) {
    const t0 = performance.now();
    outcome = classify(c);
    best = Math.min(best, performance.now() - t0);
  }
  slowest = Math.max(slowest, best);
  const key = outcome.kind === 'typed' ? `typed:${outcome.name}` : outcome.kind;
  outcomes[key] = (outcomes[key] ?? 0) + 1;
  if (outcome.kind === 'raw') failures.push({ i, input: c.input, why: `raw ${outcome.name} escaped: ${outcome.message}` });
  else if (outcome.kind === 'wrong') failures.push({ i, input: c.input, why: outcome.complaint });
  if (best > limitMs) failures.push({ i, input: c.input, why: `took ${best.toFixed(1)} ms (limit ${limitMs} ms)` });
}
parentPort!.postMessage({ type: 'done', failures: failures.slice(0, 20), failureCount: failures.length, outcomes, slowest });
