/**
 * Every ```ts, ```js and ```sh block of README.md and docs/*.md runs (test/helpers/docs-blocks.ts
 * has the `docs-test` directives a block may carry):
 *
 * - ts/js blocks run as modules, with `DATABASE_URL` naming the fresh server's PostgreSQL database
 *   (for blocks showing another driver side by side) (`createClient`, `readFileSync` and `createReadStream` need no
 *   import in a fragment), each against a brand-new server (PGlite; PostgreSQL with
 *   `docs-test: postgres`). The default local URLs in a block (`grpc://127.0.0.1:7700`,
 *   `http://127.0.0.1:7701`, and `HELIOSDB_URL`) point at that server; a block that uses `client`
 *   without making one gets a client on it. Every ts block, run or not, also type-checks against
 *   the packages' real types (one `tsc` over all of them).
 * - sh blocks run in bash in a scratch directory outside the repository, with `heliosdb` (and
 *   `npx heliosdb`) being this repository's command and every other npm / npx command refused; `heliosdb serve` starts the server as written (ports default to free
 *   ones), waits until it listens and stops it (test/helpers/docs-serve-once.mjs).
 *
 * - Every block runs in a directory of its own holding `ca.crt`, `clients-ca.crt`, `server.crt`,
 *   `server.key` (for localhost and 127.0.0.1), `alice.crt` and `alice.key`, the files the TLS
 *   examples name.
 *
 * Skipped and type-check-only blocks are listed, with their reasons, in the test output.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { backends, postgresSkipReason } from './helpers/backends.js';
import { allBlocks, args, type DocBlock, disposition, expectations, replacements } from './helpers/docs-blocks.js';
import { makeTestCerts } from './helpers/certs.js';
import { freshServer, removeFreshScratch } from './helpers/fresh.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// Inside the repository, so that the blocks resolve @heliosdb/client and @heliosdb/server to the sources.
const scratch = join(root, 'test-output', `docs-blocks-${process.pid}`);
mkdirSync(scratch, { recursive: true });
// sh blocks run outside the repository, so that nothing they run can find its package.json.
const shScratch = mkdtempSync(join(tmpdir(), 'heliosdb-docs-sh-'));
const certs = makeTestCerts();
after(() => {
  rmSync(scratch, { recursive: true, force: true });
  rmSync(shScratch, { recursive: true, force: true });
  certs.cleanup();
  removeFreshScratch();
});

/** A block's working directory, holding the files the TLS examples name (for localhost / 127.0.0.1). */
function workDir(parent: string, b: DocBlock): string {
  const dir = join(parent, fileName(b, 'd'));
  mkdirSync(dir, { recursive: true });
  const alice = certs.client('alice');
  const files: [string, string][] = [
    [certs.ca.certFile, 'ca.crt'],
    [certs.ca.certFile, 'clients-ca.crt'],
    [certs.server.certFile, 'server.crt'],
    [certs.server.keyFile, 'server.key'],
    [alice.certFile, 'alice.crt'],
    [alice.keyFile, 'alice.key'],
  ];
  for (const [from, to] of files) copyFileSync(from, join(dir, to));
  return dir;
}

const blocks = allBlocks(root);
const name = (b: DocBlock) => `${b.file}:${b.line}`;
const fileName = (b: DocBlock, ext: string) => `${b.file.replace(/[^\w]+/g, '_')}_L${b.line}.${ext}`;

/** The clients the harness made for blocks, closed after each block. */
const harnessClients: { close(): Promise<void> }[] = [];
(globalThis as unknown as { __docsClients: typeof harnessClients }).__docsClients = harnessClients;

/** Whether the block declares `client` itself. */
const declaresClient = (code: string) => /\b(?:const|let|var|using)\s+client\b/.test(code);

/** Names a fragment may use without importing them (the reader has seen their imports). */
const implicitImports: [string, string][] = [
  ['createClient', '@heliosdb/client'],
  ['readFileSync', 'node:fs'],
  ['createReadStream', 'node:fs'],
];

/** The module a ts/js block runs as. */
function moduleSource(b: DocBlock, urls: Record<string, string>): string {
  let code = b.code;
  const pairs: [string, string][] = [
    ...replacements(b, urls),
    ['grpc://127.0.0.1:7700', urls.GRPC_URL],
    ['http://127.0.0.1:7701', urls.HTTP_URL],
  ];
  for (const [from, to] of pairs) code = code.split(from).join(to);
  const lines = [
    `// ${name(b)} (made by test/docs-examples.test.ts)`,
    "import { createClient as __docsCreateClient } from '@heliosdb/client';",
  ];
  const text = [...args(b, 'before'), code].join('\n');
  for (const [id, from] of implicitImports)
    if (new RegExp(`\\b${id}\\(`).test(text) && !new RegExp(`import[^;]*\\b${id}\\b`).test(text))
      lines.push(`import { ${id} } from '${from}';`);
  if (!declaresClient(code)) {
    lines.push(`const client = __docsCreateClient({ url: ${JSON.stringify(urls.GRPC_URL)}, minConnections: 1 });`);
    lines.push('(globalThis as unknown as { __docsClients: { close(): Promise<void> }[] }).__docsClients.push(client);');
  }
  lines.push(...args(b, 'before'), code, 'export {};');
  return lines.join('\n');
}

