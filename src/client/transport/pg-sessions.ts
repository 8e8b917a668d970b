/**
 * Transactions, savepoints and reserved sessions of DatabaseService over the PostgreSQL
 * protocol: each holds one pooled connection from its Begin (or Reserve) to its end, and its id
 * routes later calls there. Also GetServerInfo and the health check. Node only.
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import {
  type BeginTransactionRequest,
  type BeginTransactionResponse,
  BeginTransactionResponseSchema,
  type CommitRequest,
  type GetServerInfoResponse,
  GetServerInfoResponseSchema,
  IsolationLevel,
  type ReleaseSavepointRequest,
  type ReleaseSessionRequest,
  type ReserveSessionResponse,
  ReserveSessionResponseSchema,
  type RollbackRequest,
  type RollbackToSavepointRequest,
  type SavepointRequest,
  type SavepointResponse,
  SavepointResponseSchema,
} from '../../../gen/heliosdb/v1/database_pb.js';
import { ErrorReason } from '../../../gen/heliosdb/v1/error_pb.js';
import type { PgBackend, PgCall, PgSession } from './pg-backend.js';
import { detailedError, fromPgError } from './pg-errors.js';
import type { PgConn } from './pg-pool.js';
import { maxUnaryRows } from './pg-statements.js';

const isolation: Record<number, string> = {
  [IsolationLevel.READ_UNCOMMITTED]: ' ISOLATION LEVEL READ UNCOMMITTED',
  [IsolationLevel.READ_COMMITTED]: ' ISOLATION LEVEL READ COMMITTED',
  [IsolationLevel.REPEATABLE_READ]: ' ISOLATION LEVEL REPEATABLE READ',
  [IsolationLevel.SERIALIZABLE]: ' ISOLATION LEVEL SERIALIZABLE',
};

/** A savepoint name: a plain identifier (as the server accepts). */
function savepointName(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) {
    throw detailedError(
      Code.InvalidArgument,
      `invalid savepoint name ${JSON.stringify(name)}: use a plain identifier (letters, digits, _)`,
      {
        reason: ErrorReason.INVALID_REQUEST,
      },
    );
  }
  return name;
}

/** See the file comment. */
export class PgSessions {
  constructor(
    private readonly b: PgBackend,
    /** The largest message, reported in the limits (the client option `maxMessageBytes`). */
    private readonly maxMessageBytes: number,
  ) {}

  private async exec(conn: PgConn, call: PgCall, sql: string): Promise<string> {
    try {
      const r = await this.b.query(conn, call, sql, []);
      return (Array.isArray(r) ? r[r.length - 1] : r).command ?? '';
    } catch (e) {
      throw fromPgError(e, this.b.endpoint);
    }
  }

  async beginTransaction(req: BeginTransactionRequest, call: PgCall): Promise<BeginTransactionResponse> {
    const mode = req.readOnly ? ' READ ONLY' : ' READ WRITE';
    const deferrable = req.deferrable ? ' DEFERRABLE' : '';
    const s = await this.b.openSession('transaction', call, async (conn) => {
      await this.exec(conn, call, `BEGIN${isolation[req.isolationLevel] ?? ''}${mode}${deferrable}`);
    });
    return create(BeginTransactionResponseSchema, { transactionId: s.id, idleTimeoutMs: 0 });
  }

  private transaction(id: string): PgSession {
    const s = this.b.session(id);
    if (s.kind !== 'transaction') {
      throw detailedError(Code.FailedPrecondition, `${id} is a reserved session, not a transaction`, {
        reason: ErrorReason.TRANSACTION_NOT_FOUND,
      });
    }
    return s;
  }

  async commit(req: CommitRequest, call: PgCall): Promise<void> {
    const s = this.transaction(req.transactionId);
    try {
      const tag = await this.exec(s.conn, call, 'COMMIT');
      // PostgreSQL answers COMMIT of a failed transaction with ROLLBACK.
      if (tag === 'ROLLBACK') {
        throw detailedError(Code.Aborted, 'the transaction was rolled back instead of committed: a statement in it failed', {
          reason: ErrorReason.TRANSACTION_ABORTED,
        });
      }
    } finally {
      this.b.closeSession(s);
    }
  }

