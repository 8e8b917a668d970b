/**
 * The built package: `npm run build` works, and the `exports` of package.json load from both
 * module systems (ESM `import` and CommonJS `require`), each from its own build. The package is
 * loaded by name through Node's package self-reference, in a fresh `node` without tsx, so this
 * is what a consumer gets. The full packed-tarball check (with arethetypeswrong) is
 * `npm run check:package`.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { VERSION } from '../src/server/version.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; version: string };

interface Loaded {
  /** The file the specifier resolved to, relative to the package root. */
  file: string;
  /** Export names and their `typeof`. */
  exports: Record<string, string>;
}

/** Loads `specifier` in a fresh node process, with `import()` or `require()`. */
function load(specifier: string, how: 'import' | 'require'): Loaded {
  const probe =
    how === 'import'
      ? `const m = await import(${JSON.stringify(specifier)});
         const file = import.meta.resolve(${JSON.stringify(specifier)});`
      : `const { createRequire } = await import('node:module');
         const require = createRequire(process.cwd() + '/');
         const m = require(${JSON.stringify(specifier)});
         const file = require.resolve(${JSON.stringify(specifier)});`;
  const out = execFileSync(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `${probe}
       const exports = Object.fromEntries(Object.keys(m).filter((k) => k !== 'default' && k !== '__esModule').map((k) => [k, typeof m[k]]));
       console.log(JSON.stringify({ file, exports }));`,
    ],
    { cwd: root, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } },
  );
  const result = JSON.parse(out) as Loaded;
  return { ...result, file: relative(root, result.file.replace(/^file:\/\//, '')) };
}

describe('package', { timeout: 60_000 }, () => {
  before(() => {
    execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'pipe' });
  });

  test('src/server/version.ts VERSION equals package.json version', () => {
    assert.equal(VERSION, pkg.version);
  });

  describe(`${pkg.name}/server`, () => {
    const specifier = `${pkg.name}/server`;

    test('ESM import loads dist/esm and exports startServer', () => {
      const { file, exports } = load(specifier, 'import');
      assert.equal(file, 'dist/esm/src/server/index.js');
      assert.equal(exports.startServer, 'function');
      assert.equal(exports.optionsFromEnv, 'function');
      assert.equal(exports.serverDefaults, 'object');
    });

    test('CJS require loads dist/cjs with the same exports', () => {
      const { file, exports } = load(specifier, 'require');
      assert.equal(file, 'dist/cjs/src/server/index.js');
      assert.equal(exports.startServer, 'function');
      assert.deepEqual(exports, load(specifier, 'import').exports);
    });
  });

  describe(`${pkg.name} (client entry)`, () => {
    const present = existsSync(join(root, 'src', 'index.ts'));
    const skip = present ? false : 'src/index.ts does not exist yet: the client entry is not checked';

    for (const specifier of [pkg.name, `${pkg.name}/node`]) {
      test(`${specifier}: ESM import and CJS require load their builds with the same exports`, { skip }, () => {
        const esm = load(specifier, 'import');
        const cjs = load(specifier, 'require');
        assert.equal(esm.file, 'dist/esm/src/index.js');
        assert.equal(cjs.file, 'dist/cjs/src/index.js');
        assert.ok(Object.keys(esm.exports).length > 0, 'the client entry exports nothing');
        assert.deepEqual(cjs.exports, esm.exports);
      });
    }
  });

  test('the heliosdb bin keeps its shebang and prints the version', () => {
    const bin = join(root, 'dist', 'esm', 'src', 'bin', 'heliosdb.js');
    assert.ok(readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n'));
    assert.equal(execFileSync(process.execPath, [bin, '--version'], { encoding: 'utf8' }).trim(), pkg.version);
  });
});
