/**
 * Headless Chromium for the browser tests: Debian's `chromium` package driven by `playwright-core`
 * (which never downloads a browser of its own), a small static HTTP server for test pages, and the
 * rule for a missing Chromium: on CI (`CI=true`) the browser tests FAIL, saying how to install it;
 * on a developer machine they are skipped, loudly.
 * @packageDocumentation
 */
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { type Browser, chromium } from 'playwright-core';

/** The command that installs Chromium on Debian. */
export const chromiumInstallCommand = 'apt-get update && apt-get install -y chromium';

/** Environment variable naming another Chromium executable. */
export const chromiumEnv = 'HELIOSDB_CHROMIUM';

/**
 * The Chromium executable: `$HELIOSDB_CHROMIUM` when set (and nothing else then), else Debian's
 * `/usr/bin/chromium`; undefined when missing.
 */
export function findChromium(): string | undefined {
  const given = process.env[chromiumEnv];
  const candidates = given ? [given] : ['/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((p) => existsSync(p));
}

/** The flags every test browser starts with. */
export const chromiumFlags = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const missingMessage = `Chromium is not installed (looked for ${process.env[chromiumEnv] || '/usr/bin/chromium, /usr/bin/chromium-browser'}). Install it with: ${chromiumInstallCommand}`;

let warned = false;

/**
 * Declares `describe(title)` when Chromium is there. When it is missing: on CI a failing test that
 * names the install command; elsewhere a skipped test and a banner on stderr.
 */
export function describeWithChromium(title: string, body: (executablePath: string) => void): void {
  const executablePath = findChromium();
  if (executablePath) {
    describe(title, () => body(executablePath));
    return;
  }
  if (process.env.CI === 'true') {
    test(title, () => {
      throw new Error(`${missingMessage}. CI must run the browser tests (.ci/run installs it).`);
    });
    return;
  }
  if (!warned) {
    warned = true;
    process.stderr.write(`\n*** BROWSER TESTS SKIPPED: ${missingMessage} ***\n\n`);
  }
  test(title, { skip: missingMessage }, () => {});
}

/** Starts headless Chromium. Never downloads anything: it runs the executable given. */
export async function launchChromium(executablePath: string): Promise<Browser> {
  return chromium.launch({ executablePath, headless: true, args: chromiumFlags, timeout: 30_000 });
}

/** One file a {@link StaticServer} serves. */
export interface StaticFile {
  type: string;
  body: string | Uint8Array;
}

/** A static HTTP server on 127.0.0.1. */
export interface StaticServer {
  /** `http://127.0.0.1:port` (also the page origin). */
  readonly origin: string;
  /** Replaces or adds a file. */
  set(path: string, file: StaticFile): void;
  close(): Promise<void>;
}

/** Serves `files` (by exact path) on a free port; anything else is 404. */
export async function serveStatic(files: Record<string, StaticFile> = {}): Promise<StaticServer> {
  const table = new Map(Object.entries(files));
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const file = table.get(path);
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' }).end(file.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    set(path, file) {
      table.set(path, file);
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A page that loads `/app.js` as a module. */
export function modulePage(title: string, body = ''): StaticFile {
  return {
    type: 'text/html; charset=utf-8',
    body: `<!doctype html>\n<html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}<script type="module" src="/app.js"></script></body></html>\n`,
  };
}
