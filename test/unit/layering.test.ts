/**
 * The layering docs/architecture.md describes, checked on the sources' import statements: the
 * server reaches the generated code and the row codec only through `@heliosdb/client/wire`;
 * platform code (`node:*`, grpc-js) in the client lives only in transports and entries; the
 * browser entry's import graph holds none of it; transports never import the API layer.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'dist' || e.name.startsWith('.') || e.name === 'node_modules' ? [] : sources(p);
    return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
  });
}

/** The module specifiers a file imports or re-exports (static and dynamic). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(
    /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)|(?:^|\n)\s*import\s+'([^']+)'/g,
  )) {
    out.push(m[1] ?? m[2] ?? m[3]!);
  }
  return out;
}

const rel = (f: string) => relative(root, f);

test('the server imports generated code and the codec only through @heliosdb/client/wire', () => {
  const bad: string[] = [];
  for (const f of sources(join(root, 'src', 'server'))) {
    for (const spec of importsOf(f)) {
      if (
        spec.startsWith('.') &&
        (resolve(dirname(f), spec).startsWith(join(root, 'gen')) || resolve(dirname(f), spec).startsWith(join(root, 'src', 'client')))
      ) {
        bad.push(`${rel(f)}: ${spec}`);
      }
      if (spec.startsWith('@heliosdb/client/') && spec !== '@heliosdb/client/wire') bad.push(`${rel(f)}: ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('platform code in the client only in transports and entries', () => {
  const platform = /^(node:|@grpc\/grpc-js$|@connectrpc\/connect-node$)/;
  const allowed = (f: string) => f.includes(`${join('src', 'client', 'transport')}/`) || /src\/client\/(index|node)\.ts$/.test(f);
  const bad: string[] = [];
  for (const f of sources(join(root, 'src', 'client'))) {
    if (allowed(f)) continue;
    for (const spec of importsOf(f)) if (platform.test(spec)) bad.push(`${rel(f)}: ${spec}`);
  }
  assert.deepEqual(bad, []);
});

test("the browser entry's import graph holds no platform code", () => {
  const seen = new Set<string>();
  const bad: string[] = [];
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of importsOf(file)) {
      if (/^(node:|@grpc\/grpc-js$|@connectrpc\/connect-node$)/.test(spec)) bad.push(`${rel(file)}: ${spec}`);
      if (!spec.startsWith('.')) continue;
      visit(resolve(dirname(file), spec).replace(/\.js$/, '.ts'));
    }
  };
  visit(join(root, 'src', 'client', 'web.ts'));
  assert.ok(seen.size > 20, `the graph was walked (${seen.size} files)`);
  assert.deepEqual(bad, []);
});

test('transports never import the API layer (client.ts, transaction.ts, ...)', () => {
  const api = new Set([
    'client.ts',
    'transaction.ts',
    'reserved-session.ts',
    'query-runner.ts',
    'batch.ts',
    'result-stream.ts',
    'listener.ts',
    'copy-calls.ts',
  ]);
  const bad: string[] = [];
  for (const f of sources(join(root, 'src', 'client', 'transport'))) {
    for (const spec of importsOf(f)) {
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(f), spec).replace(/\.js$/, '.ts');
      if (dirname(target) === join(root, 'src', 'client') && api.has(target.slice(dirname(target).length + 1)))
        bad.push(`${rel(f)}: ${spec}`);
    }
  }
  assert.deepEqual(bad, []);
});
