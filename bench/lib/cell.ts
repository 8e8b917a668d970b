/**
 * One benchmark cell in its own process: one client stack, one operation (or, in a quick run,
 * several in turn). Started by bench/run.ts with a CellSpec as JSON in argv[2]; asks the
 * orchestrator to meter the HeliosDB server around each measured phase (`serverBegin` /
 * `serverEnd`) and sends back a CellResult per operation (`result` event).
 * @packageDocumentation
 */
import pg from 'pg';
import {
  type BenchDriver,
  type BenchRow,
  createInsertTable,
  insertTable,
  openDriver,
  streamPayloadBytes,
  streamSql,
  unsupported,
} from './drivers.js';
import { Ipc } from './ipc.js';
import { insertKvTable } from './kv.js';
import { startUsage } from './proc.js';
import type { CellKey, CellResult, CellSpec, PhaseResult, ProcessUsage } from './types.js';

const spec = JSON.parse(process.argv[2]!) as CellSpec;
const ipc = new Ipc(process);
const viaServer = spec.backend !== 'direct';
/** Where tables are set up and checked: PostgreSQL itself, or PGlite through the server's pg port. */
const adminUrl = spec.backend === 'pglite' ? spec.targets.pgPortUrl : spec.targets.postgresUrl;

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function message(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return `${e.constructor.name}${code !== undefined ? ` ${String(code)}` : ''}: ${e.message}`;
  }
  return String(e);
}

/** Meters one phase: this process always, the server when the cell goes through it. */
async function measure(
  phase: string,
  fn: () => Promise<Omit<PhaseResult, 'phase' | 'client' | 'server' | 'elapsedMs'> & { elapsedMs?: number }>,
): Promise<PhaseResult> {
  if (viaServer) await ipc.request('serverBegin');
  const meter = startUsage();
  const t0 = performance.now();
  const r = await fn();
  const elapsedMs = r.elapsedMs ?? performance.now() - t0;
  const client = meter.stop();
  const server = viaServer ? await ipc.request<ProcessUsage | undefined>('serverEnd') : undefined;
  return { phase, ...r, elapsedMs, client, server };
}

