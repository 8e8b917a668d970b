/**
 * Side-by-side benchmarks (`npm run bench`, `npm run bench -- --quick`): the design document's four operations
 * (simple query, batch insert, streaming, pool) through the HeliosDB SDK, the raw generated stub on
 * a bare grpc-js client (the floor of our stack), node-postgres and postgres.js, in one run on one
 * machine. The HeliosDB server (on PostgreSQL, and on PGlite for the simple query and the cells below) runs in a child
 * process; every cell runs in a fresh client process; both are metered apart. Beside them: pg (and
 * the SDK over postgres://) through the server's pg port on both backends, a prepared point query
 * and one-row insert run by pg, cassandra-driver on the CQL port and the SDK on the same keyspace
 * tables (./lib/kv.ts), and the SDK with an OpenTelemetry tracer provider recording spans.
 *
 * Writes bench/results/latest.{md,json,svg} (a full run) or bench/results/quick.{md,json,svg}
 * (`--quick`, the CI smoke run: small sizes, one repeat, no speed assertions; it fails only when
 * something breaks).
 *
 * Flags: --quick, --repeats=N, --only=simple,batch,stream,pool-queries,pool-streams,point,insert, --out=DIR,
 * --render (write the Markdown and the chart again from the last run's JSON),
 * --no-wait (a full run otherwise waits, within limits, for other work on the machine to calm
 * down before each cell).
 * PostgreSQL: HELIOSDB_BENCH_POSTGRES_URL, else HELIOSDB_TEST_POSTGRES_URL, else
 * postgres://postgres@127.0.0.1:5432/test.
 * @packageDocumentation
 */
import { execFileSync, fork } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { unsupported } from './lib/drivers.js';
import { Ipc } from './lib/ipc.js';
import { dropKv, setUpKv } from './lib/kv.js';
import { svg } from './lib/chart.js';
import { goals } from './lib/goals.js';
import { markdown } from './lib/markdown.js';
import { aggregate, labelOf, type Machine, type Report } from './lib/report.js';
import type { Backend, CellResult, CellSpec, DriverName, Operation, ProcessUsage, Sizes } from './lib/types.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name: string) => args.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
const flagValue = (name: string) => flag(name)?.split('=').slice(1).join('=');

const quick = flag('quick') !== undefined;
const repeats = Number(flagValue('repeats') ?? (quick ? 1 : 3));
const allOps: Operation[] = ['simple', 'batch', 'stream', 'pool-queries', 'pool-streams', 'point', 'insert'];
const ops = (flagValue('only')?.split(',') as Operation[] | undefined) ?? allOps;
for (const op of ops) if (!allOps.includes(op)) throw new Error(`unknown operation ${op}; expected ${allOps.join(', ')}`);
const outDir = path.resolve(root, flagValue('out') ?? 'bench/results');
const postgresUrl =
  process.env.HELIOSDB_BENCH_POSTGRES_URL || process.env.HELIOSDB_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';
const poolSize = 20;

const sizes: Sizes = quick
  ? {
      simpleMs: 1000,
      warmupMs: 200,
      concurrency: [1, 64],
      batchRows: 10_000,
      batchChunk: 5000,
      streamRows: 50_000,
      poolQueries: 1000,
      poolStreams: 200,
      poolStreamRows: 100,
    }
  : {
      simpleMs: 5000,
      warmupMs: 1000,
      concurrency: [1, 64],
      batchRows: 100_000,
      batchChunk: 5000,
      streamRows: 1_000_000,
      poolQueries: 10_000,
      poolStreams: 1000,
      poolStreamRows: 100,
    };

