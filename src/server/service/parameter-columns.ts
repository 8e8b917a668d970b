/**
 * ExecuteBatch's `parameter_columns`: executeMany's parameter sets as one compact column per
 * parameter (varint(length + 1), 0 for NULL, then the parameter's text form). Their shape (the
 * same number of cells in each) is checked when the request arrives; a chunk that runs as one
 * statement turns each column straight into PostgreSQL's array literal, without a string per
 * cell; one that runs set by set gets the per-set text parameters. Either way, before anything
 * runs, a parameter that is not valid UTF-8 or holds a NUL (which PostgreSQL cannot store in
 * text) is refused with INVALID_ARGUMENT naming it.
 * @packageDocumentation
 */
import { isUtf8 } from 'node:buffer';
import { Code } from '@connectrpc/connect';
import { CompactReader, ErrorReason, type ParameterColumns } from '@heliosdb/client/wire';
import { maxParameters } from './context.js';
import { serverError } from '../errors.js';
import type { PipelineStatement } from '../pg/pg-pipeline.js';
import type { ChunkSets } from './unnest-chunk.js';

// ignoreBOM: a leading U+FEFF is part of the value, not a byte-order mark to drop.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function invalid(message: string, reason = ErrorReason.INVALID_REQUEST) {
  return serverError(Code.InvalidArgument, message, { reason });
}

/** The text of a cell, `[start, end)` of `bytes`; throws on bytes that are not UTF-8. */
function cellText(bytes: Uint8Array, start: number, end: number): string {
  if (end - start <= 32) {
    let s = '';
    for (let i = start; i < end; i++) {
      const b = bytes[i];
      if (b >= 0x80) return utf8.decode(bytes.subarray(start, end));
      s += String.fromCharCode(b);
    }
    return s;
  }
  return utf8.decode(bytes.subarray(start, end));
}

/**
 * Most parameter sets one request may carry as columns: a chunk that runs set by set holds an
 * array per set, so a 16 MiB request of one-byte NULL cells would otherwise become millions of them.
 */
export const maxColumnSets = 100_000;

/** Refuses columns of the wrong shape: none, too many, or not exactly `set_count` whole cells each. */
export function checkColumns(cols: ParameterColumns): void {
  const k = cols.columns.length;
  const n = cols.setCount;
  if (n > maxColumnSets) throw invalid(`parameter_columns carries ${n} parameter sets; at most ${maxColumnSets} go in one request`);
  if (k === 0) throw invalid('parameter_columns needs at least one column (send parameter_sets for a statement without parameters)');
  if (k > maxParameters) {
    throw invalid(`${k} parameters are more than PostgreSQL takes in one statement (${maxParameters})`, ErrorReason.INVALID_PARAMETER);
  }
  for (let p = 0; p < k; p++) {
    // Every cell takes at least a byte: a count beyond the bytes sent is refused at once.
    if (cols.columns[p].length < n) throw invalid(`parameter column ${p + 1} holds fewer than the ${n} cells set_count announces`);
    const r = new CompactReader(cols.columns[p]);
    for (let i = 0; i < n; i++) {
      if (r.done) throw invalid(`parameter column ${p + 1} holds ${i} cells; set_count is ${n}`);
      try {
        r.next();
      } catch (e) {
        throw invalid(`parameter column ${p + 1}: ${(e as Error).message}`);
      }
    }
    if (!r.done) throw invalid(`parameter column ${p + 1} holds more than the ${n} cells set_count announces`);
  }
}

/** The bytes an array element escapes with a backslash. */
const quote = 0x22;
const backslash = 0x5c;

/**
 * Column `p` of `cols` (checked by {@link checkColumns}) as PostgreSQL's array literal, every
 * element quoted; undefined when a cell is not valid UTF-8 or holds a NUL.
 */
function columnArrayLiteral(col: Uint8Array, n: number): string | undefined {
  // Worst case: every byte escaped, every cell quoted and followed by a comma, NULL for a 1-byte header.
  const out = Buffer.allocUnsafe(2 + col.length * 2 + n * 4);
  let o = 0;
  out[o++] = 0x7b; // {
  const r = new CompactReader(col);
  for (let i = 0; i < n; i++) {
    if (i > 0) out[o++] = 0x2c; // ,
    const len = r.next();
    if (len < 0) {
      out.write('NULL', o, 'latin1');
      o += 4;
      continue;
    }
    out[o++] = quote;
    for (let j = r.start, end = r.start + len; j < end; j++) {
      const b = col[j];
      if (b === 0) return undefined;
      if (b === quote || b === backslash) out[o++] = backslash;
      out[o++] = b;
    }
    out[o++] = quote;
  }
  out[o++] = 0x7d; // }
  // The literal's own bytes are ASCII, so it is UTF-8 exactly when every cell is.
  const literal = out.subarray(0, o);
  return isUtf8(literal) ? literal.toString('utf8') : undefined;
}

/** The chunk of `sql` with the parameter sets of `cols` (checked by {@link checkColumns}). */
export function columnChunkSets(sql: string, cols: ParameterColumns): ChunkSets {
  return {
    sql,
    count: cols.setCount,
    width: cols.columns.length,
    arrayLiteral(p) {
      const literal = columnArrayLiteral(cols.columns[p], cols.setCount);
      if (literal !== undefined) return literal;
      // A cell that cannot be sent: reading the sets one by one names it, and throws.
      statementsOfColumns(sql, cols);
      throw invalid(`parameter $${p + 1} cannot be sent`, ErrorReason.INVALID_PARAMETER);
    },
  };
}

/** The statements of `sql` with each parameter set of `cols` (checked by {@link checkColumns}). */
export function statementsOfColumns(sql: string, cols: ParameterColumns): PipelineStatement[] {
  const k = cols.columns.length;
  const n = cols.setCount;
  const values: (string | null)[][] = Array.from({ length: n }, () => new Array<string | null>(k));
  for (let p = 0; p < k; p++) {
    const r = new CompactReader(cols.columns[p]);
    for (let i = 0; i < n; i++) {
      if (r.done) throw invalid(`parameter column ${p + 1} holds ${i} cells; set_count is ${n}`);
      let len: number;
      try {
        len = r.next();
      } catch (e) {
        throw invalid(`parameter column ${p + 1}: ${(e as Error).message}`);
      }
      if (len < 0) {
        values[i][p] = null;
        continue;
      }
      let text: string;
      try {
        text = cellText(r.bytes, r.start, r.start + len);
      } catch {
        throw invalid(`parameter $${p + 1} of parameter set ${i} is not valid UTF-8`, ErrorReason.INVALID_PARAMETER);
      }
      if (text.includes('\0')) {
        throw invalid(
          `parameter $${p + 1} of parameter set ${i} holds a NUL character, which PostgreSQL cannot store in text`,
          ErrorReason.INVALID_PARAMETER,
        );
      }
      values[i][p] = text;
    }
    if (!r.done) throw invalid(`parameter column ${p + 1} holds more than the ${n} cells set_count announces`);
  }
  return values.map((v) => ({ text: sql, values: v }));
}
