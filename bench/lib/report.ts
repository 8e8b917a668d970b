/**
 * Aggregates cell results over repeats (medians), labels the stacks, and looks rows up: what the
 * renderers share (the Markdown report ./markdown.ts, the goals ./goals.ts, the SVG chart ./chart.ts).
 * @packageDocumentation
 */
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
  'sdk-grpc-traced': 'HeliosDB SDK, gRPC, tracing on',
  'sdk-session': 'HeliosDB SDK, gRPC sessions',
  'sdk-connect': 'HeliosDB SDK, Connect (HTTP)',
  'sdk-values': 'HeliosDB SDK, execute(multi-row VALUES)',
  'sdk-pg': 'HeliosDB SDK, postgres://',
  raw: 'raw grpc-js stub',
  pg: 'pg (node-postgres)',
  'postgres.js': 'postgres.js',
  cql: 'cassandra-driver',
};

/** The SQL drivers that reach the server through its pg port (the others on `direct`). */
const viaPgPort = new Set<DriverName>(['pg', 'sdk-pg', 'postgres.js']);

/** A stack's label: what the client is, and the way to the database. */
export function labelOf(driver: DriverName, backend: Backend | 'direct'): string {
  const l = driverLabel[driver];
  if (backend === 'direct') return `${l} → PostgreSQL`;
  const engine = backend === 'pglite' ? 'PGlite' : 'PostgreSQL';
  if (viaPgPort.has(driver)) return `${l} via heliosdb pg port → ${engine}`;
  if (driver === 'cql') return `${l} via heliosdb CQL port → ${engine}`;
  return `${l} → server → ${engine}`;
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
// Lookups

/** The row of one operation and stack. */
export function find(rows: AggRow[], op: Operation, driver: DriverName, backend: Backend | 'direct'): AggRow | undefined {
  return rows.find((r) => r.op === op && r.driver === driver && r.backend === backend);
}

/** A row's phase by name. */
export function phaseOf(row: AggRow | undefined, phase: string): AggPhase | undefined {
  return row?.phases.find((p) => p.phase === phase);
}
