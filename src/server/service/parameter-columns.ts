/**
 * ExecuteBatch's `parameter_columns`: executeMany's parameter sets as one compact column per
 * parameter (varint(length + 1), 0 for NULL, then the parameter's text form), turned into the
 * per-set text parameters the batch runs. The columns are checked whole before anything runs: the
 * same number of cells in each, valid UTF-8, no NUL (which PostgreSQL cannot store in text).
 * @packageDocumentation
 */
import { Code } from '@connectrpc/connect';
import { CompactReader, ErrorReason, type ParameterColumns } from '@heliosdb/client/wire';
import { maxParameters } from './context.js';
import { serverError } from '../errors.js';
import type { PipelineStatement } from '../pg/pg-pipeline.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

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

/** The statements of `sql` with each parameter set of `cols` (see the file comment). */
export function statementsOfColumns(sql: string, cols: ParameterColumns): PipelineStatement[] {
  const k = cols.columns.length;
  const n = cols.setCount;
  if (k === 0) throw invalid('parameter_columns needs at least one column (send parameter_sets for a statement without parameters)');
  if (k > maxParameters) {
    throw invalid(`${k} parameters are more than PostgreSQL takes in one statement (${maxParameters})`, ErrorReason.INVALID_PARAMETER);
  }
  // Every cell takes at least a byte: a count beyond the bytes sent is refused before allocating.
  for (let p = 0; p < k; p++) {
    if (cols.columns[p].length < n) throw invalid(`parameter column ${p + 1} holds fewer than the ${n} cells set_count announces`);
  }
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
