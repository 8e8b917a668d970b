/**
 * The report's hand-written SVG bar chart.
 * @packageDocumentation
 */
import { fmtNum } from './format.js';
import { type AggRow, phaseOf, type Report } from './report.js';
import type { DriverName } from './types.js';

const palette: Record<DriverName, string> = {
  'sdk-grpc': '#2563eb',
  'sdk-grpc-traced': '#60a5fa',
  'sdk-session': '#db2777',
  'sdk-connect': '#7c3aed',
  'sdk-values': '#0891b2',
  'sdk-pg': '#db2777',
  raw: '#6b7280',
  pg: '#16a34a',
  'postgres.js': '#ea580c',
  cql: '#ca8a04',
};

function xml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

interface Panel {
  title: string;
  unit: string;
  bars: { label: string; value: number; color: string; faded: boolean }[];
}

export function svg(r: Report): string {
  const panels: Panel[] = [];
  const bar = (row: AggRow, value: number | undefined) =>
    value === undefined || !Number.isFinite(value)
      ? []
      : [{ label: row.label, value, color: palette[row.driver], faded: row.backend === 'pglite' }];
  const concurrency = r.sizes.concurrency as number[];
  for (const c of concurrency) {
    panels.push({
      title: `Simple query, concurrency ${c}`,
      unit: 'queries/s',
      bars: r.rows.filter((x) => x.op === 'simple').flatMap((x) => bar(x, phaseOf(x, `c${c}`)?.perSecond)),
    });
  }
  panels.push({
    title: `Batch insert, ${fmtNum(r.sizes.batchRows as number)} rows`,
    unit: 'rows/s',
    bars: r.rows.filter((x) => x.op === 'batch').flatMap((x) => bar(x, phaseOf(x, 'insert')?.perSecond)),
  });
  panels.push({
    title: `Streaming, ${fmtNum(r.sizes.streamRows as number)} rows of ~1 KB`,
    unit: 'MB/s',
    bars: r.rows.filter((x) => x.op === 'stream').flatMap((x) => bar(x, phaseOf(x, 'stream')?.mbPerSecond)),
  });
  const hi = concurrency[concurrency.length - 1];
  for (const [op, title, unit] of [
    ['point', 'Point query by primary key', 'queries/s'],
    ['insert', 'One-row insert', 'rows/s'],
  ] as const) {
    panels.push({
      title: `${title}, concurrency ${hi}`,
      unit,
      bars: r.rows.filter((x) => x.op === op).flatMap((x) => bar(x, phaseOf(x, `c${hi}`)?.perSecond)),
    });
  }
  panels.push({
    title: `${fmtNum(r.sizes.poolQueries as number)} queries in flight at once (time to finish all, lower is better)`,
    unit: 's',
    bars: r.rows.filter((x) => x.op === 'pool-queries').flatMap((x) => bar(x, (phaseOf(x, 'in-flight')?.elapsedMs ?? NaN) / 1000)),
  });
  const longest = Math.max(0, ...panels.flatMap((p) => p.bars.map((b) => b.label.length)));
  // About 6.6 px per character of the 12 px label font.
  const labelW = Math.min(520, Math.max(220, Math.ceil(longest * 6.6) + 24));
  const width = labelW + 600;
  const barW = width - labelW - 110;
  const rowH = 22;
  const parts: string[] = [];
  let y = 72;
  for (const p of panels) {
    if (p.bars.length === 0) continue;
    parts.push(`<text x="16" y="${y}" class="h">${xml(p.title)} <tspan class="u">(${xml(p.unit)})</tspan></text>`);
    y += 10;
    const max = Math.max(...p.bars.map((b) => b.value)) || 1;
    for (const b of p.bars) {
      const w = Math.max(1, (b.value / max) * barW);
      parts.push(`<text x="${labelW - 8}" y="${y + 15}" class="l" text-anchor="end">${xml(b.label)}</text>`);
      parts.push(
        `<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${b.color}"${b.faded ? ' fill-opacity="0.45"' : ''} rx="2"/>`,
      );
      const v = p.unit === 's' ? b.value.toFixed(2) : fmtNum(b.value);
      parts.push(`<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 15}" class="v">${v}</text>`);
      y += rowH;
    }
    y += 26;
  }
  const m = r.machine;
  const subtitle = `${r.mode === 'full' ? `median of ${r.repeats} runs` : 'quick run'} · ${m.cpus} × ${m.cpuModel} · ${m.memoryGiB.toFixed(0)} GiB · Node ${m.node} · ${m.date}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">`,
    '<style>.t{font-size:18px;font-weight:600;fill:#111}.s{font-size:12px;fill:#555}.h{font-size:14px;font-weight:600;fill:#111}.u{font-weight:400;fill:#666}.l{font-size:12px;fill:#222}.v{font-size:12px;fill:#222}</style>',
    `<rect width="${width}" height="${y}" fill="#fff"/>`,
    `<text x="16" y="24" class="t">HeliosDB client benchmarks</text>`,
    `<text x="16" y="42" class="s">${xml(subtitle)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
