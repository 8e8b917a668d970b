/**
 * The packages as consumers get them: both are built and packed, each is installed into an empty
 * project from its tarball (its dependencies from the registry), the server is started from the
 * server package's `heliosdb` bin, and a query runs from the client package against it, through
 * ESM `import` and CommonJS `require`. The client's installed tree holds none of the server's
 * dependencies. `npm run check:package` adds arethetypeswrong on the client tarball.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { VERSION } from '../src/server/version.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
const serverOnly = ['@electric-sql/pglite', 'pg', 'pino', 'jose', 'libpg-query', 'pg-copy-streams', 'pg-protocol', '@heliosdb/server'];

const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '', npm_config_audit: 'false', npm_config_fund: 'false' },
  });

/** Every file under `dir`. */
function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

/** Every package name installed under `dir/node_modules` (scoped ones too). */
function installed(dir: string): Set<string> {
  const out = new Set<string>();
  const nm = join(dir, 'node_modules');
  for (const name of readdirSync(nm)) {
    if (name.startsWith('.')) continue;
    if (name.startsWith('@')) for (const sub of readdirSync(join(nm, name))) out.add(`${name}/${sub}`);
    else out.add(name);
  }
  return out;
}

describe('the packages, installed from their tarballs', { timeout: 240_000 }, () => {
  let work: string;
  let clientTgz: string;
  let serverTgz: string;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'heliosdb-consumer-'));
    execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'pipe' });
    const packed = JSON.parse(
      run('npm', ['pack', '--json', '--pack-destination', work, '--workspace', 'src/client', '--workspace', 'src/server'], root),
    ) as { name: string; filename: string }[];
    clientTgz = join(work, packed.find((p) => p.name === '@heliosdb/client')!.filename);
    serverTgz = join(work, packed.find((p) => p.name === '@heliosdb/server')!.filename);
  });
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the version is one: both packages and the server report it', () => {
    assert.equal(VERSION, version);
    for (const dir of ['src/client', 'src/server'])
      assert.equal(JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')).version, version);
  });

  test('a query from @heliosdb/client (import and require) against a server started from @heliosdb/server', async () => {
    const app = join(work, 'app');
    const srv = join(work, 'srv');
    for (const [dir, tgzs] of [
      [app, [clientTgz]],
      [srv, [serverTgz, clientTgz]],
    ] as const) {
      execFileSync('mkdir', ['-p', dir]);
      writeFileSync(
        join(dir, 'package.json'),
        JSON.stringify({ name: `consumer-${dir.endsWith('app') ? 'app' : 'srv'}`, private: true, type: 'module' }),
      );
      run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tgzs], dir);
    }
    // Each package ships its license and readme; its declaration maps point at sources it ships.
    for (const dir of [join(app, 'node_modules', '@heliosdb', 'client'), join(srv, 'node_modules', '@heliosdb', 'server')]) {
      for (const f of ['LICENSE', 'README.md']) assert.ok(existsSync(join(dir, f)), `${dir} has ${f}`);
      assert.match(readFileSync(join(dir, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
      const unresolved: string[] = [];
      let maps = 0;
      for (const file of walk(join(dir, 'dist'))) {
        if (!file.endsWith('.d.ts.map')) continue;
        maps++;
        for (const source of (JSON.parse(readFileSync(file, 'utf8')) as { sources: string[] }).sources) {
          if (!existsSync(join(dirname(file), source))) unresolved.push(`${file.slice(dir.length)} -> ${source}`);
        }
      }
      assert.ok(maps > 10, `${dir} ships declaration maps (${maps})`);
      assert.deepEqual(unresolved.slice(0, 5), [], `declaration maps of ${dir} resolve to shipped sources`);
    }
    const appPackages = installed(app);
    assert.ok(appPackages.has('@heliosdb/client'));
    for (const p of serverOnly) assert.ok(!appPackages.has(p), `the client's tree holds ${p}`);
    assert.ok(installed(srv).has('@electric-sql/pglite'));

    // The server, from its bin, on free ports.
    const bin = join(srv, 'node_modules', '.bin', 'heliosdb');
    assert.ok(existsSync(bin), 'the heliosdb bin is installed');
    assert.equal(run(bin, ['--version'], srv).trim(), version);
    assert.equal(
      run('npx', ['--no-install', '@heliosdb/server', '--version'], srv).trim(),
      version,
      'npx @heliosdb/server runs the heliosdb command',
    );
    const server = spawn(bin, ['serve', '--port', '0', '--http-port', '0', '--log-level', 'info'], {
      cwd: srv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let out = '';
      server.stdout.on('data', (d) => (out += d));
      server.stderr.on('data', (d) => (out += d));
      const deadline = Date.now() + 60_000;
      let listening: { grpc: string; http: string } | undefined;
      while (!listening && Date.now() < deadline && server.exitCode === null) {
        const line = out.split('\n').find((l) => l.includes('HeliosDB server listening'));
        if (line) listening = JSON.parse(line) as { grpc: string; http: string };
        else await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(listening, `the server started: ${out}`);
      const esm = `import { createClient } from '@heliosdb/client';
        for (const url of [${JSON.stringify(listening.grpc)}, ${JSON.stringify(listening.http)}]) {
          const c = createClient({ url, minConnections: 0 });
          const tx = await c.begin(); await tx.query('SELECT 1'); await tx.commit();
          const { rows } = await c.query('SELECT $1::int + 1 AS n', [41]);
          console.log(rows[0].n);
          await c.close();
        }`;
      assert.equal(run(process.execPath, ['--input-type=module', '-e', esm], app).trim(), '42\n42');
      const cjs = `const { createClient } = require('@heliosdb/client');
        (async () => { const c = createClient({ url: ${JSON.stringify(listening.grpc)}, minConnections: 0 });
          console.log((await c.queryOne('SELECT 7 AS n')).n); await c.close(); })();`;
      assert.equal(run(process.execPath, ['--input-type=commonjs', '-e', cjs], app).trim(), '7');
    } finally {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    }
  });
});