type Variant = [DriverName, Backend | 'direct'];
const variants: Record<Operation, Variant[]> = {
  simple: [
    ['sdk-grpc', 'postgresql'],
    ['sdk-grpc-traced', 'postgresql'],
    ['sdk-session', 'postgresql'],
    ['sdk-connect', 'postgresql'],
    ['raw', 'postgresql'],
    ['pg', 'postgresql'],
    ['sdk-pg', 'postgresql'],
    ['sdk-pg', 'direct'],
    ['pg', 'direct'],
    ['postgres.js', 'direct'],
    ['sdk-grpc', 'pglite'],
    ['raw', 'pglite'],
    ['pg', 'pglite'],
    ['sdk-pg', 'pglite'],
  ],
  batch: [
    ['sdk-grpc', 'postgresql'],
    ['sdk-session', 'postgresql'],
    ['sdk-values', 'postgresql'],
    ['sdk-connect', 'postgresql'],
    ['raw', 'postgresql'],
    ['pg', 'postgresql'],
    ['sdk-pg', 'direct'],
    ['pg', 'direct'],
    ['postgres.js', 'direct'],
    ['pg', 'pglite'],
  ],
  stream: [
    ['sdk-grpc', 'postgresql'],
    ['sdk-session', 'postgresql'],
    ['sdk-connect', 'postgresql'],
    ['raw', 'postgresql'],
    ['pg', 'postgresql'],
    ['sdk-pg', 'direct'],
    ['pg', 'direct'],
    ['postgres.js', 'direct'],
    ['pg', 'pglite'],
  ],
  'pool-queries': [
    ['sdk-grpc', 'postgresql'],
    ['sdk-session', 'postgresql'],
    ['sdk-connect', 'postgresql'],
    ['raw', 'postgresql'],
    ['sdk-pg', 'direct'],
    ['pg', 'direct'],
    ['postgres.js', 'direct'],
  ],
  'pool-streams': [
    ['sdk-grpc', 'postgresql'],
    ['sdk-session', 'postgresql'],
    ['sdk-connect', 'postgresql'],
    ['raw', 'postgresql'],
    ['sdk-pg', 'direct'],
    ['pg', 'direct'],
    ['postgres.js', 'direct'],
  ],
  // The same point query and one-row upsert on the same keyspace tables (./lib/kv.ts): CQL beside pg.
  point: kvVariants(),
  insert: kvVariants(),
};

function kvVariants(): Variant[] {
  return [
    ['pg', 'direct'],
    ['pg', 'postgresql'],
    ['cql', 'postgresql'],
    ['sdk-grpc', 'postgresql'],
    ['pg', 'pglite'],
    ['cql', 'pglite'],
    ['sdk-grpc', 'pglite'],
  ];
}

const childArgv = ['--import', 'tsx', '--expose-gc'];
const log = (s: string) => process.stderr.write(s + '\n');

// ---------------------------------------------------------------------------------------------
// The server processes

interface ServerProc {
  backend: Backend;
  grpcUrl: string;
  httpUrl?: string;
  /** The pg port, as a URL with user and database. */
  pgPortUrl?: string;
  /** The CQL port, `host:port`. */
  cqlAddress?: string;
  pid: number;
  ipc: Ipc;
  stop(): Promise<void>;
}

