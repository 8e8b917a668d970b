// Builds the package into dist/ (`npm run build`):
//   dist/esm/{src,gen}/  ESM JavaScript + .d.ts, compiled by tsc with tsconfig.build.json.
//   dist/cjs/{src,gen}/  CommonJS JavaScript (esbuild, one output file per source file, no
//                        bundling, so relative `./x.js` requires resolve file by file) and the
//                        same .d.ts files, read as CommonJS declarations thanks to
//                        dist/cjs/package.json `{"type":"commonjs"}`.
// The new trees are built in dist/.staging-<pid>/ and swapped in at the end, so a failed build
// leaves the previous dist/ intact and a concurrent reader never sees a half-written one.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const started = performance.now();
const dist = join(root, 'dist');
const out = join(dist, `.staging-${process.pid}`);
const old = join(dist, `.old-${process.pid}`);
const sourceDirs = ['src', 'gen'];
const bins = ['src/bin/heliosdb.js'];

const walk = (dir) =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });

rmSync(out, { recursive: true, force: true });
try {
  // 1. ESM + declarations with tsc (also the type check of src/ and gen/).
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', join(out, 'esm')], {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  } catch {
    throw new Error('tsc failed (see above)');
  }
  writeFileSync(join(out, 'esm', 'package.json'), `${JSON.stringify({ type: 'module' }, null, 2)}\n`);

  // 2. CommonJS with esbuild, file by file from the same sources.
  const entryPoints = sourceDirs
    .flatMap((d) => walk(join(root, d)))
    .filter((p) => /\.[cm]?ts$/.test(p) && !/\.d\.[cm]?ts$/.test(p));
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints,
    outbase: root,
    outdir: join(out, 'cjs'),
    bundle: false,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    sourcemap: true,
    logLevel: 'warning',
    logOverride: { 'empty-import-meta': 'error' },
  });
  if (result.errors.length) throw new Error('esbuild failed');
  writeFileSync(join(out, 'cjs', 'package.json'), `${JSON.stringify({ type: 'commonjs' }, null, 2)}\n`);

  // 3. The declarations (and their maps, whose relative paths hold at the same depth) for CJS.
  for (const file of walk(join(out, 'esm'))) {
    if (!/\.d\.ts(\.map)?$/.test(file)) continue;
    const target = join(out, 'cjs', relative(join(out, 'esm'), file));
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(file, target);
  }

  // 4. Executables: tsc and esbuild keep the `#!/usr/bin/env node` line; make the files executable.
  for (const bin of bins) {
    for (const flavor of ['esm', 'cjs']) {
      const file = join(out, flavor, bin);
      if (!existsSync(file)) throw new Error(`missing ${relative(root, file)}`);
      chmodSync(file, 0o755);
    }
  }

  // 5. Swap the new trees in.
  mkdirSync(old);
  for (const flavor of ['esm', 'cjs']) {
    // A concurrent build may swap its tree in between our two renames: move it away and retry.
    for (let attempt = 0; ; attempt++) {
      if (existsSync(join(dist, flavor))) {
        rmSync(join(old, flavor), { recursive: true, force: true });
        renameSync(join(dist, flavor), join(old, flavor));
      }
      try {
        renameSync(join(out, flavor), join(dist, flavor));
        break;
      } catch (err) {
        if (attempt >= 5 || !['ENOTEMPTY', 'EEXIST'].includes(err.code)) throw err;
      }
    }
  }
  rmSync(old, { recursive: true, force: true });
  rmSync(out, { recursive: true, force: true });
} catch (err) {
  rmSync(out, { recursive: true, force: true });
  console.error(`build failed: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
console.log(`built dist/esm and dist/cjs in ${((performance.now() - started) / 1000).toFixed(1)} s`);
