/**
 * Summarizes a V8 .cpuprofile: self time by area (our code, grpc-js, Connect, protobuf-es, pg,
 * Node internals, GC, idle) and the top functions by self time.
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The area a script URL belongs to. */
export function areaOf(url: string, fn: string): string {
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle';
  if (fn === '(program)') return '(program: native, not JS)';
  const m = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (m) return m[1];
  if (url.startsWith('node:') || url === '') return 'node internals';
  const s = url.match(/\/(src\/[^?]*|bench\/[^?]*|gen\/[^?]*)/);
  if (s) return s[1].replace(/^src\/server\/.*/, (p) => p).replace(/\.ts$/, '.ts');
  return url;
}

/** Self time by area and the top functions, as text. */
export function summarize(file: string, top = 30): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const self = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + dt);
    total += dt;
  }
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, t] of self) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + t);
    const short = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench|gen)\//, '$1/');
    const key = `${functionName || '(anonymous)'}  ${short}:${lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + t);
  }
  // Inclusive: the share of samples with an area anywhere on the stack.
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map<string, number>();
  const stackAreas = new Map<number, Set<string>>();
  const areasOn = (id: number): Set<string> => {
    let set = stackAreas.get(id);
    if (set) return set;
    const n = byId.get(id)!;
    const up = parent.get(id);
    set = new Set(up === undefined ? [] : areasOn(up));
    set.add(areaOf(n.callFrame.url, n.callFrame.functionName));
    stackAreas.set(id, set);
    return set;
  };
  for (const [id, t] of self) for (const a of areasOn(id)) inclusive.set(a, (inclusive.get(a) ?? 0) + t);
  const busy = total - (areas.get('idle') ?? 0);
  const pct = (t: number) => `${((t / busy) * 100).toFixed(1).padStart(5)}%`;
  const lines: string[] = [`total ${(total / 1000).toFixed(0)} ms, busy ${(busy / 1000).toFixed(0)} ms; % of busy time`];
  lines.push('by area:');
  for (const [a, t] of [...areas]
    .filter(([a]) => a !== 'idle')
    .sort((x, y) => y[1] - x[1])
    .slice(0, 20))
    lines.push(`  ${pct(t)}  ${a}`);
  lines.push('inclusive (samples with the area anywhere on the stack):');
  for (const [a, t] of [...inclusive]
    .filter(([a]) => a !== 'idle' && a !== 'node internals' && a !== '(program: native, not JS)')
    .sort((x, y) => y[1] - x[1])
    .slice(0, 14))
    lines.push(`  ${pct(t)}  ${a}`);
  lines.push('top functions (self):');
  for (const [f, t] of [...fns]
    .sort((x, y) => y[1] - x[1])
    .filter(([f]) => !f.startsWith('(idle)'))
    .slice(0, top))
    lines.push(`  ${pct(t)}  ${f}`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const f of process.argv.slice(2)) console.log(summarize(f));
}