async function startServerProc(backend: Backend): Promise<ServerProc> {
  const options = backend === 'postgresql' ? { databaseUrl: postgresUrl, poolSize } : {};
  const child = fork(path.join(root, 'bench/lib/server-process.ts'), [JSON.stringify(options)], {
    cwd: root,
    execArgv: childArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ipc = new Ipc(child);
  type Ready = { grpcUrl: string; httpUrl?: string; pgUrl?: string; cqlPort?: number; pid: number };
  const ready = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the ${backend} server did not start within 60 s`)), 60_000);
    ipc.onEvent = (name, value) => {
      if (name !== 'ready') return;
      clearTimeout(timer);
      resolve(value as Ready);
    };
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the ${backend} server exited (${code ?? signal}) before it was ready`));
    });
  });
  child.once('exit', () => ipc.failPending(`the ${backend} server exited`));
  let pgPortUrl: string | undefined;
  if (ready.pgUrl) {
    const u = new URL(ready.pgUrl);
    u.username = 'postgres';
    u.pathname = '/postgres';
    pgPortUrl = u.toString();
  }
  return {
    backend,
    grpcUrl: ready.grpcUrl,
    httpUrl: ready.httpUrl,
    pgPortUrl,
    cqlAddress: ready.cqlPort === undefined ? undefined : `127.0.0.1:${ready.cqlPort}`,
    pid: ready.pid,
    ipc,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await Promise.race([ipc.request('stop').catch(() => {}), exited]);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Cells

async function runCell(spec: CellSpec, server: ServerProc | undefined, timeoutMs: number): Promise<CellResult[]> {
  const child = fork(path.join(root, 'bench/lib/cell.ts'), [JSON.stringify(spec)], {
    cwd: root,
    execArgv: childArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ipc = new Ipc(child, {
    serverBegin: () => server!.ipc.request('begin'),
    serverEnd: () => server!.ipc.request<ProcessUsage>('end'),
  });
  return new Promise<CellResult[]>((resolve) => {
    let result: CellResult[] | undefined;
    let timedOut = false;
    ipc.onEvent = (name, value) => {
      if (name === 'result') result = value as CellResult[];
    };
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      ipc.close();
      const error = timedOut ? `timed out after ${timeoutMs / 1000} s` : `the cell process exited (${code ?? signal}) without a result`;
      resolve(
        result ??
          spec.ops.map((op) => ({ spec: { driver: spec.driver, backend: spec.backend, op, poolSize: spec.poolSize }, phases: [], error })),
      );
    });
  });
}

function summary(r: CellResult): string {
  if (r.skipped) return `skipped (${r.skipped})`;
  if (r.error) return `FAILED: ${r.error}`;
  return r.phases
    .map((p) => {
      const rate = (p.completed / p.elapsedMs) * 1000;
      const extra = p.bytes ? ` ${(((p.bytes / p.elapsedMs) * 1000) / 1e6).toFixed(0)} MB/s` : '';
      const lat = p.p50Ms !== undefined ? ` p50 ${p.p50Ms.toFixed(2)} p99 ${p.p99Ms!.toFixed(2)} ms` : '';
      const fail = p.failed ? ` ${p.failed} failed` : '';
      return `${p.phase}: ${rate.toFixed(0)}/s${extra}${lat}${fail} (${(p.elapsedMs / 1000).toFixed(2)} s)`;
    })
    .join('; ');
}

// ---------------------------------------------------------------------------------------------
// Main

async function postgresVersion(): Promise<string | undefined> {
  const c = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    const r = await c.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return `PostgreSQL ${r.rows[0].v.split(' ')[0]}`;
  } catch {
    return undefined;
  } finally {
    await c.end().catch(() => {});
  }
}

/** 1-minute load averages sampled before each cell. */
const loadSamples: number[] = [];
/** Share of the machine's CPU busy with other work (ours is idle then), sampled before each cell. */
const busySamples: number[] = [];

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const c of os.cpus()) {
    const t = c.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { idle, total };
}

/** The share of CPU time the machine spent busy over the next `ms`. */
async function busyShare(ms: number): Promise<number> {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTimes();
  const total = b.total - a.total;
  return total > 0 ? 1 - (b.idle - a.idle) / total : 0;
}

const quietWait = { budgetMs: quick || flag('no-wait') !== undefined ? 0 : 15 * 60_000, waitedMs: 0 };

/**
 * Before a cell of a full run: waits (at most 60 s per cell, 15 min per run) while other work keeps
 * the machine more than 25% busy, since the benchmark shares its 2 cores with whatever else runs.
 * Records how busy it was when the cell started.
 */
async function waitForQuiet(): Promise<void> {
  let busy = await busyShare(500);
  const t0 = performance.now();
  while (busy > 0.25 && quietWait.waitedMs + (performance.now() - t0) < quietWait.budgetMs && performance.now() - t0 < 60_000) {
    busy = await busyShare(2000);
  }
  quietWait.waitedMs += performance.now() - t0;
  busySamples.push(busy);
}