/** Runs `fn` from `concurrency` loops until `durationMs` passed. */
async function closedLoop(fn: (i: number) => Promise<void>, concurrency: number, durationMs: number) {
  let lat = new Float64Array(1 << 16);
  let count = 0;
  let failed = 0;
  let firstError: unknown;
  let next = 1;
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  const worker = async () => {
    while (performance.now() < deadline) {
      const i = next++ % 1_000_000_000;
      const s = performance.now();
      try {
        await fn(i);
        if (count === lat.length) {
          const grown = new Float64Array(lat.length * 2);
          grown.set(lat);
          lat = grown;
        }
        lat[count++] = performance.now() - s;
      } catch (e) {
        failed++;
        firstError ??= e;
        // A broken stack fails fast; do not spin.
        if (failed > 1000) return;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - t0;
  const sorted = lat.subarray(0, count).sort();
  return { elapsedMs, count, failed, firstError, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

/** Closed loops of `fn` at each concurrency: warm-up, then (after `before`) a measured phase. */
async function loops(fn: (i: number) => Promise<void>, before?: () => Promise<void>): Promise<PhaseResult[]> {
  const out: PhaseResult[] = [];
  for (const c of spec.sizes.concurrency) {
    const warm = await closedLoop(fn, c, spec.sizes.warmupMs);
    if (warm.failed > 0) throw warm.firstError;
    await before?.();
    out.push(
      await measure(`c${c}`, async () => {
        const r = await closedLoop(fn, c, spec.sizes.simpleMs);
        return {
          elapsedMs: r.elapsedMs,
          completed: r.count,
          failed: r.failed,
          p50Ms: r.p50,
          p99Ms: r.p99,
          error: r.firstError === undefined ? undefined : message(r.firstError),
        };
      }),
    );
  }
  return out;
}

function simple(d: BenchDriver): Promise<PhaseResult[]> {
  return loops(d.simple!);
}

function point(d: BenchDriver): Promise<PhaseResult[]> {
  return loops(d.point!);
}

/** Upserts of fresh keys (one counter over the whole cell), into a table emptied before each phase. */
async function insertKv(d: BenchDriver): Promise<PhaseResult[]> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    let key = 0;
    let measured = 0;
    const phases = await loops(
      () => d.insertOne!(++key),
      async () => {
        await admin.query(`TRUNCATE ${insertKvTable}`);
        measured = key;
      },
    );
    // The last phase's rows are all there (the table was emptied just before it).
    const last = phases[phases.length - 1];
    const { rows } = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${insertKvTable} WHERE key > $1`, [measured]);
    if (Number(rows[0].n) !== last.completed) throw new Error(`${rows[0].n} rows in ${insertKvTable}, expected ${last.completed}`);
    await admin.query(`TRUNCATE ${insertKvTable}`);
    return phases;
  } finally {
    await admin.end();
  }
}

function benchRows(n: number): BenchRow[] {
  const base = Date.UTC(2026, 0, 1);
  return Array.from({ length: n }, (_, i) => [i + 1, `name-${i + 1}`, (i + 1) * 0.5, new Date(base + i * 1000)]);
}

async function batch(d: BenchDriver): Promise<PhaseResult[]> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(createInsertTable);
    const { batchRows, batchChunk } = spec.sizes;
    const rows = benchRows(batchRows);
    const chunks: BenchRow[][] = [];
    for (let i = 0; i < rows.length; i += batchChunk) chunks.push(rows.slice(i, i + batchChunk));
    // Warm up on a few chunks, then start from an empty table.
    await admin.query(`TRUNCATE ${insertTable}`);
    if (d.insertAll) await d.insertAll(rows.slice(0, 3 * batchChunk));
    else for (const c of chunks.slice(0, 3)) await d.insert!(c);
    await admin.query(`TRUNCATE ${insertTable}`);
    await admin.query('CHECKPOINT').catch(() => {});
    const phase = await measure('insert', async () => {
      if (d.insertAll) await d.insertAll(rows);
      else for (const c of chunks) await d.insert!(c);
      return { completed: rows.length, failed: 0 };
    });
    const { rows: counted } = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${insertTable}`);
    if (Number(counted[0].n) !== rows.length) throw new Error(`inserted ${counted[0].n} rows, expected ${rows.length}`);
    await admin.query(`TRUNCATE ${insertTable}`);
    return [phase];
  } finally {
    await admin.end();
  }
}

async function stream(d: BenchDriver): Promise<PhaseResult[]> {
  const n = spec.sizes.streamRows;
  const warm = await d.stream!(streamSql(Math.min(n, 20_000)));
  if (warm !== Math.min(n, 20_000)) throw new Error(`warm-up stream returned ${warm} rows`);
  const phase = await measure('stream', async () => {
    const got = await d.stream!(streamSql(n));
    if (got !== n) throw new Error(`stream returned ${got} rows, expected ${n}`);
    return { completed: got, failed: 0, bytes: streamPayloadBytes(n) };
  });
  return [phase];
}

async function allAtOnce(n: number, fn: (i: number) => Promise<unknown>) {
  const settled = await Promise.allSettled(Array.from({ length: n }, (_, i) => fn(i + 1)));
  let failed = 0;
  let firstError: unknown;
  for (const s of settled) {
    if (s.status === 'rejected') {
      failed++;
      firstError ??= s.reason;
    }
  }
  return { completed: n - failed, failed, error: firstError === undefined ? undefined : message(firstError) };
}

async function poolQueries(d: BenchDriver): Promise<PhaseResult[]> {
  const warm = await allAtOnce(100, d.simple!);
  if (warm.failed) throw new Error(warm.error);
  return [await measure('in-flight', () => allAtOnce(spec.sizes.poolQueries, d.simple!))];
}

async function poolStreams(d: BenchDriver): Promise<PhaseResult[]> {
  const rows = spec.sizes.poolStreamRows;
  const sql = streamSql(rows, 10);
  const warm = await allAtOnce(20, () => d.stream!(sql));
  if (warm.failed) throw new Error(warm.error);
  return [
    await measure('streams', () =>
      allAtOnce(spec.sizes.poolStreams, async () => {
        const got = await d.stream!(sql);
        if (got !== rows) throw new Error(`stream returned ${got} rows, expected ${rows}`);
      }),
    ),
  ];
}

type Op = CellSpec['ops'][number];

function notesFor(d: BenchDriver, op: Op): string[] {
  const kind = (
    {
      simple: 'simple',
      batch: 'batch',
      stream: 'stream',
      'pool-queries': 'simple',
      'pool-streams': 'stream',
      point: 'point',
      insert: 'insert',
    } as const
  )[op];
  return [d.notes.all, d.notes[kind]].filter((n): n is string => !!n);
}

const runners: Record<Op, (d: BenchDriver) => Promise<PhaseResult[]>> = {
  simple,
  batch,
  stream,
  'pool-queries': poolQueries,
  'pool-streams': poolStreams,
  point,
  insert: insertKv,
};

async function main(): Promise<CellResult[]> {
  const key = (op: Op): CellKey => ({ driver: spec.driver, backend: spec.backend, op, poolSize: spec.poolSize });
  const skipped = unsupported(spec.driver, spec);
  if (skipped) return spec.ops.map((op) => ({ spec: key(op), phases: [], skipped }));
  const d = openDriver(spec);
  const out: CellResult[] = [];
  try {
    for (const op of spec.ops) {
      const need = {
        simple: d.simple,
        batch: d.insert ?? d.insertAll,
        stream: d.stream,
        'pool-queries': d.simple,
        'pool-streams': d.stream,
        point: d.point,
        insert: d.insertOne,
      }[op];
      if (!need) {
        out.push({ spec: key(op), phases: [], skipped: `${spec.driver} has no ${op}` });
        continue;
      }
      try {
        out.push({ spec: key(op), phases: await runners[op](d), notes: notesFor(d, op) });
      } catch (e) {
        out.push({ spec: key(op), phases: [], error: message(e), notes: notesFor(d, op) });
      }
    }
  } finally {
    await d.close().catch(() => {});
  }
  return out;
}

const result = await main().catch((e: unknown): CellResult[] =>
  spec.ops.map((op) => ({
    spec: { driver: spec.driver, backend: spec.backend, op, poolSize: spec.poolSize },
    phases: [],
    error: message(e),
  })),
);
ipc.emit('result', result);
// Let the message go out, then leave without waiting for lingering handles.
process.send?.({ type: 'event', name: 'bye' }, () => process.exit(0));
