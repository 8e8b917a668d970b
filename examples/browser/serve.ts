/**
 * The browser example: `npx tsx examples/browser/serve.ts`, then open the printed URL.
 *
 * Starts the HeliosDB server (embedded PGlite unless `HELIOSDB_DATABASE_URL` is set; gRPC on a free
 * port, the HTTP listener on 7701 or `HELIOSDB_HTTP_PORT`) with CORS for the page's own origin, bundles
 * ./app.ts for the browser with esbuild, and serves the page on 8080 (or `PORT`).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { type HeliosServer, startServer } from '../../src/server/server.js';

/** A running example. */
export interface BrowserExample {
  /** The page, e.g. `http://127.0.0.1:8080/`. */
  readonly pageUrl: string;
  readonly server: HeliosServer;
  close(): Promise<void>;
}

/** Bundles the page's script for the browser. */
export async function bundleApp(): Promise<string> {
  const result = await esbuild.build({
    entryPoints: [fileURLToPath(new URL('./app.ts', import.meta.url))],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    sourcemap: 'inline',
    logLevel: 'warning',
  });
  return result.outputFiles[0].text;
}

/** Starts the server and the page. Ports `0` pick free ones. */
export async function startBrowserExample(
  options: { pagePort?: number; httpPort?: number; databaseUrl?: string } = {},
): Promise<BrowserExample> {
  const html = readFileSync(new URL('./index.html', import.meta.url));
  const app = await bundleApp();
  let config = '{}';
  const page = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const files: Record<string, [string, string | Buffer]> = {
      '/': ['text/html; charset=utf-8', html],
      '/index.html': ['text/html; charset=utf-8', html],
      '/app.js': ['text/javascript; charset=utf-8', app],
      '/config.json': ['application/json', config],
    };
    const file = files[path];
    if (!file) return void res.writeHead(404).end('not found');
    res.writeHead(200, { 'content-type': file[0], 'cache-control': 'no-store' }).end(file[1]);
  });
  await new Promise<void>((resolve, reject) => {
    page.once('error', reject);
    page.listen(options.pagePort ?? 8080, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
  let server: HeliosServer;
  try {
    server = await startServer({
      port: 0,
      httpPort: options.httpPort ?? 7701,
      databaseUrl: options.databaseUrl,
      corsOrigins: [origin, origin.replace('127.0.0.1', 'localhost')],
      logLevel: 'warn',
    });
  } catch (e) {
    page.close();
    throw e;
  }
  config = JSON.stringify({ url: server.httpUrl });
  return {
    pageUrl: `${origin}/`,
    server,
    async close() {
      page.closeAllConnections();
      await new Promise((r) => page.close(r));
      await server.close();
    },
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const env = process.env;
  const example = await startBrowserExample({
    pagePort: env.PORT ? Number(env.PORT) : undefined,
    httpPort: env.HELIOSDB_HTTP_PORT ? Number(env.HELIOSDB_HTTP_PORT) : undefined,
    databaseUrl: env.HELIOSDB_DATABASE_URL || undefined,
  });
  console.log(`HeliosDB (${example.server.engine}) at ${example.server.httpUrl}; open ${example.pageUrl}`);
  const stop = () => void example.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
