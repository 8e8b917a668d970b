// Fails when `buf lint` fails or when regenerating the stubs would change gen/.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const bin = (name) => join('node_modules', '.bin', name);
const env = { ...process.env, PATH: `${join(process.cwd(), 'node_modules', '.bin')}:${process.env.PATH}` };
execFileSync(bin('buf'), ['lint'], { stdio: 'inherit', env });

const out = mkdtempSync(join(tmpdir(), 'heliosdb-gen-'));
try {
  execFileSync(bin('buf'), ['generate', '-o', out], { stdio: 'inherit', env });
  const list = (dir) =>
    readdirSync(dir).flatMap((f) => {
      const p = join(dir, f);
      return statSync(p).isDirectory() ? list(p) : [p];
    });
  const fresh = new Map(list(join(out, 'gen')).map((p) => [relative(join(out, 'gen'), p), readFileSync(p, 'utf8')]));
  const committed = new Map(list('gen').map((p) => [relative('gen', p), readFileSync(p, 'utf8')]));
  const stale = [];
  for (const [f, text] of fresh) if (committed.get(f) !== text) stale.push(f);
  for (const f of committed.keys()) if (!fresh.has(f)) stale.push(f);
  if (stale.length) {
    console.error(`gen/ is stale (${stale.join(', ')}): run \`npm run generate\` and commit the result.`);
    process.exit(1);
  }
  console.log('buf lint passed; gen/ matches proto/');
} finally {
  rmSync(out, { recursive: true, force: true });
}
