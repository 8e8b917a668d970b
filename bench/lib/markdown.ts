/**
 * The Markdown report: one table per operation, the goals, the notes.
 * @packageDocumentation
 */
import { fmtMs, fmtNum, fmtRss, ratio, table } from './format.js';
import { insertCql, kvRows, pointCql, pointSql } from './kv.js';
import { type AggRow, find, phaseOf, type Report } from './report.js';
import type { Operation } from './types.js';
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

/**
 * A closed-loop operation (simple, point, insert): rate and latency per concurrency, ratios with
 * the raw stub (simple only), pg straight to PostgreSQL, and pg through the pg port of the same
 * server (`vs pg port`, rows through a server), CPU per operation at the highest concurrency.
 */
function loopTable(rows: AggRow[], op: Operation, unit: string): string {
  const list = rows.filter((r) => r.op === op);
  const phases = [...new Set(list.flatMap((r) => r.phases.map((p) => p.phase)))];
  const pg = find(rows, op, 'pg', 'direct');
  const withRaw = op === 'simple';
  const withPort = list.some((r) => r.driver === 'pg' && r.backend !== 'direct');
  const header = ['stack'];
  for (const p of phases) header.push(`${p} ${unit}`, `${p} p50 ms`, `${p} p99 ms`);
  for (const p of phases) {
    if (withRaw) header.push(`${p} vs raw`);
    header.push(`${p} vs pg`);
    if (withPort) header.push(`${p} vs pg port`);
  }
  const last = phases[phases.length - 1];
  const per = unit === 'q/s' ? 'q' : 'row';
  header.push(`client CPU µs/${per} (${last})`, `server CPU µs/${per} (${last})`);
  const body = list.map((row) => {
    if (status(row)) return statusRow(row, header.length);
    const cells = [row.label];
    for (const p of phases) {
      const ph = phaseOf(row, p);
      cells.push(fmtNum(ph?.perSecond), fmtMs(ph?.p50Ms), fmtMs(ph?.p99Ms));
    }
    const raw = rawFor(rows, row);
    const port = row.backend === 'direct' ? undefined : find(rows, op, 'pg', row.backend);
    for (const p of phases) {
      const v = phaseOf(row, p)?.perSecond;
      if (withRaw) cells.push(ratio(v, phaseOf(raw, p)?.perSecond));
      cells.push(ratio(v, phaseOf(pg, p)?.perSecond));
      if (withPort) cells.push(ratio(v, phaseOf(port, p)?.perSecond));
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
    'Every client stack runs in its own process (a fresh one per cell in a full run) and the HeliosDB server in another, so client and server CPU and memory are measured apart: peak RSS is per phase (VmHWM reset when it starts), shown with its growth over the RSS at the start; client processes run the TypeScript sources through tsx, which accounts for most of their ~130 MiB baseline. "vs raw" compares with the raw grpc-js stub on the same backend, "vs pg" with node-postgres straight to PostgreSQL (throughput ratios, higher is better); "vs pg port" with node-postgres through the pg port of the same HeliosDB server.',
  );
  out.push('');
  out.push('## Simple query: `SELECT $1::int` (closed loop)');
  out.push('');
  out.push(loopTable(r.rows, 'simple', 'q/s'));
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
  if (r.rows.some((x) => x.op === 'point')) {
    out.push(`## Point query: \`${pointSql}\` (prepared; ${fmtNum(kvRows)} rows; CQL: \`${pointCql}\`; closed loop)`);
    out.push('');
    out.push(loopTable(r.rows, 'point', 'q/s'));
    out.push('');
  }
  if (r.rows.some((x) => x.op === 'insert')) {
    out.push(
      `## Insert: one row per statement, prepared (CQL: \`${insertCql}\`, an upsert; SQL: the same upsert, \`ON CONFLICT (key) DO UPDATE\`; closed loop)`,
    );
    out.push('');
    out.push(loopTable(r.rows, 'insert', 'rows/s'));
    out.push('');
  }
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
