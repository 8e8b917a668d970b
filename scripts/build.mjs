// Builds both packages (`npm run build`):
//   src/client/dist/esm/{src/client,gen}/  @heliosdb/client: ESM JavaScript + .d.ts (tsc), and
//   src/client/dist/cjs/{src/client,gen}/  CommonJS (esbuild, file by file, no bundling) with the
//                                          same .d.ts, read as CommonJS thanks to a
//                                          {"type":"commonjs"} package.json beside them;
//   src/server/dist/                       @heliosdb/server: ESM + .d.ts (tsc), the heliosdb bin.
// The server resolves @heliosdb/client through node_modules (the workspace link) to the client's
// built declarations, as a consumer would: the client is built first.
// Source maps carry their sources (inlineSources), and declaration maps point at the .ts files
// each package ships, so stack traces and go-to-definition land on the package's own sources.
// Each new tree is built in a staging folder beside dist/ (at the same depth, so relative map
// paths hold) and swapped in at the end: a failed build leaves the previous dist/ intact.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const started = performance.now();
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');

const walk = (dir) =>
  readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });

function runTsc(project, outDir) {
  try {
    execFileSync(process.execPath, [tsc, '-p', project, '--outDir', outDir], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  } catch {
    throw new Error(`tsc -p ${relative(root, project)} failed (see above)`);
  }
}

/** Builds into a staging folder beside `dist`, then swaps it in. */
async function staged(pkgDir, build) {
  const dist = join(pkgDir, 'dist');
  const stage = join(pkgDir, `.dist-staging-${process.pid}`);
  const old = join(pkgDir, `.dist-old-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  try {
    await build(stage);
    if (existsSync(dist)) renameSync(dist, old);
    renameSync(stage, dist);
    rmSync(old, { recursive: true, force: true });
  } catch (err) {
    rmSync(stage, { recursive: true, force: true });
    throw err;
  }
}

// Each package ships the repository's license (copied here, not kept twice in git).
for (const dir of ['client', 'server']) copyFileSync(join(root, 'LICENSE'), join(root, 'src', dir, 'LICENSE'));

const writeJson = (file, value) => writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);

try {
  // @heliosdb/client
  const client = join(root, 'src', 'client');
  await staged(client, async (out) => {
    runTsc(join(client, 'tsconfig.build.json'), join(out, 'esm'));
    writeJson(join(out, 'esm', 'package.json'), { type: 'module' });
    // The generated code's declarations are built from gen/, which the package does not ship:
    // their declaration maps would point nowhere.
    for (const file of walk(join(out, 'esm', 'gen'))) {
      if (file.endsWith('.d.ts.map')) rmSync(file);
      else if (file.endsWith('.d.ts')) writeFileSync(file, readFileSync(file, 'utf8').replace(/\n\/\/# sourceMappingURL=.*\n?$/, '\n'));
    }
    const entryPoints = [join(root, 'src', 'client'), join(root, 'gen')]
      .flatMap((d) => walk(d))
      .filter(
        (p) => /\.[cm]?ts$/.test(p) && !/\.d\.[cm]?ts$/.test(p) && !p.includes(`${join('src', 'client')}/dist`) && !p.includes('.dist-'),
      );
    const result = await esbuild.build({
      absWorkingDir: root,
      entryPoints,
      outbase: root,
      outdir: join(out, 'cjs'),
      bundle: false,
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      sourcemap: true,
      sourcesContent: true,
      logLevel: 'warning',
      logOverride: { 'empty-import-meta': 'error' },
    });
    if (result.errors.length) throw new Error('esbuild failed');
    writeJson(join(out, 'cjs', 'package.json'), { type: 'commonjs' });
    for (const file of walk(join(out, 'esm'))) {
      if (!/\.d\.ts(\.map)?$/.test(file)) continue;
      const target = join(out, 'cjs', relative(join(out, 'esm'), file));
      mkdirSync(dirname(target), { recursive: true });
      copyFileSync(file, target);
    }
  });

  // @heliosdb/server (ESM only: Node 20 requires ESM from CommonJS itself)
  const server = join(root, 'src', 'server');
  await staged(server, async (out) => {
    runTsc(join(server, 'tsconfig.build.json'), out);
    const bin = join(out, 'bin', 'heliosdb.js');
    if (!existsSync(bin)) throw new Error('missing dist/bin/heliosdb.js');
    chmodSync(bin, 0o755);
  });
} catch (err) {
  console.error(`build failed: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
console.log(
  `built @heliosdb/client (src/client/dist) and @heliosdb/server (src/server/dist) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
