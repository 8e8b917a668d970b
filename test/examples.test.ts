/**
 * Every example in examples/ runs, as a user runs it (`npx tsx examples/NAME.ts`, in a process of
 * its own), against a brand-new server, and leaves what it says in the database. The quickstart
 * (`npm start`) starts its own server on free ports and is stopped with SIGTERM; the browser page
 * has test/browser-example.test.ts.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { backends } from './helpers/backends.js';
import { makeTestCerts } from './helpers/certs.js';
import { freshServer } from './helpers/fresh.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pglite = backends[0];

/** Runs `examples/name` with `env`; resolves with its exit code and output. */
async function runExample(name: string, env: Record<string, string>, stopWhen?: string): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'examples', name)], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let stopping: NodeJS.Timeout | undefined;
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    // A moment later: the example installs its SIGTERM handler just after printing the line.
    if (stopWhen && output.includes(stopWhen) && !stopping) stopping = setTimeout(() => child.kill('SIGTERM'), 500);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

describe('examples', () => {
  const cases: { file: string; says: RegExp; check?: [string, unknown][] }[] = [
    {
      file: 'queries.ts',
      says: /UNIQUE_VIOLATION \(SQLSTATE 23505\) on example_users_pkey/,
      check: [['SELECT count(*)::int AS n FROM example_users', 2]],
    },
    { file: 'streaming.ts', says: /file: 100000 rows into .*\nhttp: 100000 rows/ },
    { file: 'transactions.ts', says: /total 2000 retries \d+/, check: [['SELECT sum(balance)::int AS n FROM example_accounts', 2000]] },
    {
      file: 'prepared-batch-copy.ts',
      says: /copied 1000, 1101 rows in all/,
      check: [['SELECT count(*)::int AS n FROM example_points', 1101]],
    },
    { file: 'listen.ts', says: /orders: order 1 placed\norders: order 1 shipped\nrefunds: order 1 refunded/ },
  ];
  for (const c of cases) {
    test(`examples/${c.file} runs`, { timeout: 120_000 }, async (t) => {
      const f = await freshServer(t, pglite);
      const { code, output } = await runExample(c.file, { HELIOSDB_URL: f.server.grpcUrl });
      assert.equal(code, 0, output);
      assert.match(output, c.says);
      for (const [sql, n] of c.check ?? []) assert.equal((await f.verify(sql))[0].n, n, sql);
    });
  }

  test('examples/tls-auth.ts runs against a server with TLS and authentication required', { timeout: 120_000 }, async (t) => {
    const certs = makeTestCerts();
    t.after(() => certs.cleanup());
    const f = await freshServer(t, pglite, { server: { tlsCert: certs.server.certFile, tlsKey: certs.server.keyFile, auth: 'required' } });
    await f.server.auth.createUser({ name: 'alice', role: 'postgres', password: 'correct horse battery staple' });
    const { key } = await f.server.auth.createApiKey({ user: 'alice' });
    const { code, output } = await runExample('tls-auth.ts', {
      HELIOSDB_URL: f.server.grpcUrl.replace('127.0.0.1', 'localhost'),
      HELIOSDB_CA_FILE: certs.ca.certFile,
      APP_API_KEY: key,
      APP_USER: 'alice',
      APP_PASSWORD: 'correct horse battery staple',
    });
    assert.equal(code, 0, output);
    assert.match(output, /api key: runs as postgres\npassword: logged in as alice\nno credentials: [A-Z_]+/);
  });

  test('npm start (examples/quickstart.ts) serves, shows the SDK working, and stops on SIGTERM', { timeout: 120_000 }, async () => {
    const { code, output } = await runExample('quickstart.ts', { HELIOSDB_PORT: '0', HELIOSDB_HTTP_PORT: '0' }, 'Serving until Ctrl-C.');
    assert.match(output, /typed error: UniqueViolationError on constraint users_pkey \(SQLSTATE 23505\)/);
    // The ports psql and the CQL drivers use are shown, with a psql command line that works.
    const pg = /psql -h 127\.0\.0\.1 -p (\d+) -U postgres postgres/.exec(output);
    assert.ok(pg, output);
    assert.match(output, /Cassandra CQL protocol: 127\.0\.0\.1:\d+/);
    assert.equal(code, 0, output);
  });
});
