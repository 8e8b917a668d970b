/**
 * What the embedded engine's PostgreSQL port refuses, because its clients share one database
 * session and it could not be kept to one client: SQL-level PREPARE / DEALLOCATE (the protocol's
 * named statements are isolated; see ./statement-names.ts), LISTEN / UNLISTEN other than alone in a
 * simple Query (which the session layer plays per client), DECLARE ... WITH
 * HOLD, temporary objects, LOAD, DISCARD, session advisory locks, `set_config(..., false)` and SQL
 * `EXECUTE`; SQL longer than the analyser checks (54000);
 * and, with authentication required, changes of the role (as ../call/statement-policy.ts refuses
 * them on every listener). Settings made with SET and RESET are allowed: they follow the client
 * (./pglite-scheduler.ts re-applies them). The facts come from PostgreSQL's own parser (../sql/).
 * @packageDocumentation
 */
import { analyzeSql, maxAnalyzedLength } from '../sql/analysis.js';

/** The verdict on one SQL text. */
export interface StatementVerdict {
  /** Why it is refused (SQLSTATE 0A000, or 42501 for a role change). */
  refusal?: { code: string; message: string };
  /** It changes session settings (SET, RESET): the client's settings must be read back. */
  changesSettings: boolean;
  /** It is exactly one COPY ... FROM STDIN. */
  copyFromStdin: boolean;
  /** COPY ... FROM STDIN among other statements. */
  copyAmongOthers: boolean;
  /**
   * It is exactly one DEALLOCATE: of the client's own statements (all of them, or the one named,
   * as the client named it), which the session layer maps.
   */
  deallocate?: { all: true } | { all: false; name: string };
  /** It is exactly one LISTEN or UNLISTEN (channel undefined: `UNLISTEN *`), which the session layer plays. */
  listen?: { kind: 'listen' | 'unlisten'; channel: string | undefined };
}

/** The name a DEALLOCATE statement's text gives, as PostgreSQL folds it; undefined for ALL. */
function deallocateTarget(text: string): { all: true } | { all: false; name: string } | undefined {
  const m = /^deallocate\s+(?:prepare\s+)?("(?:[^"]|"")+"|[^\s;]+)\s*$/i.exec(text);
  if (!m) return undefined;
  const n = m[1]!;
  if (n.startsWith('"')) return { all: false, name: n.slice(1, -1).replace(/""/g, '"') };
  return n.toLowerCase() === 'all' ? { all: true } : { all: false, name: n.toLowerCase() };
}

const shared = "the embedded engine's clients share one database session";

/** See the file comment. */
export function judgeSql(sql: string, authRequired: boolean): StatementVerdict {
  const a = analyzeSql(sql);
  const v: StatementVerdict = { changesSettings: false, copyFromStdin: false, copyAmongOthers: false };
  if (!a.parsed) {
    // Unchecked SQL could do anything refused here: the engine does not get it.
    if (sql.length > maxAnalyzedLength)
      v.refusal = {
        code: '54000',
        message: `the statement is longer than ${maxAnalyzedLength} characters, the most the embedded engine's PostgreSQL port checks (${shared}); send shorter statements, bind parameters, or COPY FROM STDIN`,
      };
    return v;
  }
  for (const s of a.statements) {
    if (s.copy?.client && s.copy.from) {
      if (a.statements.length === 1) v.copyFromStdin = true;
      else v.copyAmongOthers = true;
    }
    if (s.identityChange && s.node !== 'DiscardStmt') {
      if (authRequired) {
        v.refusal = {
          code: '42501',
          message: `${s.command} is refused on the embedded engine: it is one superuser session, so changing the role there could leave the principal's own (use PostgreSQL for separate identities; see docs/security.md)`,
        };
        return v;
      }
      v.changesSettings = true;
      continue;
    }
    if (s.listen) {
      if (a.statements.length === 1) {
        v.listen = { kind: s.listen, channel: s.listenChannel };
        return v;
      }
      v.refusal = {
        code: '0A000',
        message: `${s.command} must be the only statement of its query on the embedded engine's PostgreSQL port: ${shared}, and the port plays LISTEN and UNLISTEN for each client`,
      };
      return v;
    }
    if (s.node === 'ExecuteStmt') {
      v.refusal = {
        code: '0A000',
        message: `EXECUTE of an SQL-level prepared statement is refused on the embedded engine's PostgreSQL port: ${shared}, where the statements of other clients could be run (use protocol-level prepared statements)`,
      };
      return v;
    }
    if (s.node === 'DeallocateStmt' && a.statements.length === 1) {
      v.deallocate = deallocateTarget(s.text);
      if (v.deallocate) return v;
    }
    if (!s.sessionState && s.node !== 'DiscardStmt') continue;
    if (s.node === 'VariableSetStmt') {
      v.changesSettings = true;
      continue;
    }
    const what =
      s.node === 'SelectStmt'
        ? 'this SELECT takes a session advisory lock or calls set_config(..., false)'
        : `${s.command} leaves state on the session beyond the statement`;
    v.refusal = {
      code: '0A000',
      message: `${what}, which is refused on the embedded engine's PostgreSQL port: ${shared} (use protocol-level prepared statements, SET, pg_advisory_xact_lock, or PostgreSQL)`,
    };
    return v;
  }
  if (v.copyAmongOthers) {
    v.refusal = {
      code: '0A000',
      message: "COPY FROM STDIN must be the only statement of its query on the embedded engine's PostgreSQL port",
    };
  }
  return v;
}

/** A statement that raises `refusal` when it runs: what the engine is sent instead of a refused one. */
export function refusalSql(refusal: { code: string; message: string }): string {
  const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
  return `DO $heliosdb$BEGIN RAISE EXCEPTION USING ERRCODE = ${lit(refusal.code)}, MESSAGE = ${lit(refusal.message)}; END$heliosdb$`;
}