  async rollback(req: RollbackRequest, call: PgCall): Promise<void> {
    const s = this.b.sessions.get(req.transactionId);
    // Rolling back what is already gone is done.
    if (!s) return;
    try {
      if (!s.conn.broken) await this.exec(s.conn, call, 'ROLLBACK');
    } finally {
      this.b.closeSession(s);
    }
  }

  async savepoint(req: SavepointRequest, call: PgCall): Promise<SavepointResponse> {
    const s = this.transaction(req.transactionId);
    const name = req.name ? savepointName(req.name) : `heliosdb_sp_${++s.savepoints}`;
    await this.exec(s.conn, call, `SAVEPOINT ${name}`);
    return create(SavepointResponseSchema, { name });
  }

  async rollbackToSavepoint(req: RollbackToSavepointRequest, call: PgCall): Promise<void> {
    const s = this.transaction(req.transactionId);
    await this.exec(s.conn, call, `ROLLBACK TO SAVEPOINT ${savepointName(req.name)}`);
  }

  async releaseSavepoint(req: ReleaseSavepointRequest, call: PgCall): Promise<void> {
    const s = this.transaction(req.transactionId);
    await this.exec(s.conn, call, `RELEASE SAVEPOINT ${savepointName(req.name)}`);
  }

  async reserveSession(call: PgCall): Promise<ReserveSessionResponse> {
    const s = await this.b.openSession('session', call, async () => {});
    return create(ReserveSessionResponseSchema, { sessionId: s.id, idleTimeoutMs: 0 });
  }

  async releaseSession(req: ReleaseSessionRequest, call: PgCall): Promise<void> {
    const s = this.b.sessions.get(req.sessionId);
    if (!s) return;
    try {
      // Its state goes with it: what the session set, created or prepared.
      if (s.conn.txStatus !== 'I') await this.exec(s.conn, call, 'ROLLBACK');
      await this.exec(s.conn, call, 'DISCARD ALL');
      s.conn.applicationName = '';
      s.conn.readOnly = false;
    } catch {
      s.conn.broken = true;
    } finally {
      this.b.closeSession(s);
    }
  }

  async serverInfo(call: PgCall): Promise<GetServerInfoResponse> {
    return this.b.withConn('', true, call, async (conn) => {
      let row: (string | null)[];
      try {
        const r = await this.b.query(
          conn,
          call,
          "SELECT version(), current_setting('server_version'), current_setting('statement_timeout')",
          [],
        );
        row = (Array.isArray(r) ? r[0] : r).rows[0];
      } catch (e) {
        throw fromPgError(e, this.b.endpoint);
      }
      const engineVersion = row[0] ?? '';
      return create(GetServerInfoResponseSchema, {
        version: row[1] ?? '',
        // PGlite is PostgreSQL compiled to WebAssembly with Emscripten; its version() says so.
        engine: /emscripten|wasm|emcc/i.test(engineVersion) ? 'pglite' : 'postgresql',
        engineVersion,
        limits: { maxMessageBytes: this.maxMessageBytes, maxUnaryRows, statementTimeoutMs: timeoutMs(row[2] ?? '0') },
      });
    });
  }

  /** The health check: one round trip on a pooled connection. */
  async healthy(call: PgCall): Promise<void> {
    await this.b.withConn('', true, call, (conn) => this.exec(conn, call, 'SELECT 1'));
  }
}

/** statement_timeout's text (`0`, `30s`, `1500ms`, `2min`) in milliseconds. */
function timeoutMs(text: string): number {
  const m = /^(\d+)\s*(ms|s|min|h|d)?$/.exec(text.trim());
  if (!m) return 0;
  const unit = { ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms'] ?? 1;
  return Number(m[1]) * unit;
}
