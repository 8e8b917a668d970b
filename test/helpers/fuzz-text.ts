/**
 * Text generators for fuzzing the decoders: a deterministic pseudo-random generator, mutations of
 * well-formed text, and PostgreSQL's text output of arrays, timestamps, intervals, JSON, numbers
 * and bytea. Used by ./decoder-fuzz.ts.
 * @packageDocumentation
 */

/** mulberry32: small, fast, and the same sequence everywhere for the same start value. */
export class Rng {
  private s: number;
  constructor(start: number) {
    this.s = start >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** Random text of whole code points from `alphabet` (no lone surrogates: they do not survive UTF-8). */
  string(alphabet: string, maxLength: number): string {
    const chars = Array.from(alphabet);
    const n = this.int(maxLength + 1);
    let s = '';
    for (let i = 0; i < n; i++) s += chars[this.int(chars.length)];
    return s;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

export const tricky = 'aZ09 ,{}"\\\'NULL\t\n;é😀[]=:-+.';

/** A mutation of a well-formed text: truncated, a character inserted, removed or replaced, a piece repeated. */
export function mutate(rng: Rng, s: string, alphabet = tricky): string {
  switch (rng.int(5)) {
    case 0:
      return s.slice(0, rng.int(s.length + 1));
    case 1: {
      const at = rng.int(s.length + 1);
      return s.slice(0, at) + rng.string(alphabet, 1) + s.slice(at);
    }
    case 2: {
      const at = rng.int(s.length);
      return s.slice(0, at) + s.slice(at + 1).replace(/^[\udc00-\udfff]/, '');
    }
    case 3: {
      const at = rng.int(s.length);
      return s.slice(0, at) + rng.string(alphabet, 1) + s.slice(at + 1);
    }
    default: {
      const a = rng.int(s.length + 1);
      const piece = s.slice(a, a + 1 + rng.int(8));
      return s.slice(0, a) + piece.repeat(1 + rng.int(50)) + s.slice(a);
    }
  }
}

/** A well-formed text, a mutation of one, or random text (a third each). */
export function variant(rng: Rng, good: () => string, alphabet = tricky, maxRandom = 40): { text: string; wellFormed: boolean } {
  const r = rng.int(3);
  if (r === 0) return { text: good(), wellFormed: true };
  if (r === 1) return { text: mutate(rng, good(), alphabet), wellFormed: false };
  return { text: rng.string(alphabet, maxRandom), wellFormed: false };
}

export type Tree = (string | null | Tree)[];

function randomElement(rng: Rng): string {
  return rng.pick([
    '',
    'NULL',
    'null',
    'a',
    'a b',
    'x"y',
    'back\\slash',
    'c,d',
    '{e}',
    'é😀',
    ' lead',
    '12',
    '-3.5',
    rng.string(tricky, 6),
  ]);
}

/** A random array (at most 3 dimensions, rectangular or not) of tricky texts and NULLs. */
export function randomTree(rng: Rng, depth: number): Tree {
  const n = rng.int(5);
  const out: Tree = [];
  for (let i = 0; i < n; i++)
    out.push(depth > 1 && rng.chance(0.4) ? randomTree(rng, depth - 1) : rng.chance(0.15) ? null : randomElement(rng));
  return out;
}

/** An array as PostgreSQL writes it: elements quoted when needed, `"` and `\` escaped. */
export function arrayText(tree: Tree): string {
  return `{${tree
    .map((e) => {
      if (e === null) return 'NULL';
      if (Array.isArray(e)) return arrayText(e);
      if (e === '' || /[{}",\\\s]/.test(e) || e.toUpperCase() === 'NULL') return `"${e.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
      return e;
    })
    .join(',')}}`;
}

function pad(n: number, w: number): string {
  return String(n).padStart(w, '0');
}

export function timestampText(rng: Rng, tz: boolean): string {
  if (rng.chance(0.05)) return rng.pick(['infinity', '-infinity']);
  const year = rng.chance(0.1) ? 200000 + rng.int(94276) : 1 + rng.int(9999);
  let s = `${pad(year, 4)}-${pad(1 + rng.int(12), 2)}-${pad(1 + rng.int(28), 2)} ${pad(rng.int(24), 2)}:${pad(rng.int(60), 2)}:${pad(rng.int(60), 2)}`;
  if (rng.chance(0.5)) s += `.${pad(rng.int(1000000), 6).replace(/0+$/, '') || '0'}`;
  if (tz) s += `${rng.pick(['+', '-'])}${pad(rng.int(15), 2)}${rng.chance(0.3) ? `:${pad(rng.int(60), 2)}` : ''}`;
  if (rng.chance(0.1)) s += ' BC';
  return s;
}

export function intervalParts(rng: Rng): { text: string; months: number; days: number; micros: bigint } {
  const years = rng.chance(0.5) ? rng.int(2000) - 1000 : 0;
  const mons = rng.chance(0.5) ? rng.int(24) - 12 : 0;
  const days = rng.chance(0.5) ? rng.int(2000) - 1000 : 0;
  const parts: string[] = [];
  if (years) parts.push(`${years} year${Math.abs(years) === 1 ? '' : 's'}`);
  if (mons) parts.push(`${mons} mon${Math.abs(mons) === 1 ? '' : 's'}`);
  if (days) parts.push(`${days} day${Math.abs(days) === 1 ? '' : 's'}`);
  let micros = 0n;
  if (parts.length === 0 || rng.chance(0.6)) {
    const h = rng.int(100);
    const m = rng.int(60);
    const sec = rng.int(60);
    const frac = rng.int(1000000);
    const neg = rng.chance(0.4);
    micros = (BigInt(h) * 3600n + BigInt(m) * 60n + BigInt(sec)) * 1000000n + BigInt(frac);
    if (neg) micros = -micros;
    const sign = neg ? '-' : parts.length > 0 ? '+' : '';
    parts.push(`${sign}${pad(h, 2)}:${pad(m, 2)}:${pad(sec, 2)}${frac ? `.${pad(frac, 6).replace(/0+$/, '')}` : ''}`);
  }
  return { text: parts.join(' '), months: years * 12 + mons, days, micros };
}

export function jsonText(rng: Rng, depth = 0): string {
  if (depth > 3 || rng.chance(0.4)) return JSON.stringify(rng.pick([1, -2.5, 'a"b', 'é', true, null, 1e300]));
  if (rng.chance(0.5)) return `[${Array.from({ length: rng.int(4) }, () => jsonText(rng, depth + 1)).join(',')}]`;
  return `{${Array.from({ length: rng.int(4) }, (_, i) => `"k${i}":${jsonText(rng, depth + 1)}`).join(',')}}`;
}

export function numberText(rng: Rng): string {
  return rng.pick([
    String(rng.int(65536) - 32768),
    String(rng.int(2 ** 31) * (rng.chance(0.5) ? -1 : 1)),
    (BigInt(rng.int(2 ** 31)) * BigInt(rng.int(2 ** 31)) * 4n).toString(),
    '9223372036854775807',
    '-9223372036854775808',
    String(rng.next() * 1e10),
    'NaN',
    'Infinity',
    '-Infinity',
    '1e+300',
    '123456789012345678901234567890.123456789',
  ]);
}

export function hexText(rng: Rng): string {
  let s = '\\x';
  for (const b of rng.bytes(rng.int(6))) s += b.toString(16).padStart(2, '0');
  return s;
}