const placeholderUrls = {
  GRPC_URL: 'grpc://127.0.0.1:7700',
  HTTP_URL: 'http://127.0.0.1:7701',
  DATABASE_URL: 'postgres://127.0.0.1:5432/app',
  CQL_ADDRESS: '127.0.0.1:9042',
};

describe('documentation code blocks', () => {
  test('lists what is not run', (t) => {
    const notRun = blocks.filter((b) => disposition(b) !== 'run');
    for (const b of notRun)
      t.diagnostic(`${disposition(b)}: ${name(b)} (${b.language}): ${[...args(b, 'skip'), ...args(b, 'typecheck')].join('; ')}`);
    t.diagnostic(`${blocks.length} blocks: ${blocks.length - notRun.length} run, ${notRun.length} not run`);
    for (const b of notRun) assert.ok([...args(b, 'skip'), ...args(b, 'typecheck')].join('').length > 0, `${name(b)} gives a reason`);
    assert.ok(blocks.length > 0);
  });

  test('every ts block type-checks', () => {
    const dir = join(scratch, 'typecheck');
    mkdirSync(dir, { recursive: true });
    const ts = blocks.filter((b) => b.language === 'ts' && disposition(b) !== 'skip');
    for (const b of ts) writeFileSync(join(dir, fileName(b, 'ts')), moduleSource(b, placeholderUrls));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: '../../../tsconfig.json',
        compilerOptions: { noEmit: true, noUnusedLocals: false },
        include: ['*.ts', '../../../bench/lib/*.d.ts'],
      }),
    );
    const tsc = spawnSync(
      process.execPath,
      [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    assert.equal(tsc.status, 0, `type errors in documentation blocks:\n${tsc.stdout}${tsc.stderr}`);
  });

  for (const b of blocks.filter((x) => disposition(x) === 'run' && x.language !== 'sh')) {
    const onPostgres = args(b, 'postgres').length > 0;
    const backend = backends.find((x) => x.name === (onPostgres ? 'postgresql' : 'pglite'));
    test(`${name(b)} runs`, { skip: backend ? false : postgresSkipReason, timeout: 120_000 }, async (t) => {
      assert.ok(backend);
      const f = await freshServer(t, backend);
      const urls = {
        GRPC_URL: f.server.grpcUrl,
        HTTP_URL: f.server.httpUrl ?? '',
        DATABASE_URL: f.server.options.databaseUrl ?? '',
        CQL_ADDRESS: `127.0.0.1:${f.server.cqlPort ?? 9042}`,
      };
      const setup = args(b, 'sql');
      if (setup.length > 0) {
        const { client } = f.client('grpc');
        for (const sql of setup) await client.execute(sql);
      }
      const file = join(scratch, fileName(b, b.language === 'ts' ? 'ts' : 'mjs'));
      writeFileSync(file, moduleSource(b, urls));
      const saved = { HELIOSDB_URL: process.env.HELIOSDB_URL, DATABASE_URL: process.env.DATABASE_URL };
      process.env.HELIOSDB_URL = urls.GRPC_URL;
      if (urls.DATABASE_URL) process.env.DATABASE_URL = urls.DATABASE_URL;
      const cwd = process.cwd();
      process.chdir(workDir(scratch, b));
      try {
        await import(pathToFileURL(file).href);
      } finally {
        process.chdir(cwd);
        for (const [k, v] of Object.entries(saved)) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
        await Promise.all(harnessClients.splice(0).map((c) => c.close()));
      }
      for (const e of expectations(b)) assert.deepEqual(await f.verify(e.sql), e.rows, `${name(b)}: ${e.sql}`);
    });
  }

  const bin = join(scratch, 'bin');
  mkdirSync(bin, { recursive: true });
  const shim = join(bin, 'heliosdb');
  writeFileSync(
    shim,
    [
      '#!/usr/bin/env bash',
      // Outside the repository tsx finds no tsconfig: point it at ours, so @heliosdb/* are the sources, not a build.
      `export TSX_TSCONFIG_PATH="${join(root, 'tsconfig.json')}"`,
      `if [ "$1" = serve ]; then exec "${process.execPath}" "${join(root, 'test/helpers/docs-serve-once.mjs')}" "$@"; fi`,
      `exec "${process.execPath}" --import "${import.meta.resolve('tsx')}" "${join(root, 'src/server/bin/heliosdb.ts')}" "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(shim, 0o755);

  for (const b of blocks.filter((x) => disposition(x) === 'run' && x.language === 'sh')) {
    test(`${name(b)} runs`, { timeout: 180_000 }, () => {
      const cwd = workDir(shScratch, b);
      let code = b.code;
      for (const [from, to] of replacements(b, placeholderUrls)) code = code.split(from).join(to);
      const script = [
        'set -euo pipefail',
        // npm and npx run nothing from a block but `npx heliosdb`: a block must not install or build anything.
        'npm() { echo "docs-test: npm is not run from documentation blocks (skip the block)" >&2; return 97; }',
        'npx() { if [ "$1" = heliosdb ]; then shift; heliosdb "$@"; else npm; fi; }',
        ...args(b, 'before'),
        code,
      ].join('\n');
      const run = spawnSync('bash', ['-c', script], {
        cwd,
        encoding: 'utf8',
        env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, HELIOSDB_PORT: '0', HELIOSDB_HTTP_PORT: '0', NODE_OPTIONS: '' },
        timeout: 170_000,
      });
      assert.equal(run.status, 0, `${name(b)} failed:\n${run.stdout}\n${run.stderr}`);
    });
  }
});
