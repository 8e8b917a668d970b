/**
 * The goals the benchmark report checks (met or not), and the ratios it prints for cells without a
 * goal of their own.
 * @packageDocumentation
 */
import { fmtNum } from './format.js';
import { type AggRow, find, phaseOf, type Report } from './report.js';
import type { Backend, DriverName, Operation } from './types.js';

export function goals(rows: AggRow[], sizes: Record<string, unknown>): Report['goals'] {
  const out: Report['goals'] = [];
  const concurrency = sizes.concurrency as number[];
  const hi = `c${concurrency[concurrency.length - 1]}`;
  const sdkSimple = find(rows, 'simple', 'sdk-grpc', 'postgresql');
  const rawSimple = find(rows, 'simple', 'raw', 'postgresql');
  for (const c of concurrency.map((c) => `c${c}`)) {
    const s = phaseOf(sdkSimple, c)?.perSecond;
    const r = phaseOf(rawSimple, c)?.perSecond;
    if (s !== undefined && r !== undefined) {
      out.push({
        goal: `simple query ${c}: SDK within 10% of the raw stub`,
        value: `${(s / r).toFixed(2)}× (${fmtNum(s)} vs ${fmtNum(r)} q/s)`,
        met: s >= 0.9 * r,
      });
    }
  }
  const best = Math.max(...['c1', hi].map((c) => phaseOf(sdkSimple, c)?.perSecond ?? NaN).filter(Number.isFinite));
  if (Number.isFinite(best))
    out.push({
      goal: 'simple query: SDK >= 12K q/s (design document figure)',
      value: `${fmtNum(best)} q/s (best concurrency)`,
      met: best >= 12_000,
    });

  const sdkStream = phaseOf(find(rows, 'stream', 'sdk-grpc', 'postgresql'), 'stream');
  const rawStream = phaseOf(find(rows, 'stream', 'raw', 'postgresql'), 'stream');
  if (sdkStream?.mbPerSecond !== undefined && rawStream?.mbPerSecond !== undefined) {
    out.push({
      goal: 'streaming: SDK >= 85% of the raw stub',
      value: `${(sdkStream.mbPerSecond / rawStream.mbPerSecond).toFixed(2)}×`,
      met: sdkStream.mbPerSecond >= 0.85 * rawStream.mbPerSecond,
    });
  }
  if (sdkStream?.mbPerSecond !== undefined) {
    out.push({
      goal: 'streaming: SDK >= 450 MB/s (design document figure)',
      value: `${fmtNum(sdkStream.mbPerSecond)} MB/s`,
      met: sdkStream.mbPerSecond >= 450,
    });
  }

  const sdkBatch = phaseOf(find(rows, 'batch', 'sdk-grpc', 'postgresql'), 'insert');
  const direct = ['pg', 'postgres.js'] as const;
  const bestDirect = Math.max(
    ...direct.map((d) => phaseOf(find(rows, 'batch', d, 'direct'), 'insert')?.perSecond ?? NaN).filter(Number.isFinite),
  );
  if (sdkBatch) {
    out.push({
      goal: 'batch insert: SDK >= 100K rows/s',
      value: `${fmtNum(sdkBatch.perSecond)} rows/s`,
      met: sdkBatch.perSecond >= 100_000,
    });
    if (Number.isFinite(bestDirect)) {
      out.push({
        goal: 'batch insert: SDK >= 80% of the best direct driver',
        value: `${(sdkBatch.perSecond / bestDirect).toFixed(2)}× (best direct ${fmtNum(bestDirect)} rows/s)`,
        met: sdkBatch.perSecond >= 0.8 * bestDirect,
      });
    }
  }
  const sdkPool = phaseOf(find(rows, 'pool-queries', 'sdk-grpc', 'postgresql'), 'in-flight');
  if (sdkPool) {
    out.push({
      goal: `pool: ${fmtNum(sizes.poolQueries as number)} queries in flight, zero failures`,
      value: `${fmtNum(sdkPool.completed)} completed, ${fmtNum(sdkPool.failed)} failed in ${(sdkPool.elapsedMs / 1000).toFixed(2)} s`,
      met: sdkPool.failed === 0 && sdkPool.completed === sizes.poolQueries,
    });
  }
  const sdkStreams = phaseOf(find(rows, 'pool-streams', 'sdk-grpc', 'postgresql'), 'streams');
  if (sdkStreams) {
    out.push({
      goal: `pool: ${fmtNum(sizes.poolStreams as number)} streams open at once, zero failures`,
      value: `${fmtNum(sdkStreams.completed)} completed, ${fmtNum(sdkStreams.failed)} failed in ${(sdkStreams.elapsedMs / 1000).toFixed(2)} s`,
      met: sdkStreams.failed === 0 && sdkStreams.completed === sizes.poolStreams,
    });
  }
  out.push(...sessionGoals(rows, hi, sizes));
  out.push(...portRatios(rows, hi), ...tracingRatios(rows, hi));
  return out;
}

