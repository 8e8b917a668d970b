/**
 * `npm run docs`: TypeDoc builds the API reference of both packages with zero warnings (warnings
 * are errors in scripts/api-docs/typedoc.config.mjs), and the reference shows the public API only:
 * no internal constructors, no `runner`, none of the error plumbing `errors.ts` exports for the
 * client's own use. The reference is built into a temporary directory (docs/api/ is generated
 * and not committed).
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const workspace = join(root, 'scripts', 'api-docs');

/** A reflection of TypeDoc's JSON output, as far as this test reads it. */
interface Reflection {
  name: string;
  kind: number;
  children?: Reflection[];
}
const kindConstructor = 512;

function typedocInstalled(): boolean {
  try {
    createRequire(join(workspace, 'package.json')).resolve('typedoc/package.json');
    return true;
  } catch {
    return false;
  }
}

const installed = typedocInstalled();
if (!installed && process.env.CI !== 'true') {
  console.warn('SKIPPED test/docs-api.test.ts: TypeDoc is not installed (npm install at the root installs the scripts/api-docs workspace)');
}

const out = mkdtempSync(join(tmpdir(), 'heliosdb-docs-api-'));
after(() => rmSync(out, { recursive: true, force: true }));

test('npm run docs builds both packages with zero warnings and hides the internals', {
  skip: !installed && process.env.CI !== 'true',
}, () => {
  const run = spawnSync(process.execPath, [join(workspace, 'run.mjs'), '--out', join(out, 'html'), '--json', join(out, 'api.json')], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  const output = `${run.stdout}\n${run.stderr}`;
  assert.equal(run.status, 0, output);
  assert.doesNotMatch(output, /warning|error/i, output);
  assert.ok(existsSync(join(out, 'html', 'index.html')));

  const project = JSON.parse(readFileSync(join(out, 'api.json'), 'utf8')) as Reflection;
  const modules = new Map((project.children ?? []).map((m) => [m.name, m]));
  assert.deepEqual([...modules.keys()].sort(), ['@heliosdb/client', '@heliosdb/server']);
  const client = modules.get('@heliosdb/client')?.children ?? [];
  const server = modules.get('@heliosdb/server')?.children ?? [];
  const names = new Set(client.map((r) => r.name));
  const member = (cls: string, name: string) => client.find((r) => r.name === cls)?.children?.find((c) => c.name === name);

  // The public API is there, with its documented members.
  for (const name of [
    'createClient',
    'HeliosDBClient',
    'BaseClient',
    'Transaction',
    'ResultStream',
    'UniqueViolationError',
    'ConnectionConfig',
  ])
    assert.ok(names.has(name), `${name} is documented`);
  for (const name of ['query', 'stream', 'transaction', 'begin', 'prepare', 'batch', 'copyFrom', 'listen', 'close'])
    assert.ok(member('BaseClient', name), `BaseClient.${name} is documented`);
  assert.ok(
    server.some((r) => r.name === 'startServer'),
    'startServer is documented',
  );

  // The internals are not.
  for (const name of ['toHeliosError', 'reasonName', 'ErrorContext', 'QueryRunner']) assert.ok(!names.has(name), `${name} is hidden`);
  assert.equal(member('BaseClient', 'runner'), undefined, 'BaseClient.runner is hidden');
  for (const cls of ['Transaction', 'ResultStream', 'PreparedStatement', 'Savepoint', 'Cursor', 'Listener', 'ReservedSession']) {
    const ctor = client.find((r) => r.name === cls)?.children?.find((c) => c.kind === kindConstructor);
    assert.equal(ctor, undefined, `${cls} has no documented constructor (its instances come from the client)`);
  }
  // A client is constructed by its users: that constructor stays.
  assert.ok(client.find((r) => r.name === 'HeliosDBClient')?.children?.some((c) => c.kind === kindConstructor));
});
