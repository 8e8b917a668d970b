/**
 * The `heliosdb` command as a user meets it: `--help` and `-h` (exit 0, every flag with its
 * default and variable), an unknown flag naming the nearest one, a bad value, the README's flag
 * table made from the same option table, readable logs on a terminal and JSON otherwise, one
 * warning each, and a second Ctrl-C exiting at once.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { optionsTable, withTable } from '../scripts/options-table.js';
import { createClient } from '@heliosdb/client';
import { prettyLine } from '../src/server/bin/log.js';
import { parseServeArgs } from '../src/server/bin/serve-args.js';
import { serverOptionTable } from '../src/server/options.js';

function heliosdb(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/server/bin/heliosdb.ts', ...args], { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('--help and -h exit 0 and list every flag with its default and variable', async () => {
  for (const args of [['serve', '--help'], ['serve', '-h'], ['--help'], ['-h'], []]) {
    const r = await heliosdb(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    for (const s of Object.values(serverOptionTable)) {
      assert.ok(r.stdout.includes(s.flag), `${args.join(' ')} lists ${s.flag}`);
      assert.ok(r.stdout.includes(s.env), `${args.join(' ')} lists ${s.env}`);
    }
  }
});

test('an unknown flag names the nearest one; a bad value says which flag and what it needs', async () => {
  const r = await heliosdb(['serve', '--pool-sise', '5']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown flag --pool-sise; did you mean --pool-size\?/);
  assert.throws(() => parseServeArgs(['--port', 'abc'], {}), /--port must be an integer, got "abc"/);
  assert.throws(() => parseServeArgs(['--auth', 'maybe'], {}), /--auth must be none or required/);
  assert.throws(() => parseServeArgs(['--bogus'], {}), /unknown flag --bogus/);
  assert.equal((await heliosdb(['frobnicate'])).code, 2);
});

test('flags win over HELIOSDB_* variables; booleans stand alone', () => {
  const { options } = parseServeArgs(['--port', '1234', '--allow-insecure-password', '--cors-origin', 'a,b'], {
    HELIOSDB_PORT: '9',
    HELIOSDB_POOL_SIZE: '3',
  });
  assert.deepEqual(options, { port: 1234, poolSize: 3, allowInsecurePassword: true, corsOrigins: ['a', 'b'] });
});

test("the README's flag table is the option table", () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  assert.equal(withTable(readme), readme, 'run: npx tsx scripts/options-table.ts --write');
  assert.ok(readme.includes(optionsTable()));
});

test('logs: one readable line per entry on a terminal, with its fields', () => {
  const line = prettyLine(
    { level: 40, time: Date.UTC(2026, 0, 1, 12, 0, 1), msg: 'authentication is off', host: '127.0.0.1', n: 3 },
    false,
  );
  assert.match(line, /^\d\d:\d\d:\d\d WARN {2}authentication is off {2}host=127\.0\.0\.1 n=3\n$/);
});

test('a started server logs JSON when not on a terminal, says each warning once, and a second SIGINT exits at once', async () => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/server/bin/heliosdb.ts', 'serve', '--port', '0', '--http-port', '-1', '--shutdown-grace-ms', '30000'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const deadline = Date.now() + 30_000;
  while (!/HeliosDB server listening/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  assert.match(out, /HeliosDB server listening/);
  const lines = out.split('\n').filter((l) => l.startsWith('{'));
  assert.ok(lines.length >= 2 && lines.every((l) => JSON.parse(l).service === 'heliosdb'), 'JSON lines');
  assert.equal(out.match(/authentication is off/g)?.length, 1, 'the authentication warning once');
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  // A call that holds the drain open: the first SIGINT waits for it, the second does not.
  const url = JSON.parse(lines.find((l) => /HeliosDB server listening/.test(l))!).grpc as string;
  const client = createClient({ url, minConnections: 0, retry: false });
  const slow = client.query('SELECT pg_sleep(20)').catch(() => {});
  await new Promise((r) => setTimeout(r, 500));
  child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 500));
  const t0 = Date.now();
  child.kill('SIGINT');
  const code = await exited;
  assert.ok(Date.now() - t0 < 5000, `exited at once (${Date.now() - t0} ms)`);
  assert.equal(code, 130);
  await slow;
  await client.close();
});

test('`npx heliosdb` works in a clone right after npm install, without a build (the README uses it)', async () => {
  // Run from a folder outside the repository's tsconfig reach, as npx does from the project root.
  const out = await new Promise<string>((resolve, reject) =>
    execFile('npx', ['--no-install', 'heliosdb', 'version'], { timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
  assert.match(out, /^\d+\.\d+\.\d+/);
});