/** The goals of the multiplexed-sessions issue (#14): the session stack against pg direct. */
function sessionGoals(rows: AggRow[], hi: string, sizes: Record<string, unknown>): Report['goals'] {
  const out: Report['goals'] = [];
  const session = find(rows, 'simple', 'sdk-session', 'postgresql');
  const pgSimple = find(rows, 'simple', 'pg', 'direct');
  const s = phaseOf(session, hi)?.perSecond;
  const p = phaseOf(pgSimple, hi)?.perSecond;
  if (s !== undefined && p !== undefined) {
    out.push({
      goal: `sessions: simple query ${hi} >= 0.5× pg`,
      value: `${(s / p).toFixed(2)}× (${fmtNum(s)} vs ${fmtNum(p)} q/s)`,
      met: s >= 0.5 * p,
    });
    out.push({ goal: `sessions: simple query ${hi} >= 12K q/s`, value: `${fmtNum(s)} q/s`, met: s >= 12_000 });
  }
  const s1 = phaseOf(session, 'c1')?.p50Ms;
  const p1 = phaseOf(pgSimple, 'c1')?.p50Ms;
  if (s1 !== undefined && p1 !== undefined && p1 > 0)
    out.push({
      goal: 'sessions: simple query c1 p50 <= 3× pg',
      value: `${(s1 / p1).toFixed(1)}× (${s1.toFixed(2)} vs ${p1.toFixed(2)} ms)`,
      met: s1 <= 3 * p1,
    });
  const stream = phaseOf(find(rows, 'stream', 'sdk-session', 'postgresql'), 'stream')?.mbPerSecond;
  const pgStream = phaseOf(find(rows, 'stream', 'pg', 'direct'), 'stream')?.mbPerSecond;
  if (stream !== undefined && pgStream !== undefined)
    out.push({ goal: 'sessions: streaming >= 0.6× pg', value: `${(stream / pgStream).toFixed(2)}×`, met: stream >= 0.6 * pgStream });
  const batch = phaseOf(find(rows, 'batch', 'sdk-session', 'postgresql'), 'insert')?.perSecond;
  const pgBatch = phaseOf(find(rows, 'batch', 'pg', 'direct'), 'insert')?.perSecond;
  if (batch !== undefined && pgBatch !== undefined)
    out.push({
      goal: "sessions: executeMany >= 0.8× pg's multi-row INSERT",
      value: `${(batch / pgBatch).toFixed(2)}× (${fmtNum(batch)} vs ${fmtNum(pgBatch)} rows/s)`,
      met: batch >= 0.8 * pgBatch,
    });
  for (const [op, phase, size] of [
    ['pool-queries', 'in-flight', 'poolQueries'],
    ['pool-streams', 'streams', 'poolStreams'],
  ] as const) {
    const r = phaseOf(find(rows, op, 'sdk-session', 'postgresql'), phase);
    if (r)
      out.push({
        goal: `sessions: ${op}, zero failures`,
        value: `${fmtNum(r.completed)} completed, ${fmtNum(r.failed)} failed`,
        met: r.failed === 0 && r.completed === sizes[size],
      });
  }
  return out;
}

const engines: [Backend, string][] = [
  ['postgresql', 'PostgreSQL'],
  ['pglite', 'PGlite'],
];

