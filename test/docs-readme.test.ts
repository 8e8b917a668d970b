/**
 * The figures the README states about the build: the browser bundle size it quotes is within 15%
 * of a fresh `npm run build:browser` measurement (the same esbuild bundle of src/client/web.ts).
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { bundleForBrowser, repoRoot } from '../scripts/browser-bundle.js';

test('the README states the browser bundle size npm run build:browser measures', async () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const m = /\*\*(\d+) KB minified and\s+gzipped\*\* \((\d+) KB minified\)/.exec(readme);
  assert.ok(m, 'the README states the bundle size as "**N KB minified and gzipped** (M KB minified)"');
  const bundle = await bundleForBrowser('src/client/web.ts');
  const near = (stated: number, measuredBytes: number, what: string) =>
    assert.ok(
      Math.abs(stated * 1000 - measuredBytes) <= 0.15 * measuredBytes,
      `README says ${stated} KB ${what}, a fresh bundle is ${(measuredBytes / 1000).toFixed(1)} KB: update README.md`,
    );
  near(Number(m[1]), bundle.gzipBytes, 'gzipped');
  near(Number(m[2]), bundle.bytes, 'minified');
});
