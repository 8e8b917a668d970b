// `npm run check:package`: builds, packs, and checks the shape of the packed package.
//   1. @arethetypeswrong/cli on the tarball (profile node16: node10 resolution ignores `exports`
//      subpaths and is out of scope), so ESM and CJS consumers both get the right types.
//   2. The tarball, unpacked into a temporary node_modules/@heliosdb/client: every export is
//      `require()`d and `import()`ed from outside the package; each must resolve into the right
//      build (dist/cjs or dist/esm), expose the same names in both, and have its types files;
//      the `heliosdb` bin must start with a shebang and print the package version.
// An entry point whose source file does not exist yet (`.` and `./node` until src/index.ts is
// written) is skipped with a warning; every other failure exits 1.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const failures = [];
const fail = (msg) => {
  failures.push(msg);
  console.error(`  FAIL ${msg}`);
};
const run = (cmd, args, opts = {}) =>
  execFileSync(cmd, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts });

// Entry points and the source file each is built from (dist/esm/src/x.js <- src/x.ts).
const entries = Object.entries(pkg.exports)
  .filter(([, target]) => typeof target === 'object')
  .map(([subpath, target]) => {
    const esm = target.import.default;
    const source = esm.replace(/^\.\/dist\/esm\//, '').replace(/\.js$/, '.ts');
    return { subpath, target, source, present: existsSync(join(root, source)) };
  });
const missing = entries.filter((e) => !e.present);
for (const e of missing) console.warn(`WARNING: skipping export "${e.subpath}": ${e.source} does not exist yet`);

console.log('== build');
execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });

const work = mkdtempSync(join(tmpdir(), 'heliosdb-pack-'));
try {
  console.log('== npm pack');
  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], { stdio: ['ignore', 'pipe', 'ignore'] }));
  const tarball = join(work, packed.filename);
  console.log(`${packed.filename}: ${packed.entryCount} files, ${(packed.size / 1024).toFixed(0)} KiB packed`);
  const files = new Set(packed.files.map((f) => f.path));

  console.log('== attw (are the types wrong?)');
  const attwArgs = [tarball, '--profile', 'node16', '--format', 'table-flipped'];
  if (missing.length) attwArgs.push('--exclude-entrypoints', ...missing.map((e) => e.subpath));
  try {
    execFileSync(join(root, 'node_modules', '.bin', 'attw'), attwArgs, { cwd: work, stdio: 'inherit' });
  } catch {
    fail('attw reported problems (see above)');
  }

  console.log('== require() and import() of every export from the unpacked tarball');
  const consumer = join(work, 'consumer');
  const installed = join(consumer, 'node_modules', '@heliosdb', 'client');
  mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
  // The package's dependencies: the project's own node_modules.
  symlinkSync(join(root, 'node_modules'), join(installed, 'node_modules'), 'dir');

  for (const e of entries) {
    if (!e.present) continue;
    const spec = `${pkg.name}${e.subpath === '.' ? '' : e.subpath.slice(1)}`;
    for (const [condition, { types, default: js }] of Object.entries({ import: e.target.import, require: e.target.require })) {
      for (const file of [types, js]) if (!files.has(file.slice(2))) fail(`${spec} (${condition}): ${file} is not in the tarball`);
    }
    const probe = `
      const { createRequire } = await import('node:module');
      const require = createRequire(process.cwd() + '/');
      const spec = ${JSON.stringify(spec)};
      const cjs = require(spec);
      const esm = await import(spec);
      const names = (m) => Object.keys(m).filter((k) => k !== 'default' && k !== '__esModule').sort();
      console.log(JSON.stringify({
        cjsFile: require.resolve(spec),
        esmFile: import.meta.resolve(spec),
        cjs: names(cjs),
        esm: names(esm),
      }));`;
    let result;
    try {
      result = JSON.parse(run(process.execPath, ['--input-type=module', '-e', probe], { cwd: consumer }));
    } catch (err) {
      fail(`${spec}: loading failed: ${err.message.split('\n')[0]}`);
      continue;
    }
    const where = (file) => relative(installed, file.replace(/^file:\/\//, ''));
    if (where(result.cjsFile) !== e.target.require.default.slice(2)) fail(`${spec}: require() resolved to ${where(result.cjsFile)}`);
    if (where(result.esmFile) !== e.target.import.default.slice(2)) fail(`${spec}: import() resolved to ${where(result.esmFile)}`);
    if (result.esm.length === 0) fail(`${spec}: import() gave no exports`);
    if (JSON.stringify(result.cjs) !== JSON.stringify(result.esm))
      fail(`${spec}: CJS exports [${result.cjs}] differ from ESM exports [${result.esm}]`);
    console.log(`  ok ${spec}: ${result.esm.join(', ')}`);
  }

  console.log('== bin');
  for (const [name, file] of Object.entries(pkg.bin)) {
    const path = join(installed, file);
    if (!existsSync(path)) {
      fail(`bin ${name}: ${file} is not in the tarball`);
      continue;
    }
    if (!readFileSync(path, 'utf8').startsWith('#!/usr/bin/env node\n')) fail(`bin ${name}: no shebang in ${file}`);
    const version = run(process.execPath, [path, '--version'], { cwd: consumer }).trim();
    if (version !== pkg.version) fail(`bin ${name} --version printed ${version}, package.json says ${pkg.version}`);
    else console.log(`  ok ${name} --version: ${version}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

if (failures.length) {
  console.error(`\ncheck:package: ${failures.length} problem(s)`);
  process.exit(1);
}
console.log(`\ncheck:package: ok${missing.length ? ` (skipped, source missing: ${missing.map((e) => e.subpath).join(' ')})` : ''}`);
