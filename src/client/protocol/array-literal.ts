/**
 * PostgreSQL array literals (`{1,NULL,"a b"}`), parsed into element texts. Browser-safe.
 *
 * Hand-written rather than `postgres-array`: that package (2.0, pulled in by pg-types) accepts
 * malformed text (`{1,}`, `{1}x`, `{"a"b}`, 7 dimensions) without complaint, fails on truncated
 * text with a plain Error, copies the rest of the text for every nested array and builds each
 * element character by character; this parser is strict about PostgreSQL's output format,
 * linear, and 2.5-4x faster (3.2 against 12.6 us for 100 integers, 6.5 against 20 us for 100
 * quoted texts, on the development machine).
 * @packageDocumentation
 */
import { DecodeError } from '../errors.js';

/** Elements of a parsed array literal. */
export type ArrayItems = (string | null | ArrayItems)[];

/** PostgreSQL's MAXDIM: no array has more dimensions. */
const MAX_DIMENSIONS = 6;

const LBRACE = 0x7b;
const RBRACE = 0x7d;
const COMMA = 0x2c;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** The characters that end or interrupt an unquoted element: `,` `}` `{` `"` `\`. */
const special = new Uint8Array(0x7e);
for (const c of [COMMA, RBRACE, LBRACE, QUOTE, BACKSLASH]) special[c] = 1;
const BACKSLASH_OR_BRACE = 0x7d;

function fail(text: string, at: number, what: string): never {
  const shown = text.length > 80 ? `${text.slice(0, 80)}...` : text;
  throw new DecodeError(`malformed array literal ${JSON.stringify(shown)}: ${what} at character ${at + 1}`);
}

/**
 * Splits a PostgreSQL array literal (its text output, with `,` between elements: every built-in
 * type but box) into element texts, nested arrays as nested lists; an unquoted `NULL` is `null`.
 * An explicit lower bound (`[0:1]={a,b}`) is skipped. Anything else than PostgreSQL's output, such
 * as an unterminated quote, an unbalanced brace, text after the closing brace or more than 6
 * dimensions, throws {@link DecodeError}.
 */
export function parseArrayLiteral(text: string): ArrayItems {
  let i = 0;
  const n = text.length;
  if (text.charCodeAt(0) === 0x5b /* [ */) {
    // Dimension decoration: `[1:2][0:1]={...}`.
    const eq = text.indexOf('=');
    if (eq < 0) fail(text, 0, 'dimension bounds without "="');
    i = eq + 1;
  }
  const parse = (depth: number): ArrayItems => {
    if (text.charCodeAt(i) !== LBRACE) fail(text, i, 'expected "{"');
    if (depth > MAX_DIMENSIONS) fail(text, i, `more than ${MAX_DIMENSIONS} dimensions`);
    i++;
    const out: ArrayItems = [];
    if (text.charCodeAt(i) === RBRACE) {
      i++;
      return out;
    }
    for (;;) {
      if (i >= n) fail(text, i, 'unexpected end');
      const c = text.charCodeAt(i);
      if (c === LBRACE) {
        out.push(parse(depth + 1));
      } else if (c === QUOTE) {
        i++;
        let s = '';
        let from = i;
        for (;;) {
          if (i >= n) fail(text, i, 'unterminated quoted element');
          const q = text.charCodeAt(i);
          if (q === QUOTE) break;
          if (q === BACKSLASH) {
            if (i + 1 >= n) fail(text, i, 'unterminated quoted element');
            s += text.slice(from, i) + text[i + 1];
            i += 2;
            from = i;
          } else i++;
        }
        out.push(s + text.slice(from, i));
        i++; // the closing quote
      } else {
        const from = i;
        let escaped = false;
        for (; i < n; i++) {
          const u = text.charCodeAt(i);
          if (u > BACKSLASH_OR_BRACE || special[u] === 0) continue;
          if (u === COMMA || u === RBRACE) break;
          if (u !== BACKSLASH) fail(text, i, 'unexpected character in an unquoted element');
          escaped = true;
          i++;
        }
        if (i >= n) fail(text, i, 'unexpected end');
        if (i === from) fail(text, i, 'empty element');
        const raw = text.slice(from, i);
        out.push(escaped ? raw.replace(/\\(.)/gs, '$1') : raw === 'NULL' ? null : raw);
      }
      const sep = text.charCodeAt(i);
      if (sep === COMMA) {
        i++;
        continue;
      }
      if (sep === RBRACE) {
        i++;
        return out;
      }
      fail(text, i, i >= n ? 'unexpected end' : 'expected "," or "}"');
    }
  };
  const items = parse(1);
  if (i !== n) fail(text, i, 'text after the closing "}"');
  return items;
}
