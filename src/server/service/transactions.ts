/**
 * The session RPCs: interactive transactions (BeginTransaction, Commit, Rollback and savepoints)
 * and reserved sessions (ReserveSession, ReleaseSession), each on a connection of the principal's
 * own login (see ../sessions.ts).
 * @packageDocumentation
 */
import { Code, type ServiceImpl } from '@connectrpc/connect';
import { CommitRequestSchema, CommitResponseSchema, type DatabaseService, IsolationLevel, ErrorReason } from '@heliosdb/client/wire';
import { ErrorDetailSchema } from '@heliosdb/client/wire';
import { ownerKeyOf, principalOf } from '../auth/principal.js';
import type { BackendConnection } from '../backend.js';
import { txStatusOf } from '../backend/connection.js';
import { abortError, applicationNameHeader } from '../call-context.js';
import { runCommand } from '../call/run.js';
import { loginError, prepareConnection } from '../call/scope.js';
import { serverError, toConnectError } from '../errors.js';
import type { KeyedCall } from '../idempotency.js';
import type { Session } from '../sessions.js';
import type { ServiceContext } from './context.js';
import { CountingSink } from './exec.js';

const isolationSql: Record<IsolationLevel, string> = {
  [IsolationLevel.UNSPECIFIED]: '',
  [IsolationLevel.READ_UNCOMMITTED]: ' ISOLATION LEVEL READ UNCOMMITTED',
  [IsolationLevel.READ_COMMITTED]: ' ISOLATION LEVEL READ COMMITTED',
  [IsolationLevel.REPEATABLE_READ]: ' ISOLATION LEVEL REPEATABLE READ',
  [IsolationLevel.SERIALIZABLE]: ' ISOLATION LEVEL SERIALIZABLE',
};

const savepointName = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

type Handlers = Pick<
  ServiceImpl<typeof DatabaseService>,
  | 'beginTransaction'
  | 'commit'
  | 'rollback'
  | 'savepoint'
  | 'rollbackToSavepoint'
  | 'releaseSavepoint'
  | 'reserveSession'
  | 'releaseSession'
>;

