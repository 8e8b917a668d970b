/**
 * The connection a call's statements run on: the call's transaction or reserved session, or, in
 * auto-commit, a pooled connection of the principal's own login (./backend/logins.ts) that is
 * cleared of everything the call left on it before anyone else gets it. A call whose deadline
 * passes or whose client leaves is answered at once, even when the engine cannot stop the
 * statement (the embedded one); its connection goes back only once the statement has ended.
 * @packageDocumentation
 */
import { Code, ConnectError } from '@connectrpc/connect';
import type { Logger } from 'pino';
import { ErrorDetailSchema, ErrorReason } from '@heliosdb/client/wire';

import { ownerKeyOf, type Principal, principalOf } from '../auth/principal.js';
import { quoteIdent, quoteLiteral } from '../sql-quote.js';
import type { Backend, BackendConnection, BackendLogin } from '../backend.js';
import { stateOf, txStatusOf } from '../backend/connection.js';
import type { LoginResolver } from '../backend/logins.js';
import { recycle } from '../backend/recycle.js';
import { abortError, applicationNameHeader, type CallContext } from '../call-context.js';
import { serverError, toConnectError } from '../errors.js';
import type { Idempotency, KeyedCall } from '../idempotency.js';
import { raceAbort, type SessionManager } from '../sessions.js';
import type { CallFrame, Guard } from './statement-policy.js';

/** What a scope needs. */
export interface ScopeDeps {
  backend: Backend;
  sessions: SessionManager;
  logins: LoginResolver;
  idempotency: Idempotency;
  log: Logger;
}

/** The frame a call runs in and who it is. */
export interface CallScope {
  readonly frame: CallFrame;
  readonly principal: Principal;
}

/** How a call runs. */
export interface ScopeOptions {
  /** An auto-commit write with an idempotency key (./idempotency.ts). */
  keyed?: KeyedCall;
  /** The guard of its statements, for the errors a refused write gives. */
  guard?: Guard;
  /**
   * Its statements may commit part of their work themselves (a script with COMMIT, CALL, DO): a
   * failure after that is never marked safe to send again.
   */
  selfCommitting?: boolean;
}

/** Whether `e` left its connection unusable (not an ordinary database error). */
export function isBrokenConnection(e: unknown): boolean {
  if (!e || typeof e !== 'object') return true;
  const sev = (e as { severity?: string }).severity;
  if (sev === undefined) return !(e instanceof ConnectError);
  return sev === 'FATAL' || sev === 'PANIC';
}

/** The frame a request's transaction id names (a session id says which kind). */
export function frameOf(deps: ScopeDeps, txId: string): CallFrame {
  if (!txId) return 'autocommit';
  return deps.sessions.kindOf(txId) === 'reserved' ? 'session' : 'transaction';
}

/** The application name a call asks for ('' for the default). */
function appNameOf(ctx: CallContext): string {
  return (ctx.requestHeader.get(applicationNameHeader) ?? '').slice(0, 63);
}

/**
 * Brings a connection to the call's identity and application name: on the embedded engine the
 * principal's role is switched per call; on PostgreSQL the login role starts in it.
 */
export async function prepareConnection(backend: Backend, conn: BackendConnection, login: BackendLogin, appName: string): Promise<void> {
  const s = stateOf(conn);
  let sql = '';
  const role = backend.engine === 'pglite' ? (login.role ?? '') : s.role;
  if (role !== s.role) sql += role ? `SET ROLE ${quoteIdent(role)}; ` : 'RESET ROLE; ';
  if (appName !== s.appName) sql += `SET application_name = ${quoteLiteral(appName || backend.defaultApplicationName)}`;
  if (!sql) return;
  await conn.query(sql);
  s.role = role;
  s.appName = appName;
  s.dirty = true;
}

/** The error a statement's failure becomes for the caller. */
function callError(e: unknown, principal: Principal, opts: ScopeOptions, autocommitStarted: boolean, aborted: boolean): ConnectError {
  if (aborted) return e instanceof ConnectError ? e : toConnectError(e);
  if (autocommitStarted && !opts.keyed && e && typeof e === 'object' && !('severity' in e) && !(e instanceof ConnectError)) {
    const message = (e as { message?: string }).message ?? String(e);
    // pg refuses to send on a connection it already knows is dead: nothing ran, send it again.
    if (/not queryable/i.test(message)) {
      return serverError(Code.Unavailable, `the database connection was lost before the statement was sent: ${message}`, {
        reason: ErrorReason.BACKEND_UNAVAILABLE,
        retryable: true,
        retryAfterMs: 100,
      });
    }
    return serverError(
      Code.Unavailable,
      `the database connection was lost while the statement ran, so it may or may not have been applied: ${message}`,
      {
        reason: ErrorReason.BACKEND_CONNECTION_LOST,
        retryable: false,
      },
    );
  }
  const ce = e instanceof ConnectError ? e : toConnectError(e);
  const detail = ce.findDetails(ErrorDetailSchema)[0];
  // A syntax error (42601) stops a script before PostgreSQL runs any of it: nothing committed.
  if (opts.selfCommitting && detail && !detail.reason && detail.sqlstate !== '42601') {
    // What the script committed itself before the failure stays committed, as in PostgreSQL.
    return serverError(
      ce.code,
      `${ce.rawMessage} (the call commits or runs outside a transaction block itself: what it committed before this error stays committed, so do not send it again as it is)`,
      {
        ...detail,
        retryable: false,
        retryAfterMs: 0,
      },
    );
  }
  if (detail?.sqlstate === '25006') {
    if (principal.readOnly) {
      return serverError(Code.PermissionDenied, `${ce.rawMessage} (the API key is read-only)`, {
        ...detail,
        reason: ErrorReason.READ_ONLY_PRINCIPAL,
      });
    }
    if (opts.guard === 'read') {
      return serverError(
        Code.FailedPrecondition,
        `the call was sent as a read, but it writes: ${ce.rawMessage}; nothing was applied (the client sends it again as a write)`,
        {
          ...detail,
          reason: ErrorReason.NOT_A_READ,
          retryable: false,
        },
      );
    }
  }
  return ce;
}

