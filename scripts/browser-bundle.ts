/**
 * The browser bundle of `@heliosdb/client` (`npm run build:browser`): bundles `src/web.ts` with
 * esbuild for `platform: 'browser'`, minified, into `dist/browser/heliosdb.min.js`, checks from
 * esbuild's metafile that nothing Node-only got in, and prints the minified and gzipped sizes
 * (also written to `dist/browser/size.json`). The browser tests use the same functions.
 * @packageDocumentation
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

/** The repository root. */
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** What may never be in a browser bundle, as patterns over metafile input paths and import paths. */
export const nodeOnlyPatterns: readonly RegExp[] = [
  /^node:/,
  /(^|\/)node_modules\/@grpc\/grpc-js\//,
  /(^|\/)node_modules\/pg(-[a-z]+)?\//,
  /(^|\/)node_modules\/@electric-sql\/pglite\//,
  /(^|\/)node_modules\/@connectrpc\/connect-node\//,
  /(^|\/)node_modules\/pino[^/]*\//,
  /(^|\/)src\/server\//,
  /(^|\/)src\/transport\/(node-parts|node-connect-parts|grpc-pool|grpc-transport)\.ts$/,
];

const builtins = new Set(builtinModules);

/**
 * An esbuild plugin that keeps Node built-ins (`node:fs`, `fs`, ...) out of the bundle as
 * externals instead of failing the build, so that the metafile names them and the check can say
 * which file imported them.
 */
const nodeBuiltinsAsExternal: esbuild.Plugin = {
  name: 'node-builtins-as-external',
  setup(build) {
    build.onResolve({ filter: /^[a-z_:][a-z0-9_/:.-]*$/ }, (args) => {
      const bare = args.path.replace(/^node:/, '');
      if (args.path.startsWith('node:') || builtins.has(bare.split('/')[0])) return { path: `node:${bare}`, external: true };
      return undefined;
    });
  },
};

/** A bundle built for the browser. */
export interface BrowserBundle {
  /** The bundled JavaScript. */
  code: string;
  /** esbuild's metafile. */
  metafile: esbuild.Metafile;
  /** Every input file (relative to the repository root) and every external import. */
  modules: string[];
  /** The modules that match {@link nodeOnlyPatterns}, with the file that imported each. */
  nodeOnly: string[];
  /** Size of the code, bytes. */
  bytes: number;
  /** Size of the gzipped code (level 9), bytes. */
  gzipBytes: number;
}

/** Bundles `entry` (relative to the repository root) for the browser as one ESM file. */
export async function bundleForBrowser(entry: string, options: { minify?: boolean; sourcemap?: boolean } = {}): Promise<BrowserBundle> {
  const result = await esbuild.build({
    absWorkingDir: repoRoot,
    entryPoints: [entry],
    bundle: true,
    write: false,
    outfile: 'bundle.js',
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
    minify: options.minify ?? true,
    sourcemap: options.sourcemap ? 'inline' : false,
    metafile: true,
    legalComments: 'none',
    logLevel: 'silent',
    plugins: [nodeBuiltinsAsExternal],
  });
  const js = result.outputFiles.find((f) => f.path.endsWith('.js'));
  if (!js) throw new Error('esbuild produced no JavaScript');
  const modules = new Set<string>();
  const nodeOnly: string[] = [];
  for (const [input, info] of Object.entries(result.metafile.inputs)) {
    modules.add(input);
    if (nodeOnlyPatterns.some((p) => p.test(input))) nodeOnly.push(input);
    for (const imp of info.imports) {
      if (!imp.external) continue;
      modules.add(imp.path);
      if (nodeOnlyPatterns.some((p) => p.test(imp.path)) || imp.path.startsWith('node:'))
        nodeOnly.push(`${imp.path} (imported by ${input})`);
    }
  }
  const code = js.text;
  return {
    code,
    metafile: result.metafile,
    modules: [...modules].sort(),
    nodeOnly,
    bytes: Buffer.byteLength(code),
    gzipBytes: gzipSync(code, { level: 9 }).length,
  };
}

/** `12.3 KB` (1 KB = 1000 bytes, as bundle size reports usually count). */
export function kb(bytes: number): string {
  return `${(bytes / 1000).toFixed(1)} KB`;
}

async function main(): Promise<void> {
  const bundle = await bundleForBrowser('src/client/web.ts');
  if (bundle.nodeOnly.length) {
    console.error(`build:browser: Node-only modules in the browser bundle:\n  ${bundle.nodeOnly.join('\n  ')}`);
    process.exit(1);
  }
  const out = join(repoRoot, 'dist', 'browser');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'heliosdb.min.js'), bundle.code);
  const size = { entry: 'src/client/web.ts', minifiedBytes: bundle.bytes, gzipBytes: bundle.gzipBytes, modules: bundle.modules.length };
  writeFileSync(join(out, 'size.json'), `${JSON.stringify(size, null, 2)}\n`);
  console.log(
    `dist/browser/heliosdb.min.js: ${kb(bundle.bytes)} minified, ${kb(bundle.gzipBytes)} minified+gzipped (${bundle.modules.length} modules)`,
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
