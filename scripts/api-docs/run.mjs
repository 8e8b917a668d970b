// `npm run docs`: runs TypeDoc from this workspace (scripts/api-docs), with the TypeScript 6 it
// holds, since TypeDoc 0.28 does not run on the repository's TypeScript 7. Extra arguments go to
// TypeDoc (`npm run docs -- --json out.json`). Output: docs/api/ (generated, not committed).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, 'package.json'));

let typedocPackage;
try {
  typedocPackage = require.resolve('typedoc/package.json');
} catch {
  console.error('TypeDoc is not installed: run `npm install` at the repository root (scripts/api-docs is a workspace).');
  process.exit(1);
}
const typescript = createRequire(typedocPackage)('typescript/package.json').version;
if (Number(typescript.split('.')[0]) > 6) {
  console.error(`TypeDoc would run on TypeScript ${typescript}; it needs 6 or older (scripts/api-docs/node_modules/typescript).`);
  process.exit(1);
}
const bin = join(dirname(typedocPackage), 'bin', 'typedoc');
const run = spawnSync(process.execPath, [bin, '--options', join(here, 'typedoc.config.mjs'), ...process.argv.slice(2)], {
  cwd: here,
  stdio: 'inherit',
});
process.exit(run.status ?? 1);
