/**
 * The client in a real browser: the behaviour suite (test/behaviour/suite.ts) bundled with esbuild
 * for `platform: 'browser'` and run inside headless Chromium against the server's HTTP listener
 * (Connect over fetch), each case reported as its own test here, on every backend. Also: the
 * bundles contain nothing Node-only (esbuild metafile), the size of the client's browser bundle,
 * and the server's CORS allowlist (a disallowed origin gets no allow headers and no answers).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { type BrowserBundle, bundleForBrowser, kb, repoRoot } from '../scripts/browser-bundle.js';
import { type HeliosServer, startServer } from '../src/server/server.js';
import type { BrowserSuite } from './behaviour/browser-entry.js';
import { type CaseResult, cases } from './behaviour/suite.js';
import { backends, postgresSkipReason } from './helpers/backends.js';
import { describeWithChromium, launchChromium, modulePage, serveStatic, type StaticServer } from './helpers/chromium.js';

/** Module paths the browser bundles must never contain (besides `node:*` built-ins). */
const forbidden = [
  '@grpc/grpc-js',
  'node_modules/pg/',
  'node_modules/pg-',
  '@electric-sql/pglite',
  '@connectrpc/connect-node',
  'pino',
  'src/server/',
];

function checkBrowserSafe(bundle: BrowserBundle, what: string): void {
  assert.deepEqual(bundle.nodeOnly, [], `${what}: Node-only modules in the browser bundle`);
  for (const m of bundle.modules) {
    assert.ok(!m.startsWith('node:'), `${what}: imports the Node built-in ${m}`);
    for (const f of forbidden) assert.ok(!m.includes(f), `${what}: contains ${m} (${f})`);
  }
  assert.ok(
    bundle.modules.some((m) => m.includes('@connectrpc/connect-web/')),
    `${what}: uses @connectrpc/connect-web`,
  );
}

let suiteBundle: Promise<BrowserBundle> | undefined;
/** The behaviour suite bundle, built once (readable: not minified, with an inline source map). */
function behaviourBundle(): Promise<BrowserBundle> {
  suiteBundle ??= bundleForBrowser('test/behaviour/browser-entry.ts', { minify: false, sourcemap: true });
  return suiteBundle;
}

describe('browser bundle', () => {
  test('src/web.ts bundles for the browser without any Node-only module; its size is reported', async (t) => {
    const bundle = await bundleForBrowser('src/client/web.ts');
    checkBrowserSafe(bundle, 'src/client/web.ts');
    for (const m of [
      'src/client/web.ts',
      'src/client/client.ts',
      'src/client/transport/concurrency-limiter.ts',
      'src/client/transport/web-parts.ts',
    ]) {
      assert.ok(bundle.modules.includes(m), `the bundle contains ${m}`);
    }
    const size = {
      entry: 'src/client/web.ts',
      minifiedBytes: bundle.bytes,
      gzipBytes: bundle.gzipBytes,
      minified: kb(bundle.bytes),
      minifiedGzipped: kb(bundle.gzipBytes),
      modules: bundle.modules.length,
    };
    mkdirSync(join(repoRoot, 'test-output'), { recursive: true });
    writeFileSync(join(repoRoot, 'test-output', 'browser-bundle-size.json'), `${JSON.stringify(size, null, 2)}\n`);
    const line = `browser bundle (src/client/web.ts, esbuild --minify, gzip -9): ${size.minified} minified, ${size.minifiedGzipped} minified+gzipped, ${size.modules} modules`;
    t.diagnostic(line);
    assert.ok(bundle.gzipBytes < 80_000, `the browser bundle stays small (${size.minifiedGzipped} gzipped)`);
  });

  test('the behaviour suite bundles for the browser without any Node-only module', async () => {
    checkBrowserSafe(await behaviourBundle(), 'test/behaviour/browser-entry.ts');
  });
});

/** Sends a raw CORS preflight to the server's HTTP listener. */
function preflight(server: HeliosServer, origin: string): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  const url = new URL(`${server.httpUrl}/heliosdb.v1.DatabaseService/Query`);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type,connect-protocol-version,x-heliosdb-application-name',
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('CORS allowlist of the HTTP listener', () => {
  const allowed = 'http://app.example.test';
  let server: HeliosServer;
  before(async () => {
    server = await startServer({ port: 0, httpPort: 0, logLevel: 'silent', corsOrigins: [allowed] });
  });
  after(() => server?.close());

  test('a preflight from a disallowed origin gets no Access-Control-Allow-* headers', async () => {
    const r = await preflight(server, 'http://evil.example.test');
    const cors = Object.keys(r.headers).filter((h) => h.startsWith('access-control-'));
    assert.deepEqual(cors, [], `no CORS headers for a disallowed origin (status ${r.status})`);
    assert.notEqual(r.status, 204, 'the preflight is not approved');
  });

  test('a preflight from an allowed origin is approved with the headers the client sends', async () => {
    const r = await preflight(server, allowed);
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], allowed);
    const headers = String(r.headers['access-control-allow-headers']).toLowerCase();
    for (const h of ['content-type', 'connect-protocol-version', 'connect-timeout-ms', 'x-grpc-web', 'x-heliosdb-application-name']) {
      assert.ok(headers.includes(h), `allows ${h}`);
    }
    assert.match(String(r.headers['access-control-allow-methods']), /POST/);
  });
});

