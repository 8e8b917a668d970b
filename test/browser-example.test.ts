/**
 * examples/browser driven in headless Chromium as a person would use it: type SQL, click Run, read
 * the table; see a typed error; stream a large result, watch the row counter, cancel it; read the
 * pool and metrics panels. The example runs as its own process (`tsx examples/browser/serve.ts`),
 * as a developer starts it. Leaves a screenshot in test-output/browser-example.png.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { describeWithChromium, launchChromium } from './helpers/chromium.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Starts the example on free ports; resolves to its page URL and the process. */
async function startExample(): Promise<{ child: ChildProcess; pageUrl: string; output: () => string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HELIOSDB_HTTP_PORT: '0' };
  delete env.HELIOSDB_DATABASE_URL; // the embedded engine, as `npx tsx examples/browser/serve.ts` starts it
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'examples/browser/serve.ts')], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const pageUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the example did not start in 30 s:\n${out}`)), 30_000);
    const check = () => {
      const m = /open (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the example exited with ${code}:\n${out}`));
    });
  });
  return { child, pageUrl, output: () => out };
}

const text = async (page: Page, selector: string) => (await page.locator(selector).textContent()) ?? '';

describeWithChromium('browser example (examples/browser)', (executablePath) => {
  let browser: Browser;
  let example: Awaited<ReturnType<typeof startExample>>;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    [browser, example] = await Promise.all([launchChromium(executablePath), startExample()]);
    page = await browser.newPage({ viewport: { width: 1200, height: 950 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(example.pageUrl);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 15_000 });
  });
  after(async () => {
    await browser?.close();
    if (example?.child.exitCode === null) {
      const exited = new Promise((r) => example.child.once('exit', r));
      example.child.kill('SIGTERM');
      await exited;
    }
  });

  test('typing SQL and clicking Run shows the rows in a table', async () => {
    await page.waitForFunction(() => /HeliosDB .* on pglite/.test(document.getElementById('server-info')!.textContent ?? ''), undefined, {
      timeout: 10_000,
    });
    await page.fill(
      '#sql',
      "SELECT n, n::int8 * 1000000000000 AS big, 1.50::numeric AS price, '\\x00ff'::bytea AS bytes, ARRAY['a', NULL] AS tags FROM generate_series(1, 3) AS n",
    );
    await page.click('#run');
    await page.waitForSelector('#result-table');
    const headers = await page.locator('#result-table thead th').allInnerTexts();
    assert.deepEqual(
      headers.map((h) => h.replace(/\s+/g, ' ').trim()),
      ['n int4', 'big int8', 'price numeric', 'bytes bytea', 'tags _text'],
    );
    const rows = await page
      .locator('#result-table tbody tr')
      .evaluateAll((trs) => trs.map((tr) => Array.from(tr.children, (td) => td.textContent)));
    assert.deepEqual(rows, [
      ['1', '1000000000000', '1.50', '\\x00ff', '["a",null]'],
      ['2', '2000000000000', '1.50', '\\x00ff', '["a",null]'],
      ['3', '3000000000000', '1.50', '\\x00ff', '["a",null]'],
    ]);
    assert.match(await text(page, '#query-status'), /^SELECT 3 rows in [\d.]+ ms/);
  });

  test('a bad statement shows the typed error', async () => {
    await page.fill('#sql', 'SELEC 1');
    await page.click('#run');
    await page.waitForFunction(() => document.getElementById('query-error')!.textContent !== '');
    assert.match(await text(page, '#query-error'), /^QueryError \(QUERY_ERROR, SQLSTATE 42601, at character 1\): syntax error/);
    assert.equal(await page.locator('#result-table').count(), 0, 'no table for a failed query');
  });

  test('streaming a large result counts rows live, and Cancel stops it', async () => {
    const counter = async () => Number((await text(page, '#row-counter')).replace(/,/g, ''));
    await page.click('#stream');
    await page.waitForFunction(() => Number(document.getElementById('row-counter')!.textContent!.replace(/,/g, '')) >= 20_000, undefined, {
      polling: 20,
      timeout: 20_000,
    });
    assert.match(await text(page, '#stream-status'), /streaming/, 'still streaming when the counter passed 20 000');
    assert.equal(await page.locator('#cancel').isEnabled(), true);
    await page.click('#cancel');
    await page.waitForFunction(() => /cancelled|done|failed/.test(document.getElementById('stream-status')!.textContent ?? ''), undefined, {
      timeout: 10_000,
    });
    const status = await text(page, '#stream-status');
    assert.match(status, /^cancelled after [\d,]+ rows$/);
    const rows = await counter();
    assert.ok(rows >= 20_000 && rows < 3_000_000, `stopped early (${rows} rows)`);
    await page.waitForTimeout(200);
    assert.equal(await counter(), rows, 'the counter stays put after the cancel');
    assert.equal(await page.locator('#stream').isEnabled(), true, 'Stream can be clicked again');
    // The server freed the query: the next statement runs at once.
    await page.fill('#sql', 'SELECT 42 AS answer');
    await page.click('#run');
    await page.waitForFunction(() => document.querySelector('#result-table tbody td')?.textContent === '42', undefined, { timeout: 5_000 });
  });

  test('the pool and metrics panels show the client statistics; screenshot', async () => {
    await page.fill('#sql', 'SELECT n, n * n AS square, now() AS at, md5(n::text) AS hash FROM generate_series(1, 5) AS n');
    await page.click('#run');
    await page.waitForFunction(() => document.querySelectorAll('#result-table tbody tr').length === 5);
    await page.waitForTimeout(300); // the panels refresh every 250 ms
    const pool = JSON.parse(await text(page, '#pool-stats')) as Record<string, number>;
    assert.equal(pool.inFlight, 0);
    assert.equal(pool.waiting, 0);
    assert.ok(pool.poolHits >= 5, `calls counted (${JSON.stringify(pool)})`);
    const metrics = await text(page, '#metrics');
    assert.match(metrics, /^Query\s+\d+ calls\s+1 errors/m, 'Query calls, with the failed one');
    assert.match(metrics, /^StreamQuery\s+1 calls/m);
    mkdirSync(join(root, 'test-output'), { recursive: true });
    await page.screenshot({ path: join(root, 'test-output', 'browser-example.png'), fullPage: true });
    assert.deepEqual(pageErrors, [], 'no uncaught errors in the page');
  });
});
