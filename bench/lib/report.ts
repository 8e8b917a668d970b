/**
 * Aggregates cell results over repeats (medians) and renders them as a Markdown report (the goals
 * are ./goals.ts, the SVG chart ./chart.ts, the number formats ./format.ts).
 * @packageDocumentation
 */
import { fmtMs, fmtNum, fmtRss, ratio, table } from './format.js';
import type { Backend, CellResult, DriverName, Operation, PhaseResult } from './types.js';

/** One phase's medians over the repeats. */
export interface AggPhase {
  phase: string;
  samples: number;
  elapsedMs: number;
  completed: number;
  failed: number;
  /** Operations per second: queries/s, rows/s. */
  perSecond: number;
  /** MB/s (10^6 bytes) of row payload, for streams. */
  mbPerSecond?: number;
  p50Ms?: number;
  p99Ms?: number;
  clientCpuMs: number;
  clientPeakRssBytes: number;
  clientStartRssBytes?: number;
  serverCpuMs?: number;
  serverPeakRssBytes?: number;
  serverStartRssBytes?: number;
  error?: string;
}

/** One stack's results for one operation. */
export interface AggRow {
  op: Operation;
  driver: DriverName;
  backend: Backend | 'direct';
  label: string;
  phases: AggPhase[];
  skipped?: string;
  errors: string[];
  notes: string[];
}

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  platform: string;
  postgres?: string;
  commit?: string;
  date: string;
  /** The 1-minute load average sampled before each cell: other work on the machine shows here. */
  loadAverage?: { median: number; max: number };
  /** How busy other work kept the machine just before the cells (0..1), and how long the run waited for quiet. */
  otherWork?: { medianBusy: number; maxBusy: number; waitedSeconds: number };
}

export interface Report {
  mode: 'quick' | 'full';
  repeats: number;
  machine: Machine;
  sizes: Record<string, unknown>;
  rows: AggRow[];
  goals: { goal: string; value: string; met: boolean | null }[];
  notes: string[];
}

const driverLabel: Record<DriverName, string> = {
  'sdk-grpc': 'HeliosDB SDK, gRPC',
  'sdk-session': 'HeliosDB SDK, gRPC sessions',
  'sdk-connect': 'HeliosDB SDK, Connect (HTTP)',
  'sdk-values': 'HeliosDB SDK, execute(multi-row VALUES)',
  'sdk-pg': 'HeliosDB SDK, postgres://',
  raw: 'raw grpc-js stub',
  pg: 'pg (node-postgres)',
  'postgres.js': 'postgres.js',
};

export function labelOf(driver: DriverName, backend: Backend | 'direct'): string {
  const l = driverLabel[driver];
  if (backend === 'direct') return `${l} → PostgreSQL`;
  return `${l} → server → ${backend === 'pglite' ? 'PGlite' : 'PostgreSQL'}`;
}

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function medianOf(ps: PhaseResult[], f: (p: PhaseResult) => number | undefined): number | undefined {
  const xs = ps.map(f).filter((x): x is number => x !== undefined);
  return xs.length ? median(xs) : undefined;
}

