/**
 * `cql://` at the entries, without a server: the browser entry refuses it with
 * UNSUPPORTED_IN_BROWSER, and cassandra-driver is an optional peer dependency that only a
 * `cql://` client loads.
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

test('browser entry: cql:// fails with UNSUPPORTED_IN_BROWSER', () => {
  assert.throws(
    () => web.createClient({ url: 'cql://127.0.0.1:9042' }),
    (e: unknown) => {
      assert.ok(e instanceof lib.HeliosDBError);
      assert.equal(e.code, 'UNSUPPORTED_IN_BROWSER');
      assert.match(e.message, /cannot speak CQL/);
      assert.match(e.message, /cql:\/\/ URLs work in Node/);
      return true;
    },
  );
});

test('cassandra-driver is an optional peer dependency, loaded only by cql:// clients', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const manifest = JSON.parse(readFileSync(path.join(root, 'src/client/package.json'), 'utf8'));
  assert.ok(manifest.peerDependencies?.['cassandra-driver'], 'a peer dependency');
  assert.equal(manifest.peerDependenciesMeta?.['cassandra-driver']?.optional, true, 'optional');
  assert.equal(manifest.dependencies?.['cassandra-driver'], undefined, 'not a dependency');
  // A process where cassandra-driver cannot be found: grpc:// works, cql:// says what to install.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sdkcql-'));
  try {
    writeFileSync(
      path.join(dir, 'hooks.mjs'),
      `export async function resolve(specifier, context, next) {
  if (specifier === 'cassandra-driver' || specifier.startsWith('cassandra-driver/'))
    throw Object.assign(new Error('Cannot find package ' + specifier), { code: 'ERR_MODULE_NOT_FOUND' });
  return next(specifier, context);
}`,
    );
    writeFileSync(path.join(dir, 'register.mjs'), `import { register } from 'node:module'; register('./hooks.mjs', import.meta.url);`);
    const script = `
      const lib = await import(${JSON.stringify(path.join(root, 'src/client/index.ts'))});
      const grpc = lib.createClient({ url: 'grpc://127.0.0.1:1', minConnections: 0 });
      await grpc.close();
      const c = lib.createClient({ url: 'cql://127.0.0.1:1', minConnections: 0 });
      const e = await c.query('SELECT now() FROM system.local').catch((err) => err);
      await c.close();
      console.log(JSON.stringify({ name: e.constructor.name, code: e.code, message: e.message }));`;
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', '--import', path.join(dir, 'register.mjs'), '--input-type=module', '-e', script],
      { cwd: root, encoding: 'utf8', timeout: 60_000 },
    );
    const got = JSON.parse(out.trim().split('\n').pop() ?? '{}');
    assert.equal(got.code, 'INVALID_CONFIG', out);
    assert.match(got.message, /cql:\/\/ URLs need the cassandra-driver package .*: npm install cassandra-driver/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CQL error codes map to the SDK classes; Unavailable and Overloaded are retryable', async () => {
  const { fromCqlError } = await import('../src/client/transport/cql-errors.js');
  const { toHeliosError } = await import('../src/client/errors.js');
  const cassandra = (await import('cassandra-driver')).default;
  const map = (code: number, message = 'm') => toHeliosError(fromCqlError(new cassandra.errors.ResponseError(code, message), 'cql://h:1'));
  const codes = cassandra.types.responseErrorCodes;
  const syntax = map(codes.syntaxError);
  assert.ok(syntax instanceof lib.QueryError);
  assert.equal(syntax.sqlstate, '42601');
  assert.ok(map(codes.invalid) instanceof lib.QueryError);
  assert.ok(map(codes.unauthorized) instanceof lib.PermissionDeniedError);
  assert.ok(map(codes.badCredentials) instanceof lib.AuthenticationError);
  for (const code of [codes.unavailableException, codes.overloaded, codes.isBootstrapping]) {
    const e = map(code);
    assert.equal(e.retryable, true, `0x${code.toString(16)}`);
  }
  assert.ok(map(codes.writeTimeout) instanceof lib.TimeoutError);
  assert.equal(map(codes.writeTimeout).retryable, false);
  assert.equal(map(codes.serverError).retryable, false);
});