/** What a page said on its console (errors) or threw, for failure messages. */
function watch(page: Page): string[] {
  const log: string[] = [];
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') log.push(`console.error: ${m.text()}`);
  });
  return log;
}

/** Opens the suite page of `site` and waits until the bundle has loaded. */
async function openSuite(browser: Browser, site: StaticServer): Promise<{ page: Page; log: string[] }> {
  const page = await browser.newPage();
  const log = watch(page);
  await page.goto(`${site.origin}/`);
  await page.waitForFunction(() => (globalThis as { heliosdbSuite?: unknown }).heliosdbSuite !== undefined, undefined, { timeout: 15_000 });
  return { page, log };
}

describeWithChromium('client behaviour [browser]', (executablePath) => {
  let browser: Browser;
  let site: StaticServer;
  before(async () => {
    const [b, bundle] = await Promise.all([launchChromium(executablePath), behaviourBundle()]);
    browser = b;
    site = await serveStatic({
      '/': modulePage('heliosdb behaviour suite'),
      '/app.js': { type: 'text/javascript; charset=utf-8', body: bundle.code },
    });
  });
  after(async () => {
    await browser?.close();
    await site?.close();
  });

  for (const backend of backends) {
    describe(`[browser] [${backend.name}]`, () => {
      let results: Map<string, Omit<CaseResult, 'error'>>;
      let log: string[] = [];
      before(async () => {
        const server = await startServer({
          port: 0,
          httpPort: 0,
          logLevel: 'silent',
          databaseUrl: backend.databaseUrl,
          corsOrigins: [site.origin],
        });
        try {
          const opened = await openSuite(browser, site);
          log = opened.log;
          const env = { url: server.httpUrl!, backend: backend.name };
          const run = opened.page.evaluate((e) => (globalThis as unknown as { heliosdbSuite: BrowserSuite }).heliosdbSuite.run(e), env);
          const list = await Promise.race([
            run,
            new Promise<never>((_, reject) =>
              setTimeout(
                () => reject(new Error(`the browser suite did not finish in 120 s; page log:\n${log.join('\n')}`)),
                120_000,
              ).unref(),
            ),
          ]);
          results = new Map(list.map((r) => [r.name, r]));
          await opened.page.close();
        } finally {
          await server.close();
        }
      });

      for (const c of cases) {
        test(c.name, (t) => {
          const r = results.get(c.name);
          assert.ok(r, `the browser ran "${c.name}"`);
          if (r.status === 'skipped') {
            t.skip(r.message);
            return;
          }
          t.diagnostic(`${r.durationMs.toFixed(0)} ms in Chromium`);
          if (r.status === 'failed') {
            const err = new Error(`in Chromium: ${r.message}${log.length ? `\npage log:\n${log.join('\n')}` : ''}`);
            err.stack = `${err.message}\n${r.stack ?? ''}`;
            throw err;
          }
        });
      }
    });
  }
  if (postgresSkipReason) test('[browser] [postgresql]', { skip: postgresSkipReason }, () => {});

  test('a page from an origin outside corsOrigins gets no answer from the server', async () => {
    const other = await serveStatic({
      '/': modulePage('not allowed'),
      '/app.js': { type: 'text/javascript; charset=utf-8', body: (await behaviourBundle()).code },
    });
    // Only `site` is allowed; `other` is another port, so another origin.
    const server = await startServer({ port: 0, httpPort: 0, logLevel: 'silent', corsOrigins: [site.origin] });
    try {
      const { page } = await openSuite(browser, other);
      const r = await page.evaluate(
        ([url]) => (globalThis as unknown as { heliosdbSuite: BrowserSuite }).heliosdbSuite.probe(url, 'SELECT 1 AS n'),
        [server.httpUrl!] as const,
      );
      assert.equal(r.rows, undefined, 'no rows reach a disallowed origin');
      assert.ok(r.error, 'the call fails');
      assert.equal(r.error.isHeliosDBError, true, `a HeliosDBError (${r.error.name}: ${r.error.message})`);
      await page.close();
      const { page: allowedPage } = await openSuite(browser, site);
      const ok = await allowedPage.evaluate(
        ([url]) => (globalThis as unknown as { heliosdbSuite: BrowserSuite }).heliosdbSuite.probe(url, 'SELECT 1 AS n'),
        [server.httpUrl!] as const,
      );
      assert.deepEqual(ok, { rows: [{ n: 1 }] }, 'the allowed origin gets its answer from the same server');
      await allowedPage.close();
    } finally {
      await server.close();
      await other.close();
    }
  });
});
