/**
 * `postgres://` at the entries, without a database: the browser entry refuses it with
 * UNSUPPORTED_IN_BROWSER, and node-postgres and its helpers are optional peer dependencies that
 * only a `postgres://` client loads.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as lib from '@heliosdb/client';
import * as web from '../src/client/web.js';

test('browser entry: postgres:// and postgresql:// fail with UNSUPPORTED_IN_BROWSER', () => {
  for (const url of ['postgres://u@127.0.0.1:5432/db', 'postgresql://127.0.0.1/db']) {
    assert.throws(
      () => web.createClient({ url }),
      (e: unknown) => {
        assert.ok(e instanceof lib.HeliosDBError);
        assert.equal(e.code, 'UNSUPPORTED_IN_BROWSER');
        assert.match(e.message, /cannot speak the PostgreSQL wire protocol/);
        assert.match(e.message, /postgres:\/\/ URLs work in Node/);
        return true;
      },
      url,
    );
  }
});

test('pg, pg-cursor and pg-copy-streams are optional peer dependencies, loaded only by postgres:// clients', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const manifest = JSON.parse(readFileSync(path.join(root, 'src/client/package.json'), 'utf8'));
  for (const name of ['pg', 'pg-cursor', 'pg-copy-streams']) {
    assert.ok(manifest.peerDependencies?.[name], `${name} is a peer dependency`);
    assert.equal(manifest.peerDependenciesMeta?.[name]?.optional, true, `${name} is optional`);
    assert.equal(manifest.dependencies?.[name], undefined, `${name} is not a dependency`);
  }
  // A process where the three packages cannot be found: grpc:// works, postgres:// says what to install.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sdkpg-'));
  try {
    writeFileSync(
      path.join(dir, 'hooks.mjs'),
      `const hidden = new Set(['pg', 'pg-cursor', 'pg-copy-streams']);
export async function resolve(specifier, context, next) {
  if (hidden.has(specifier)) throw Object.assign(new Error('Cannot find package ' + specifier), { code: 'ERR_MODULE_NOT_FOUND' });
  return next(specifier, context);
}`,
    );
    writeFileSync(path.join(dir, 'register.mjs'), `import { register } from 'node:module'; register('./hooks.mjs', import.meta.url);`);
    const script = `
      const lib = await import(${JSON.stringify(path.join(root, 'src/client/index.ts'))});
      const grpc = lib.createClient({ url: 'grpc://127.0.0.1:1', minConnections: 0 });
      await grpc.close();
      const c = lib.createClient({ url: 'postgres://127.0.0.1:1/db', minConnections: 0 });
      const e = await c.query('SELECT 1').catch((err) => err);
      await c.close();
      console.log(JSON.stringify({ name: e.constructor.name, code: e.code, message: e.message }));`;
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', '--import', path.join(dir, 'register.mjs'), '--input-type=module', '-e', script],
      {
        cwd: root,
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    const got = JSON.parse(out.trim().split('\n').pop() ?? '{}');
    assert.equal(got.code, 'INVALID_CONFIG', out);
    assert.match(got.message, /postgres:\/\/ URLs need the pg package .*: npm install pg/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