/** `a / b` of one phase's rate as a ratio line (no goal: `met` is null), when both ran. */
function rateRatio(
  goal: string,
  op: Operation,
  phase: string,
  a: readonly [DriverName, Backend | 'direct'],
  b: readonly [DriverName, Backend | 'direct'],
  rows: AggRow[],
  unit: string,
  rate: 'perSecond' | 'mbPerSecond' = 'perSecond',
): Report['goals'] {
  const x = phaseOf(find(rows, op, ...a), phase)?.[rate];
  const y = phaseOf(find(rows, op, ...b), phase)?.[rate];
  if (x === undefined || y === undefined || !(y > 0)) return [];
  return [{ goal, value: `${(x / y).toFixed(2)}× (${fmtNum(x)} vs ${fmtNum(y)} ${unit})`, met: null }];
}

/**
 * Ratios of the listeners' cells (no goals yet): pg through heliosdb's pg port against pg straight
 * to PostgreSQL (issue 15), cassandra-driver on the CQL port against pg on the same point query and
 * insert (issue 17).
 */
function portRatios(rows: AggRow[], hi: string): Report['goals'] {
  const out: Report['goals'] = [];
  const pg = ['pg', 'direct'] as const;
  for (const [b, name] of engines) {
    const port = ['pg', b] as const;
    const c1 = phaseOf(find(rows, 'simple', ...port), 'c1')?.p50Ms;
    const p1 = phaseOf(find(rows, 'simple', ...pg), 'c1')?.p50Ms;
    out.push(
      ...rateRatio(`pg via heliosdb pg port → ${name}, simple query ${hi}, vs pg → PostgreSQL`, 'simple', hi, port, pg, rows, 'q/s'),
    );
    if (c1 !== undefined && p1 !== undefined && p1 > 0)
      out.push({
        goal: `pg via heliosdb pg port → ${name}, simple query c1 p50, vs pg → PostgreSQL`,
        value: `${(c1 / p1).toFixed(1)}× (${c1.toFixed(2)} vs ${p1.toFixed(2)} ms)`,
        met: null,
      });
    out.push(
      ...rateRatio(`pg via heliosdb pg port → ${name}, batch insert, vs pg → PostgreSQL`, 'batch', 'insert', port, pg, rows, 'rows/s'),
    );
    out.push(
      ...rateRatio(
        `pg via heliosdb pg port → ${name}, streaming, vs pg → PostgreSQL`,
        'stream',
        'stream',
        port,
        pg,
        rows,
        'MB/s',
        'mbPerSecond',
      ),
    );
    out.push(
      ...rateRatio(
        `SDK postgres:// via heliosdb pg port → ${name}, simple query ${hi}, vs pg → PostgreSQL`,
        'simple',
        hi,
        ['sdk-pg', b],
        pg,
        rows,
        'q/s',
      ),
    );
    for (const [op, what, unit] of [
      ['point', 'point query', 'q/s'],
      ['insert', 'insert', 'rows/s'],
    ] as const) {
      out.push(
        ...rateRatio(`cassandra-driver via CQL port → ${name}, ${what} ${hi}, vs pg via pg port`, op, hi, ['cql', b], port, rows, unit),
      );
      out.push(
        ...rateRatio(`cassandra-driver via CQL port → ${name}, ${what} ${hi}, vs pg → PostgreSQL`, op, hi, ['cql', b], pg, rows, unit),
      );
    }
  }
  return out;
}

/** What recording a client span per call costs: the SDK with a tracer provider against without. */
function tracingRatios(rows: AggRow[], hi: string): Report['goals'] {
  const out: Report['goals'] = [];
  const on = find(rows, 'simple', 'sdk-grpc-traced', 'postgresql');
  const off = find(rows, 'simple', 'sdk-grpc', 'postgresql');
  for (const phase of ['c1', hi]) {
    const a = phaseOf(on, phase);
    const b = phaseOf(off, phase);
    if (!a || !b || !(b.perSecond > 0)) continue;
    const cpu = (p: typeof a) => (p.clientCpuMs * 1000) / p.completed;
    out.push({
      goal: `tracing on (spans recorded) vs off, SDK gRPC simple query ${phase}`,
      value: `${(a.perSecond / b.perSecond).toFixed(2)}× (${fmtNum(a.perSecond)} vs ${fmtNum(b.perSecond)} q/s; client CPU ${fmtNum(cpu(a))} vs ${fmtNum(cpu(b))} µs/q)`,
      met: null,
    });
  }
  return out;
}