/**
 * Runs `fn` on the connection of the call's transaction or reserved session (`txId`), or on a
 * pooled one in auto-commit, as the caller's principal; see the file comment.
 */
export async function withConnection<T>(
  deps: ScopeDeps,
  ctx: CallContext,
  txId: string,
  fn: (conn: BackendConnection, scope: CallScope) => Promise<T>,
  opts: ScopeOptions = {},
): Promise<T> {
  if (ctx.signal.aborted) throw abortError(ctx.signal);
  const principal = principalOf(ctx);
  const appName = appNameOf(ctx);
  if (txId) {
    const frame = frameOf(deps, txId);
    return deps.sessions
      .use(
        txId,
        async (conn) => {
          await prepareConnection(deps.backend, conn, loginOfSession(deps, principal), appName);
          return fn(conn, { frame, principal });
        },
        ownerKeyOf(principal),
        undefined,
        ctx.signal,
      )
      .catch((e) => {
        throw callError(e, principal, opts, false, ctx.signal.aborted);
      });
  }
  await deps.logins.ready(principal);
  const login = deps.logins.loginOf(principal);
  let conn: BackendConnection;
  try {
    conn = await deps.backend.acquire(login, ctx.signal);
  } catch (e) {
    if (ctx.signal.aborted) throw abortError(ctx.signal);
    throw loginError(e, principal);
  }
  let started = false;
  const work = (async () => {
    if (ctx.signal.aborted) throw abortError(ctx.signal);
    await prepareConnection(deps.backend, conn, login, appName);
    if (ctx.signal.aborted) throw abortError(ctx.signal);
    stateOf(conn).dirty = true;
    started = true;
    const scope: CallScope = { frame: 'autocommit', principal };
    return opts.keyed ? ((await deps.idempotency.run(conn, ctx.signal, opts.keyed, () => fn(conn, scope))) as T) : fn(conn, scope);
  })();
  let out: T;
  try {
    out = await raceAbort(work, ctx.signal);
  } catch (e) {
    // Given back once the statement has ended (at once, unless the call was answered early).
    work.then(
      () => recycle(deps.backend, conn),
      (err) => recycle(deps.backend, conn, { destroy: isBrokenConnection(err) && !ctx.signal.aborted }),
    );
    throw callError(e, principal, opts, started, ctx.signal.aborted);
  }
  // A script that opened a block and left it open: rolled back (by recycle), and said so.
  const leftOpen = txStatusOf(conn) === 'T' && !opts.keyed;
  void recycle(deps.backend, conn);
  if (leftOpen) {
    throw serverError(
      Code.FailedPrecondition,
      'the statement left a transaction block open outside a transaction session, so it was rolled back; use BeginTransaction (client.begin / client.transaction) for transactions',
      { reason: ErrorReason.TRANSACTION_CONTROL_OUTSIDE_SESSION },
    );
  }
  return out;
}

/** A session's connection was opened for its principal; the role is set on it (see sessions). */
function loginOfSession(deps: ScopeDeps, principal: Principal): BackendLogin {
  return deps.logins.loginOf(principal);
}

/** A failure to get a connection: the login role's, the pool's or the database's. */
export function loginError(e: unknown, principal: Principal): ConnectError {
  if (e instanceof ConnectError) return e;
  const sqlstate = (e as { code?: unknown } | null)?.code;
  if (typeof sqlstate === 'string' && sqlstate.startsWith('28')) {
    return serverError(
      Code.FailedPrecondition,
      `the server could not log in to PostgreSQL as ${principal.user ? `the login role of user ${JSON.stringify(principal.user)}` : 'its own login'}: ${(e as Error).message} (an administrator can repair it with \`heliosdb user create ${principal.user || 'NAME'} --role ROLE --replace\`)`,
      { reason: ErrorReason.BACKEND_LOGIN_FAILED },
    );
  }
  return toConnectError(e);
}
