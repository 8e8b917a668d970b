/**
 * The CQL lexer: identifiers (unquoted ones fold to lower case, "quoted" ones keep theirs),
 * string constants ('...' with '' inside, and $$...$$), numbers, UUIDs, blobs (0x...), bind
 * markers (`?` and `:name`), punctuation; comments (`--`, `//`, `/* *\/`) are skipped.
 * @packageDocumentation
 */
import { CqlError, ErrorCode } from './errors.js';

/** A token. */
export type Token =
  | { readonly type: 'ident'; readonly text: string; readonly quoted: boolean; readonly pos: number }
  | { readonly type: 'string'; readonly text: string; readonly pos: number }
  | { readonly type: 'number'; readonly text: string; readonly pos: number }
  | { readonly type: 'uuid'; readonly text: string; readonly pos: number }
  | { readonly type: 'blob'; readonly text: string; readonly pos: number }
  | { readonly type: 'marker'; readonly name: string | undefined; readonly pos: number }
  | { readonly type: 'punct'; readonly text: string; readonly pos: number }
  | { readonly type: 'end'; readonly pos: number };

/** A syntax error (code 0x2000). */
export function syntaxError(message: string): CqlError {
  return new CqlError(ErrorCode.syntax, message);
}

const uuidRe = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/;
const numberRe = /^-?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|NaN|Infinity)/;
const identRe = /^[A-Za-z_][A-Za-z0-9_]*/;
const puncts = ['<=', '>=', '!=', '+=', '-=', '(', ')', ',', ';', '.', '*', '=', '<', '>', '[', ']', '{', '}', ':', '+', '-'];

/** Splits CQL text into tokens; the last is `end`. */
export function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if ((c === '-' && text[i + 1] === '-') || (c === '/' && text[i + 1] === '/')) {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) throw syntaxError('unterminated comment');
      i = end + 2;
      continue;
    }
    const rest = text.slice(i, i + 64);
    if (c === "'") {
      const q = quotedAt(text, i, "'");
      if (!q) throw syntaxError(`unterminated string at character ${i}`);
      out.push({ type: 'string', text: q.value, pos: i });
      i = q.end + 1;
      continue;
    }
    if (c === '$' && text[i + 1] === '$') {
      const end = text.indexOf('$$', i + 2);
      if (end < 0) throw syntaxError(`unterminated $$ string at character ${i}`);
      out.push({ type: 'string', text: text.slice(i + 2, end), pos: i });
      i = end + 2;
      continue;
    }
    if (c === '"') {
      const q = quotedAt(text, i, '"');
      if (!q) throw syntaxError(`unterminated quoted identifier at character ${i}`);
      if (q.value.includes('\u0000')) throw syntaxError(`a quoted identifier at character ${i} contains a NUL character`);
      out.push({ type: 'ident', text: q.value, quoted: true, pos: i });
      i = q.end + 1;
      continue;
    }
    if (c === '?') {
      out.push({ type: 'marker', name: undefined, pos: i });
      i++;
      continue;
    }
    if (c === ':' && /[A-Za-z_"]/.test(text[i + 1] ?? '')) {
      const m = identRe.exec(text.slice(i + 1));
      if (m) {
        out.push({ type: 'marker', name: m[0].toLowerCase(), pos: i });
        i += 1 + m[0].length;
        continue;
      }
    }
    const u = uuidRe.exec(rest);
    if (u) {
      out.push({ type: 'uuid', text: u[0].toLowerCase(), pos: i });
      i += u[0].length;
      continue;
    }
    if (c === '0' && (text[i + 1] === 'x' || text[i + 1] === 'X')) {
      const m = /^0[xX]([0-9a-fA-F]*)/.exec(text.slice(i));
      const hex = m?.[1] ?? '';
      if (hex.length % 2) throw syntaxError(`odd number of hex digits in a blob at character ${i}`);
      out.push({ type: 'blob', text: hex.toLowerCase(), pos: i });
      i += 2 + hex.length;
      continue;
    }
    const prev = out[out.length - 1];
    // A minus sign starts a number only after an operator or an opening bracket (`c - 1` is a subtraction).
    const signed = c === '-' && (!prev || (prev.type === 'punct' && !')]}'.includes(prev.text)));
    const num = /[0-9]/.test(c) || (c === '.' && /[0-9]/.test(text[i + 1] ?? '')) || signed ? numberRe.exec(text.slice(i)) : null;
    if (num) {
      out.push({ type: 'number', text: num[0], pos: i });
      i += num[0].length;
      continue;
    }
    const id = identRe.exec(rest);
    if (id) {
      out.push({ type: 'ident', text: id[0].toLowerCase(), quoted: false, pos: i });
      i += id[0].length;
      continue;
    }
    const p = puncts.find((x) => text.startsWith(x, i));
    if (p) {
      out.push({ type: 'punct', text: p, pos: i });
      i += p.length;
      continue;
    }
    throw syntaxError(`unexpected character ${JSON.stringify(c)} at character ${i}`);
  }
  out.push({ type: 'end', pos: n });
  return out;
}

/**
 * The text of the literal quoted with `q` that opens at `i` (a doubled `q` stands for one) and
 * where its closing quote is; undefined when it does not close. Slices, never character by
 * character, so a long literal costs linear time and one flat string.
 */
function quotedAt(text: string, i: number, q: string): { value: string; end: number } | undefined {
  const parts: string[] = [];
  let j = i + 1;
  for (;;) {
    const k = text.indexOf(q, j);
    if (k < 0) return undefined;
    parts.push(text.slice(j, k));
    if (text[k + 1] !== q) return { value: parts.length === 1 ? parts[0] : parts.join(''), end: k };
    parts.push(q);
    j = k + 2;
  }
}
