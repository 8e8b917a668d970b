/**
 * Keeps `COPY ... FROM STDIN` away from PGlite: through the wire protocol it ends the whole
 * engine (`Program terminated with exit(1)`). A Query or Parse message whose SQL holds such a
 * statement is rewritten into a statement that raises SQLSTATE 0A000, so PGlite itself answers
 * with the ErrorResponse and does the rest as PostgreSQL would (a Query's ReadyForQuery with the
 * right transaction status, a failed transaction block, messages skipped until Sync in the
 * extended protocol). CopyData, CopyDone and CopyFail messages are dropped: without COPY FROM
 * STDIN they can never be expected. Runs in the worker.
 * @packageDocumentation
 */
import { parseSync } from 'libpg-query';

/** The message of the refusal. */
export const copyFromStdinRefusal = "COPY FROM STDIN cannot run on the embedded engine through the protocol: use the client's copyFrom";

const refusalSql = `DO $heliosdb$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = '${copyFromStdinRefusal.replace(/'/g, "''")}'; END$heliosdb$`;

interface CopyStmtNode {
  is_from?: boolean;
  is_program?: boolean;
  filename?: string;
}

/** True when `sql` holds a `COPY ... FROM STDIN` statement. */
export function isCopyFromStdin(sql: string): boolean {
  // Cheap first: only texts that mention COPY are parsed.
  if (!/copy/i.test(sql)) return false;
  let stmts: { stmt?: Record<string, unknown> }[];
  try {
    stmts = (parseSync(sql) as { stmts?: { stmt?: Record<string, unknown> }[] }).stmts ?? [];
  } catch {
    // Not valid SQL for this grammar (the same PostgreSQL major as PGlite's): PGlite would reject
    // it too, unless it only looks like COPY FROM STDIN; refuse those to be safe.
    return /\bcopy\b[\s\S]*\bfrom\b[\s\S]*\bstdin\b/i.test(sql);
  }
  return stmts.some((s) => {
    const copy = s.stmt?.CopyStmt as CopyStmtNode | undefined;
    return !!copy && !!copy.is_from && !copy.is_program && copy.filename === undefined;
  });
}

function cstringAt(buf: Buffer, pos: number): [string, number] {
  const end = buf.indexOf(0, pos);
  if (end < 0) throw new Error('malformed protocol message');
  return [buf.toString('utf8', pos, end), end + 1];
}

function frame(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.alloc(1)]);

/**
 * `data` (whole frontend messages) with every COPY FROM STDIN rewritten and copy sub-protocol
 * messages dropped; `data` itself when nothing changes.
 */
export function guardFrontendMessages(data: Uint8Array): Uint8Array {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let out: Buffer[] | undefined;
  let pos = 0;
  while (pos + 5 <= buf.length) {
    const type = String.fromCharCode(buf[pos]!);
    const end = pos + 1 + buf.readInt32BE(pos + 1);
    const msg = buf.subarray(pos, end);
    let replacement: Buffer | null | undefined;
    if (type === 'Q') {
      const [sql] = cstringAt(msg, 5);
      if (isCopyFromStdin(sql)) replacement = frame('Q', cstr(refusalSql));
    } else if (type === 'P') {
      const [name, afterName] = cstringAt(msg, 5);
      const [sql] = cstringAt(msg, afterName);
      // Same statement name, no parameter types: a Bind for it fails at Execute with the refusal.
      if (isCopyFromStdin(sql)) replacement = frame('P', Buffer.concat([cstr(name), cstr(refusalSql), Buffer.alloc(2)]));
    } else if (type === 'd' || type === 'c' || type === 'f') {
      replacement = null;
    }
    if (replacement !== undefined && !out) out = [buf.subarray(0, pos)];
    if (out) {
      if (replacement === undefined) out.push(msg);
      else if (replacement !== null) out.push(replacement);
    }
    pos = end;
  }
  return out ? Buffer.concat(out) : data;
}
