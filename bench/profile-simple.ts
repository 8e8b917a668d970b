/**
 * Profiling driver for the simple-query path: starts the HeliosDB server in a child process (on
 * PostgreSQL, or PGlite with --pglite), runs `SELECT $1::int` from this process through one stack
 * in a closed loop, and prints queries/s with the client's and the server's CPU per query.
 *
 *   npx tsx bench/profile-simple.ts --driver=sdk|session|raw|connect|pg [--c=1] [--ms=5000] [--prof] [--stream=ROWS]
 *
 * With --stream=ROWS each call streams ROWS rows of ~1 KB instead, with --batch=ROWS it inserts
 * ROWS rows (figures are then per row).
 *
 * With --prof both processes write V8 CPU profiles to .bench-out/prof/ and a summary of each
 * (self time by area and by function) is printed: `npx tsx bench/lib/cpuprofile.ts FILE` prints one.
 * @packageDocumentation
 */
import { fork } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { type BenchRow, createInsertTable, openDriver, streamSql } from './lib/drivers.js';
import pg from 'pg';
import { syscalls } from './lib/proc.js';
import { Ipc } from './lib/ipc.js';
import { summarize } from './lib/cpuprofile.js';
import type { ProcessUsage } from './lib/types.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string, def: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const has = (name: string) => process.argv.includes(`--${name}`);
const driver = arg('driver', 'sdk');
const concurrency = Number(arg('c', '1'));
const ms = Number(arg('ms', '5000'));
const prof = has('prof');
const pglite = has('pglite');
/** --stream=N: stream N rows of ~1 KB per call instead of the simple query (n counts rows). */
const streamRows = Number(arg('stream', '0'));
/** --batch=N: insert N rows per call (executeMany for the SDK) instead (n counts rows). */
const batchRows = Number(arg('batch', '0'));
const batch: BenchRow[] = Array.from({ length: batchRows }, (_, i) => [
  i + 1,
  `name-${i + 1}`,
  (i + 1) * 0.5,
  new Date(Date.UTC(2026, 0, 1) + i * 1000),
]);
const profDir = path.join(root, '.bench-out/prof');
const postgresUrl =
  process.env.HELIOSDB_BENCH_POSTGRES_URL || process.env.HELIOSDB_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';

if (prof) mkdirSync(profDir, { recursive: true });
const child = fork(
  path.join(root, 'bench/lib/server-process.ts'),
  [JSON.stringify(pglite ? {} : { databaseUrl: postgresUrl, poolSize: 20 })],
  {
    cwd: root,
    execArgv: ['--import', 'tsx', '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  },
);
const ipc = new Ipc(child);
const ready = await new Promise<{ grpcUrl: string; httpUrl?: string }>((resolve) => {
  ipc.onEvent = (name, value) => name === 'ready' && resolve(value as { grpcUrl: string; httpUrl?: string });
});

const d = openDriver({
  driver:
    driver === 'raw'
      ? 'raw'
      : driver === 'connect'
        ? 'sdk-connect'
        : driver === 'pg'
          ? 'pg'
          : driver === 'postgres.js'
            ? 'postgres.js'
            : driver === 'values'
              ? 'sdk-values'
              : driver === 'session'
                ? 'sdk-session'
                : 'sdk-grpc',
  backend: 'postgresql',
  ops: ['simple'],
  poolSize: 20,
  sizes: {} as never,
  targets: { grpcUrl: ready.grpcUrl, httpUrl: ready.httpUrl, postgresUrl },
});

if (batchRows) {
  const admin = new pg.Client({ connectionString: postgresUrl });
  await admin.connect();
  await admin.query(createInsertTable);
  await admin.end();
}

async function loop(durationMs: number): Promise<number> {
  let n = 0;
  let next = 1;
  const deadline = performance.now() + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        // (`n += await ...` would read n before the await and lose the other workers' counts.)
        if (streamRows) {
          const got = await d.stream!(streamSql(streamRows, Number(arg('width', '1000'))));
          n += got;
        } else if (batchRows) {
          await (d.insertAll ?? d.insert)!(batch);
          n += batch.length;
        } else {
          await d.simple!(next++);
          n++;
        }
      }
    }),
  );
  return n;
}

await loop(1000); // warm up
let session: Session | undefined;
if (prof) {
  session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
}
const stamp = `${driver}-c${concurrency}-${Date.now()}`;
const serverProfile = path.join(profDir, `server-${stamp}.cpuprofile`);
if (prof) await ipc.request('profileStart');
await ipc.request('begin');
const s0 = syscalls();
const c0 = process.cpuUsage();
const t0 = performance.now();
const n = await loop(ms);
const elapsed = performance.now() - t0;
const c1 = process.cpuUsage(c0);
const s1 = syscalls();
const server = await ipc.request<ProcessUsage>('end');
if (prof) await ipc.request('profileStop', serverProfile);
let clientProfile: string | undefined;
if (session) {
  const { profile } = await session.post('Profiler.stop');
  clientProfile = path.join(profDir, `client-${stamp}.cpuprofile`);
  writeFileSync(clientProfile, JSON.stringify(profile));
  session.disconnect();
}
await d.close();
const per = (x: number | undefined) => (x === undefined ? '?' : (x / n).toFixed(1));
const sys = `syscalls/q: client ${per(s1 && s0 ? s1.reads - s0.reads : undefined)} reads ${per(s1 && s0 ? s1.writes - s0.writes : undefined)} writes; server ${per(server.readCalls)} reads ${per(server.writeCalls)} writes`;
const qps = (n / elapsed) * 1000;
console.log(
  `${driver} c${concurrency}: ${qps.toFixed(0)} q/s; client CPU ${((c1.user + c1.system) / n).toFixed(0)} µs/q (user ${(c1.user / n).toFixed(0)}, system ${(c1.system / n).toFixed(0)}); server CPU ${((server.cpuMs * 1000) / n).toFixed(0)} µs/q; ${sys}`,
);
await ipc.request('stop').catch(() => {});
await new Promise((r) => child.once('exit', r));
if (prof && clientProfile) {
  console.log('\n--- client ---');
  console.log(summarize(clientProfile));
  console.log('\n--- server ---');
  console.log(summarize(serverProfile));
  console.log(`\nprofiles: ${path.relative(root, clientProfile)} ${path.relative(root, serverProfile)}`);
}
