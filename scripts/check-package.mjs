// `npm run check:package`: builds, packs both packages, and checks the client tarball with
// @arethetypeswrong/cli (profile node16: node10 resolution ignores `exports` subpaths), so ESM
// and CJS consumers both get the right types for every entry. The installed packages themselves
// (a query from the client against a server started from the server's bin, and a client tree
// without any server dependency) are tested by test/package.test.ts in `npm test`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
const work = mkdtempSync(join(tmpdir(), 'heliosdb-pack-'));
let failed = false;
try {
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--pack-destination', work, '--workspace', 'src/client', '--workspace', 'src/server'], {
      cwd: root,
      encoding: 'utf8',
    }),
  );
  for (const p of packed) console.log(`${p.filename}: ${p.entryCount} files, ${(p.size / 1024).toFixed(0)} KiB packed`);
  const client = packed.find((p) => p.name === '@heliosdb/client');
  const attw = (format) =>
    execFileSync(join(root, 'node_modules', '.bin', 'attw'), [join(work, client.filename), '--profile', 'node16', '--format', format], {
      cwd: work,
      encoding: 'utf8',
    });
  const json = (() => {
    try {
      return attw('json');
    } catch (err) {
      return err.stdout;
    }
  })();
  // attw exits 1 for problems its own profile ignores too: judge by the node16 and bundler ones.
  const problems = JSON.parse(json).analysis.problems.filter((p) => p.resolutionKind !== 'node10' && p.resolutionOption !== 'node10');
  try {
    console.log(attw('table-flipped'));
  } catch (err) {
    console.log(err.stdout);
  }
  if (problems.length) {
    console.error(JSON.stringify(problems, null, 2));
    failed = true;
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
if (failed) {
  console.error('check:package: arethetypeswrong reported problems (see above)');
  process.exit(1);
}
console.log('check:package: ok');