/** The handlers. */
export function transactionHandlers(c: ServiceContext): Handlers {
  const { sessions, idempotency, options, backend } = c.deps;

  /** Opens a session of `kind` for the caller; `setup` runs on its connection first. */
  async function open(
    ctx: Parameters<Handlers['beginTransaction']>[1],
    kind: 'transaction' | 'reserved',
    readOnly: boolean,
    setup?: (conn: BackendConnection) => Promise<void>,
  ) {
    if (ctx.signal.aborted) throw abortError(ctx.signal);
    const principal = principalOf(ctx);
    await c.deps.logins.ready(principal);
    const login = c.deps.logins.loginOf(principal);
    const owner = ownerKeyOf(principal);
    let session: Session;
    try {
      session = await sessions.open(kind, {
        owner,
        login,
        readOnly,
        signal: ctx.signal,
        setup: async (conn) => {
          await prepareConnection(backend, conn, login, (ctx.requestHeader.get(applicationNameHeader) ?? '').slice(0, 63));
          await setup?.(conn);
        },
      });
    } catch (e) {
      if (ctx.signal.aborted) throw abortError(ctx.signal);
      throw loginError(e, principal);
    }
    if (ctx.signal.aborted) {
      // The caller left (its connection broke): nobody will learn this id, so end it now
      // instead of holding a database connection until the idle timeout.
      if (kind === 'transaction') await sessions.end(session.id, 'ROLLBACK', owner).catch(() => {});
      else await sessions.release(session.id, owner).catch(() => {});
      throw abortError(ctx.signal);
    }
    return session;
  }

  const savepointCall =
    (sql: string) => async (req: { transactionId: string; name: string }, ctx: Parameters<Handlers['savepoint']>[1]) => {
      if (!savepointName.test(req.name))
        throw serverError(Code.InvalidArgument, `invalid savepoint name ${JSON.stringify(req.name)}`, {
          reason: ErrorReason.INVALID_REQUEST,
        });
      await sessions.use(
        c.transactionId(req.transactionId),
        (conn) =>
          runCommand(backend, conn, { text: `${sql} "${req.name}"`, sink: new CountingSink() }, { prelude: [], postlude: [] }, ctx.signal),
        ownerKeyOf(principalOf(ctx)),
        'transaction',
      );
      return {};
    };

  return {
    async beginTransaction(req, ctx) {
      const principal = principalOf(ctx);
      const readOnly = req.readOnly || principal.readOnly;
      let sql = 'BEGIN' + (isolationSql[req.isolationLevel] ?? '');
      if (readOnly) sql += ' READ ONLY';
      if (req.deferrable) sql += ' DEFERRABLE';
      // A read-only principal's transaction takes its snapshot at once: after it, no statement
      // can make the transaction read-write.
      if (principal.readOnly) sql += '; SELECT 1';
      const session = await open(ctx, 'transaction', readOnly, async (conn) => {
        await conn.query(sql);
      }).catch((e) => {
        throw toConnectError(e);
      });
      return { transactionId: session.id, idleTimeoutMs: options.transactionIdleTimeoutMs };
    },

    async commit(req, ctx) {
      const id = c.transactionId(req.transactionId);
      const principal = principalOf(ctx);
      const call: KeyedCall | undefined = idempotency.applies(req.idempotencyKey, principal)
        ? {
            key: req.idempotencyKey,
            principal,
            method: 'Commit',
            request: req,
            requestSchema: CommitRequestSchema,
            responseSchema: CommitResponseSchema,
          }
        : undefined;
      if (principal.readOnly) {
        // A read-only key's transaction has nothing to commit: it ends with ROLLBACK, so nothing it
        // did outlives it (its NOTIFYs, the large objects PostgreSQL 15 writes in a READ ONLY one).
        await sessions.end(id, 'ROLLBACK', ownerKeyOf(principal), async (conn) => {
          if (txStatusOf(conn) === 'E') throw rolledBack();
        });
        return {};
      }
      const before = call ? (conn: BackendConnection, session: Session) => idempotency.beforeCommit(conn, session, call) : undefined;
      let result: { command: string };
      try {
        result = await sessions.end(id, 'COMMIT', ownerKeyOf(principal), before);
      } catch (e) {
        const err = toConnectError(e);
        // Not open here (finished, or the server restarted): the key's record says how it ended.
        if (call && err.findDetails(ErrorDetailSchema)[0]?.reason === ErrorReason.TRANSACTION_NOT_FOUND)
          return idempotency.resolveCommit(ctx.signal, id, call);
        throw err;
      }
      if (result.command === 'ROLLBACK') throw rolledBack();
      return {};
    },

    async rollback(req, ctx) {
      await sessions.end(c.transactionId(req.transactionId), 'ROLLBACK', ownerKeyOf(principalOf(ctx))).catch((e) => {
        throw toConnectError(e);
      });
      return {};
    },

    async savepoint(req, ctx) {
      const name = req.name || `sp_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6).toString(36)}`;
      if (!savepointName.test(name)) {
        throw serverError(Code.InvalidArgument, `invalid savepoint name ${JSON.stringify(name)}: use letters, digits and _`, {
          reason: ErrorReason.INVALID_REQUEST,
        });
      }
      await savepointCall('SAVEPOINT')({ transactionId: req.transactionId, name }, ctx);
      return { name };
    },

    rollbackToSavepoint: savepointCall('ROLLBACK TO SAVEPOINT'),
    releaseSavepoint: savepointCall('RELEASE SAVEPOINT'),

    async reserveSession(_req, ctx) {
      const session = await open(ctx, 'reserved', false).catch((e) => {
        throw toConnectError(e);
      });
      return { sessionId: session.id, idleTimeoutMs: options.transactionIdleTimeoutMs };
    },

    async releaseSession(req, ctx) {
      if (!req.sessionId) throw serverError(Code.InvalidArgument, 'session_id is required', { reason: ErrorReason.INVALID_REQUEST });
      await sessions.release(req.sessionId, ownerKeyOf(principalOf(ctx))).catch((e) => {
        throw toConnectError(e);
      });
      return {};
    },
  };
}

/** A Commit of a transaction in which a statement failed: PostgreSQL rolled it back. */
function rolledBack() {
  return serverError(Code.Aborted, 'the transaction was rolled back instead of committed, because a statement in it failed', {
    sqlstate: '25P02',
    reason: ErrorReason.TRANSACTION_ABORTED,
  });
}