/** Medians over repeats, by operation and stack; rows in `order` (per operation) when given. */
export function aggregate(results: CellResult[], order?: Record<string, [DriverName, Backend | 'direct'][]>): AggRow[] {
  const byKey = new Map<string, CellResult[]>();
  for (const r of results) {
    const k = `${r.spec.op}|${r.spec.driver}|${r.spec.backend}`;
    let list = byKey.get(k);
    if (!list) byKey.set(k, (list = []));
    list.push(r);
  }
  const rows: AggRow[] = [];
  for (const list of byKey.values()) {
    const { op, driver, backend } = list[0].spec;
    const phaseNames = [...new Set(list.flatMap((r) => r.phases.map((p) => p.phase)))];
    const phases: AggPhase[] = phaseNames.map((name) => {
      const ps = list.flatMap((r) => r.phases.filter((p) => p.phase === name));
      const elapsedMs = medianOf(ps, (p) => p.elapsedMs)!;
      const bytes = medianOf(ps, (p) => p.bytes);
      return {
        phase: name,
        samples: ps.length,
        elapsedMs,
        completed: medianOf(ps, (p) => p.completed)!,
        failed: medianOf(ps, (p) => p.failed)!,
        perSecond: medianOf(ps, (p) => (p.completed / p.elapsedMs) * 1000)!,
        mbPerSecond: bytes === undefined ? undefined : medianOf(ps, (p) => ((p.bytes! / p.elapsedMs) * 1000) / 1e6),
        p50Ms: medianOf(ps, (p) => p.p50Ms),
        p99Ms: medianOf(ps, (p) => p.p99Ms),
        clientCpuMs: medianOf(ps, (p) => p.client.cpuMs)!,
        clientPeakRssBytes: medianOf(ps, (p) => p.client.peakRssBytes)!,
        clientStartRssBytes: medianOf(ps, (p) => p.client.startRssBytes),
        serverCpuMs: medianOf(ps, (p) => p.server?.cpuMs),
        serverPeakRssBytes: medianOf(ps, (p) => p.server?.peakRssBytes),
        serverStartRssBytes: medianOf(ps, (p) => p.server?.startRssBytes),
        error: ps.find((p) => p.error)?.error,
      };
    });
    rows.push({
      op,
      driver,
      backend,
      label: labelOf(driver, backend),
      phases,
      skipped: list.find((r) => r.skipped)?.skipped,
      errors: [...new Set(list.filter((r) => r.error).map((r) => r.error!))],
      notes: [...new Set(list.flatMap((r) => r.notes ?? []))],
    });
  }
  if (order) {
    const opIndex = Object.keys(order);
    const rank = (r: AggRow) => {
      const list = order[r.op] ?? [];
      const i = list.findIndex(([d, b]) => d === r.driver && b === r.backend);
      return opIndex.indexOf(r.op) * 1000 + (i < 0 ? 999 : i);
    };
    rows.sort((a, b) => rank(a) - rank(b));
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Lookups and formatting

export function find(rows: AggRow[], op: Operation, driver: DriverName, backend: Backend | 'direct'): AggRow | undefined {
  return rows.find((r) => r.op === op && r.driver === driver && r.backend === backend);
}

export function phaseOf(row: AggRow | undefined, phase: string): AggPhase | undefined {
  return row?.phases.find((p) => p.phase === phase);
}

/** The raw stub on the same backend (the direct drivers compare with the stub on PostgreSQL). */
function rawFor(rows: AggRow[], row: AggRow): AggRow | undefined {
  return find(rows, row.op, 'raw', row.backend === 'pglite' ? 'pglite' : 'postgresql');
}

function status(row: AggRow): string | undefined {
  if (row.skipped) return `skipped: ${row.skipped}`;
  if (row.errors.length) return `**failed**: ${row.errors[0]}`;
  return undefined;
}

function statusRow(row: AggRow, width: number): string[] {
  return [row.label, status(row)!, ...Array.from({ length: width - 2 }, () => '')];
}

// ---------------------------------------------------------------------------------------------
// Markdown

function simpleTable(rows: AggRow[]): string {
  const list = rows.filter((r) => r.op === 'simple');
  const phases = [...new Set(list.flatMap((r) => r.phases.map((p) => p.phase)))];
  const pg = find(rows, 'simple', 'pg', 'direct');
  const header = ['stack'];
  for (const p of phases) header.push(`${p} q/s`, `${p} p50 ms`, `${p} p99 ms`);
  for (const p of phases) header.push(`${p} vs raw`, `${p} vs pg`);
  const last = phases[phases.length - 1];
  header.push(`client CPU µs/q (${last})`, `server CPU µs/q (${last})`);
  const body = list.map((row) => {
    if (status(row)) return statusRow(row, header.length);
    const cells = [row.label];
    for (const p of phases) {
      const ph = phaseOf(row, p);
      cells.push(fmtNum(ph?.perSecond), fmtMs(ph?.p50Ms), fmtMs(ph?.p99Ms));
    }
    const raw = rawFor(rows, row);
    for (const p of phases) {
      const v = phaseOf(row, p)?.perSecond;
      cells.push(ratio(v, phaseOf(raw, p)?.perSecond), ratio(v, phaseOf(pg, p)?.perSecond));
    }
    const ph = phaseOf(row, last);
    cells.push(
      ph ? fmtNum((ph.clientCpuMs * 1000) / ph.completed) : '–',
      ph?.serverCpuMs !== undefined ? fmtNum((ph.serverCpuMs * 1000) / ph.completed) : '–',
    );
    return cells;
  });
  return table(header, body);
}

function batchTable(rows: AggRow[]): string {
  const list = rows.filter((r) => r.op === 'batch');
  const pg = phaseOf(find(rows, 'batch', 'pg', 'direct'), 'insert');
  const header = [
    'stack',
    'rows/s',
    'time s',
    'vs raw',
    'vs pg',
    'client CPU s',
    'server CPU s',
    'client peak RSS MiB (growth)',
    'server peak RSS MiB (growth)',
  ];
  const body = list.map((row) => {
    if (status(row)) return statusRow(row, header.length);
    const ph = phaseOf(row, 'insert')!;
    const raw = phaseOf(rawFor(rows, row), 'insert');
    return [
      row.label,
      fmtNum(ph.perSecond),
      (ph.elapsedMs / 1000).toFixed(2),
      ratio(ph.perSecond, raw?.perSecond),
      ratio(ph.perSecond, pg?.perSecond),
      (ph.clientCpuMs / 1000).toFixed(2),
      ph.serverCpuMs === undefined ? '–' : (ph.serverCpuMs / 1000).toFixed(2),
      fmtRss(ph.clientPeakRssBytes, ph.clientStartRssBytes),
      fmtRss(ph.serverPeakRssBytes, ph.serverStartRssBytes),
    ];
  });
  return table(header, body);
}

function streamTable(rows: AggRow[]): string {
  const list = rows.filter((r) => r.op === 'stream');
  const pg = phaseOf(find(rows, 'stream', 'pg', 'direct'), 'stream');
  const header = [
    'stack',
    'MB/s',
    'rows/s',
    'time s',
    'vs raw',
    'vs pg',
    'client CPU s',
    'server CPU s',
    'client peak RSS MiB (growth)',
    'server peak RSS MiB (growth)',
  ];
  const body = list.map((row) => {
    if (status(row)) return statusRow(row, header.length);
    const ph = phaseOf(row, 'stream')!;
    const raw = phaseOf(rawFor(rows, row), 'stream');
    return [
      row.label,
      fmtNum(ph.mbPerSecond),
      fmtNum(ph.perSecond),
      (ph.elapsedMs / 1000).toFixed(2),
      ratio(ph.mbPerSecond, raw?.mbPerSecond),
      ratio(ph.mbPerSecond, pg?.mbPerSecond),
      (ph.clientCpuMs / 1000).toFixed(2),
      ph.serverCpuMs === undefined ? '–' : (ph.serverCpuMs / 1000).toFixed(2),
      fmtRss(ph.clientPeakRssBytes, ph.clientStartRssBytes),
      fmtRss(ph.serverPeakRssBytes, ph.serverStartRssBytes),
    ];
  });
  return table(header, body);
}

function poolTable(rows: AggRow[], sizes: Record<string, unknown>): string {
  const list = rows.filter((r) => r.op === 'pool-queries' || r.op === 'pool-streams');
  const header = [
    'stack',
    'test',
    'at once',
    'completed',
    'failed',
    'time s',
    'client peak RSS MiB (growth)',
    'server peak RSS MiB (growth)',
    'first error',
  ];
  const body = list.map((row) => {
    const test = row.op === 'pool-queries' ? 'queries in flight' : 'open streams';
    const n = String(row.op === 'pool-queries' ? sizes.poolQueries : sizes.poolStreams);
    if (status(row)) return [row.label, test, n, status(row)!, '', '', '', '', ''];
    const ph = row.phases[0];
    return [
      row.label,
      test,
      n,
      fmtNum(ph.completed),
      fmtNum(ph.failed),
      (ph.elapsedMs / 1000).toFixed(2),
      fmtRss(ph.clientPeakRssBytes, ph.clientStartRssBytes),
      fmtRss(ph.serverPeakRssBytes, ph.serverStartRssBytes),
      ph.error ?? '',
    ];
  });
  return table(header, body, ['test', 'first error']);
}

export function markdown(r: Report): string {
  const m = r.machine;
  const out: string[] = [];
  out.push(`# HeliosDB client benchmarks (${r.mode}${r.mode === 'full' ? `, median of ${r.repeats} runs` : ', one run'})`);
  out.push('');
  out.push(
    `Machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB.toFixed(0)} GiB memory, Node ${m.node}, ${m.platform}` +
      (m.postgres ? `, ${m.postgres}` : '') +
      `. Commit ${m.commit ?? '?'}, ${m.date}. Client, HeliosDB server and PostgreSQL share the machine's cores` +
      (m.otherWork
        ? `; other work kept the machine ${(m.otherWork.medianBusy * 100).toFixed(0)}% busy just before a cell (median; max ${(m.otherWork.maxBusy * 100).toFixed(0)}%, after waiting ${m.otherWork.waitedSeconds} s in all for quiet)`
        : '') +
      (m.loadAverage
        ? `; 1-minute load average before the cells: median ${m.loadAverage.median.toFixed(1)}, max ${m.loadAverage.max.toFixed(1)}.`
        : '.'),
  );
  out.push('');
  out.push(
    'Every client stack runs in its own process (a fresh one per cell in a full run) and the HeliosDB server in another, so client and server CPU and memory are measured apart: peak RSS is per phase (VmHWM reset when it starts), shown with its growth over the RSS at the start; client processes run the TypeScript sources through tsx, which accounts for most of their ~130 MiB baseline. "vs raw" compares with the raw grpc-js stub on the same backend, "vs pg" with node-postgres straight to PostgreSQL (throughput ratios, higher is better).',
  );
  out.push('');
  out.push('## Simple query: `SELECT $1::int` (closed loop)');
  out.push('');
  out.push(simpleTable(r.rows));
  out.push('');
  out.push(
    `## Batch insert: ${fmtNum(r.sizes.batchRows as number)} rows (int, text, float8, timestamptz), ${r.sizes.batchChunk} rows per call`,
  );
  out.push('');
  out.push(batchTable(r.rows));
  out.push('');
  out.push(
    `## Streaming: ${fmtNum(r.sizes.streamRows as number)} rows of ~1 KB (\`SELECT g, repeat('x', 1000) FROM generate_series(1, N) g\`)`,
  );
  out.push('');
  out.push('MB/s counts the text of the cells (10^6 bytes/s).');
  out.push('');
  out.push(streamTable(r.rows));
  out.push('');
  out.push(
    `## Pool: ${fmtNum(r.sizes.poolQueries as number)} queries in flight at once; ${fmtNum(r.sizes.poolStreams as number)} streams of ${r.sizes.poolStreamRows} rows open at once`,
  );
  out.push('');
  out.push(poolTable(r.rows, r.sizes));
  out.push('');
  out.push('## Goals');
  out.push('');
  out.push(
    table(
      ['goal', 'measured', 'met'],
      r.goals.map((g) => [g.goal, g.value, g.met === null ? '–' : g.met ? 'yes' : '**no**']),
      ['measured'],
    ),
  );
  out.push('');
  out.push('## Notes');
  out.push('');
  for (const n of r.notes) out.push(`- ${n}`);
  // How each stack ran, once per stack.
  const byStack = new Map<string, string[]>();
  for (const row of r.rows) {
    const list = byStack.get(row.label) ?? [];
    for (const n of row.notes) if (!list.includes(n)) list.push(n);
    if (row.skipped && !list.includes(`skipped: ${row.skipped}`)) list.push(`skipped: ${row.skipped}`);
    byStack.set(row.label, list);
  }
  for (const [label, list] of byStack) if (list.length) out.push(`- ${label}: ${list.join('; ')}.`);
  out.push('');
  return out.join('\n');
}