function machine(pgVersion: string | undefined): Machine {
  let commit: string | undefined;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    commit = undefined;
  }
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown CPU',
    memoryGiB: os.totalmem() / 2 ** 30,
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    postgres: pgVersion,
    commit,
    date: new Date().toISOString().slice(0, 10),
    loadAverage: loadSamples.length
      ? { median: [...loadSamples].sort((a, b) => a - b)[loadSamples.length >> 1], max: Math.max(...loadSamples) }
      : undefined,
    otherWork: busySamples.length
      ? {
          medianBusy: [...busySamples].sort((a, b) => a - b)[busySamples.length >> 1],
          maxBusy: Math.max(...busySamples),
          waitedSeconds: Math.round(quietWait.waitedMs / 1000),
        }
      : undefined,
  };
}

/** `--render`: writes the Markdown and the chart again from the JSON of the last run. */
function render(): number {
  const base = path.join(outDir, quick ? 'quick' : 'latest');
  const report = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as Report;
  writeFileSync(`${base}.md`, markdown(report));
  writeFileSync(`${base}.svg`, svg(report));
  console.log(markdown(report));
  return 0;
}

async function main(): Promise<number> {
  if (flag('render') !== undefined) return render();
  const t0 = performance.now();
  const notes: string[] = [];
  const pgVersion = await postgresVersion();
  if (!pgVersion) {
    if (process.env.CI === 'true') throw new Error(`PostgreSQL is not reachable at ${postgresUrl}`);
    notes.push(`PostgreSQL was not reachable at ${postgresUrl}: only the PGlite cells ran`);
    log(`bench: PostgreSQL is not reachable at ${postgresUrl}; running the PGlite cells only`);
  }
  const wantPglite = ops.some((op) => variants[op].some(([, b]) => b === 'pglite'));
  const wantPostgres = !!pgVersion;
  log(`bench: ${quick ? 'quick' : 'full'} run, ${repeats} repeat(s), operations ${ops.join(', ')}`);
  const [pgServer, pgliteServer] = await Promise.all([
    wantPostgres ? startServerProc('postgresql') : undefined,
    wantPglite ? startServerProc('pglite') : undefined,
  ]);
  const servers: Partial<Record<Backend, ServerProc>> = { postgresql: pgServer, pglite: pgliteServer };
  const results: CellResult[] = [];
  const wantKv = ops.includes('point') || ops.includes('insert');
  const kvServers = wantKv ? [pgServer, pgliteServer].filter((s) => s?.cqlAddress) : [];
  try {
    for (const s of kvServers) await setUpKv(s!.cqlAddress!);
    // A full run gives every operation of every stack a fresh process, and interleaves the stacks
    // (rotating their order on each repeat, so none always runs first or last). A quick run runs
    // all operations of a stack in one process, to start fewer processes.
    const jobs: { rep: number; ops: Operation[]; driver: DriverName; backend: Backend | 'direct' }[] = [];
    for (let rep = 0; rep < repeats; rep++) {
      if (quick) {
        const stacks: Variant[] = [];
        for (const op of ops) for (const v of variants[op]) if (!stacks.some((s) => s[0] === v[0] && s[1] === v[1])) stacks.push(v);
        for (const [driver, backend] of stacks)
          jobs.push({ rep, driver, backend, ops: ops.filter((op) => variants[op].some((v) => v[0] === driver && v[1] === backend)) });
      } else {
        for (const op of ops) {
          const list = variants[op];
          for (let i = 0; i < list.length; i++) {
            const [driver, backend] = list[(i + rep) % list.length];
            jobs.push({ rep, driver, backend, ops: [op] });
          }
        }
      }
    }
    for (const job of jobs) {
      const { rep, driver, backend } = job;
      if (backend === 'pglite' ? !pgliteServer : !wantPostgres) continue;
      const server = backend === 'direct' ? undefined : servers[backend];
      const spec: CellSpec = {
        driver,
        backend,
        ops: job.ops,
        sizes,
        poolSize,
        targets: {
          grpcUrl: server?.grpcUrl,
          httpUrl: server?.httpUrl,
          postgresUrl,
          pgPortUrl: server?.pgPortUrl,
          cqlAddress: server?.cqlAddress,
        },
      };
      const why = unsupported(driver, spec);
      if (!why) await waitForQuiet();
      loadSamples.push(os.loadavg()[0]);
      const c0 = performance.now();
      const rs: CellResult[] = why
        ? job.ops.map((op) => ({ spec: { driver, backend, op, poolSize }, phases: [], skipped: why }))
        : await runCell(spec, server, quick ? 120_000 : 600_000);
      const took = ((performance.now() - c0) / 1000).toFixed(1);
      for (const r of rs) {
        results.push(r);
        log(`[${rep + 1}/${repeats}] ${r.spec.op.padEnd(12)} ${labelOf(driver, backend).padEnd(58)} ${summary(r)}`);
      }
      log(`    (${took} s)`);
    }
  } finally {
    // The keyspace lives in the PostgreSQL database; PGlite's goes with its server.
    if (pgServer?.cqlAddress && wantKv)
      await dropKv(pgServer.cqlAddress).catch((e: unknown) => log(`bench: dropping the keyspace: ${String(e)}`));
    await Promise.all([pgServer?.stop(), pgliteServer?.stop()]);
  }

  const rows = aggregate(results, variants);
  notes.push(
    `HeliosDB server: PostgreSQL pool of ${poolSize} connections; pg and postgres.js pools of ${poolSize} connections too. The SDK runs with its defaults (10 to 100 HTTP/2 connections, 100 calls each).`,
    `Simple query: ${sizes.simpleMs / 1000} s per cell after ${sizes.warmupMs / 1000} s of warm-up, closed loop (each of c workers sends its next query when the last answered).`,
    `Batch insert: the SDK passes all rows to one executeMany call; the raw stub sends ExecuteBatch calls of ${sizes.batchChunk} parameter sets (the server pipelines one Bind/Execute per row); pg runs one multi-row INSERT ... VALUES of ${sizes.batchChunk} rows per call, postgres.js its sql(rows) bulk insert of ${sizes.batchChunk} rows; each call waits for the previous one.`,
    'Streaming and pool streams: the SDK decodes every row into a JavaScript object (as pg and postgres.js do); the raw stub leaves the compact row bytes undecoded.',
    'The "via heliosdb pg port" stacks reach the server on its PostgreSQL wire-protocol port (on PostgreSQL each client connection is relayed to a backend connection of its own; PGlite is one session the connections take turns on), the cassandra-driver stacks on its CQL port.',
    `Point query and insert: ${sizes.simpleMs / 1000} s per phase after ${sizes.warmupMs / 1000} s of warm-up, closed loop as the simple query, on tables of a keyspace made through the CQL port (on PostgreSQL a schema of the database the direct drivers use, so pg → PostgreSQL reads the same table); every insert writes a fresh key into a table emptied before each phase, and the rows are counted afterwards.`,
  );
  const report: Report = {
    mode: quick ? 'quick' : 'full',
    repeats,
    machine: machine(pgVersion),
    sizes: { ...sizes },
    rows,
    goals: goals(rows, { ...sizes }),
    notes,
  };
  const md = markdown(report);
  mkdirSync(outDir, { recursive: true });
  const base = path.join(outDir, quick ? 'quick' : 'latest');
  writeFileSync(`${base}.md`, md);
  writeFileSync(`${base}.json`, JSON.stringify({ ...report, results }, null, 2) + '\n');
  writeFileSync(`${base}.svg`, svg(report));
  console.log(md);
  log(`bench: wrote ${path.relative(root, base)}.{md,json,svg} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const broken = rows.filter((r) => r.errors.length > 0);
  const skipped = rows.filter((r) => r.skipped).length;
  if (broken.length > 0)
    log(`bench: ${broken.length} cell(s) failed: ${broken.map((r) => `${r.op} ${r.label}: ${r.errors[0]}`).join('; ')}`);
  // The plain closing line CI reads: cells that ran, broke, were skipped.
  console.log(`bench: ${rows.length - broken.length - skipped} passed, ${broken.length} failed${skipped ? `, ${skipped} skipped` : ''}`);
  return broken.length > 0 ? 1 : 0;
}

process.exitCode = await main().catch((e: unknown) => {
  log(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  return 1;
});
