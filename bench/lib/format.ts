/**
 * Number and table formatting of the benchmark report.
 * @packageDocumentation
 */

/** A number with thousands separators, `–` when missing. */
export function fmtNum(x: number | undefined, digits = 0): string {
  if (x === undefined || !Number.isFinite(x)) return '–';
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Milliseconds with 2, 1 or 0 decimals by size. */
export function fmtMs(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '–';
  return x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0);
}

/** Bytes as whole MiB. */
export function fmtMB(bytes: number | undefined): string {
  return bytes === undefined || !Number.isFinite(bytes) ? '–' : `${(bytes / 2 ** 20).toFixed(0)}`;
}

/** Peak RSS in MiB with its growth over the phase's starting RSS: `180 (+42)`. */
export function fmtRss(peak: number | undefined, start: number | undefined): string {
  if (peak === undefined || !Number.isFinite(peak)) return '–';
  if (start === undefined || !Number.isFinite(start)) return fmtMB(peak);
  return `${fmtMB(peak)} (+${Math.max(0, (peak - start) / 2 ** 20).toFixed(0)})`;
}

/** `a / b` as `1.23×`, `–` when either is missing. */
export function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '–';
  return `${(a / b).toFixed(2)}×`;
}

/** A Markdown table; the first column and those named in `left` are left-aligned, the rest right. */
export function table(header: string[], body: string[][], left: string[] = []): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((h, i) => (i === 0 || left.includes(h) ? '---' : '---:')).join('|')}|`,
    ...body.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}
