/**
 * Rewrites the STDIN / STDOUT of a COPY statement into a file name: the embedded engine (PGlite)
 * can only COPY through its blob device (`'/dev/blob'`), not through the client protocol.
 * @packageDocumentation
 */
import { Buffer } from 'node:buffer';
import { scanSync } from 'libpg-query';
import { analyzeSql } from './analysis.js';

/** A text given to {@link replaceCopyStdio} is not exactly one COPY FROM STDIN or COPY TO STDOUT. */
export class NotCopyStdioError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotCopyStdioError';
  }
}

/** `s` as a SQL string literal (an E'' literal when it holds a backslash, so that any standard_conforming_strings reads it alike). */
function quoteLiteral(s: string): string {
  const q = s.replace(/'/g, "''");
  return s.includes('\\') ? `E'${q.replace(/\\/g, '\\\\')}'` : `'${q}'`;
}

/**
 * `sql`, one `COPY ... FROM STDIN` or `COPY ... TO STDOUT`, with STDIN / STDOUT replaced by the
 * string literal of `filename` (give it unquoted, e.g. `/dev/blob`); everything else of the
 * text (options, comments, the query of `COPY (query) TO STDOUT`) stays as it is. Throws
 * {@link NotCopyStdioError} for anything else (several statements, another command, COPY with a
 * file or a PROGRAM, a text the parser rejects). Needs the parser loaded (`loadSqlParser`).
 */
export function replaceCopyStdio(sql: string, filename: string): string {
  const a = analyzeSql(sql);
  if (!a.parsed) throw new NotCopyStdioError(`not a COPY statement PostgreSQL can parse: ${a.parseError}`);
  if (a.statements.length !== 1) throw new NotCopyStdioError(`expected one COPY statement, got ${a.statements.length} statements`);
  const copy = a.statements[0]!.copy;
  if (!copy) throw new NotCopyStdioError(`expected a COPY statement, got ${a.statements[0]!.command}`);
  if (!copy.client)
    throw new NotCopyStdioError(
      `expected COPY ${copy.from ? 'FROM STDIN' : 'TO STDOUT'}, got a COPY ${copy.program ? 'with a PROGRAM' : 'with a file name'}`,
    );
  // The file name follows the first FROM / TO outside parentheses (the column list and the
  // query of COPY (query) TO are inside them); a quoted "from" is an IDENT token, not FROM.
  const tokens = scanSync(sql).tokens.filter((t) => t.tokenName !== 'SQL_COMMENT' && t.tokenName !== 'C_COMMENT');
  let depth = 0;
  for (let i = 0; i < tokens.length; i++) {
    const word = tokens[i]!.text.toLowerCase();
    if (word === '(') depth++;
    else if (word === ')') depth--;
    else if (depth === 0 && (word === 'from' || word === 'to')) {
      const target = tokens[i + 1];
      const t = target?.text.toLowerCase();
      if (!target || (t !== 'stdin' && t !== 'stdout')) break;
      const literal = quoteLiteral(filename);
      // Token offsets are UTF-8 byte offsets.
      if (/^[\x00-\x7f]*$/.test(sql)) return sql.slice(0, target.start) + literal + sql.slice(target.end);
      const bytes = Buffer.from(sql, 'utf8');
      return Buffer.concat([bytes.subarray(0, target.start), Buffer.from(literal, 'utf8'), bytes.subarray(target.end)]).toString('utf8');
    }
  }
  throw new NotCopyStdioError('could not find the STDIN / STDOUT of the COPY statement');
}
