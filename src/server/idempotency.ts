/**
 * Idempotency keys: a write sent with `idempotency_key` is applied at most once, and a repeated
 * key is answered with the first outcome instead of running again. The record lives in the
 * backend database, in `heliosdb.idempotency_keys` (created on first use), so it survives a server
 * restart and is shared by every server on the same database.
 *
 * - Auto-commit calls (Query, Execute, ExecuteBatch, ExecutePrepared without a transaction id) run
 *   inside `BEGIN; INSERT key (state running); <the statement>; UPDATE key (state done, the
 *   serialized response); COMMIT`. The record commits exactly when the write does. A repeated key
 *   waits for an attempt still in progress (the primary key's lock), then returns the stored
 *   response; an attempt that rolled back left nothing, so the repeat runs afresh.
 * - Commit: the record (state done) is inserted inside the transaction just before COMMIT. A
 *   repeated Commit whose transaction is no longer open on this server (it committed already, the
 *   server restarted, or another server answers) inserts a tombstone (state abandoned) for the
 *   key: that waits for a commit in progress and makes a later one fail, so the answer ("it
 *   committed" or "it did not, and never will") is final.
 * - Records are keyed by (principal, key): one caller cannot read another's stored result. A key
 *   sent again with a different request fails with INVALID_ARGUMENT (IDEMPOTENCY_KEY_REUSED).
 * - Records expire after the server's window (`--idempotency-window-ms`, 24 h by default): older
 *   records are replaced by a new use of their key and deleted lazily.
 * - The server's database login needs SELECT, INSERT, UPDATE and DELETE on the table (it has them
 *   when it created it). Without them the server warns and runs keyed calls without protection,
 *   checking again every minute.
 * - Read-only callers skip all this (they cannot write), and so does a statement that ends the
 *   server's transaction itself (a script with COMMIT) or cannot run in one (VACUUM, CREATE
 *   DATABASE, ...): it runs as before, unprotected.
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import { create, type DescMessage, type Message, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type { Logger } from 'pino';
import { ErrorDetailSchema, ErrorReason } from '@heliosdb/client/wire';
import { ownerKeyOf, type Principal } from './auth/principal.js';
import type { Backend, BackendConnection } from './backend.js';
import { txStatusOf } from './backend/connection.js';
import { serverError, toConnectError } from './errors.js';
import type { Session } from './sessions.js';
import { cannotRunInBlock, fingerprintOf, type KeyedCall, replay, rowOf, Rows, runPipeline, byteaText } from './idempotency-records.js';
import {
  claimSql,
  doneSql,
  forgetSql,
  idempotencyGrantsSql,
  idempotencyCurrentSql,
  idempotencySchemaSql,
  idempotencyTable,
  lookupSql,
  recordSql,
  sweepSql,
  tombstoneSql,
} from './idempotency-sql.js';

export type { KeyedCall } from './idempotency-records.js';

const keyPattern = /^[A-Za-z0-9_.:~-]{1,200}$/;

/** What the server needs to know about a keyed call's connection. */
export interface KeyedConnection {
  /** The login role its statements run under (`session_user`), which prefixes its records. */
  loginRole: string;
}

/** See the file comment. */
export class Idempotency {
  private ok = false;
  private checkedAt = 0;
  private checking: Promise<void> | undefined;
  private lastSweep = Date.now();
  private sweeping = false;
  private readonly sweepEveryMs: number;
  /** The server's own login (`session_user` of anonymous callers' connections). */
  private serverRole = '';

  constructor(
    private readonly backend: Backend,
    /** How long records are kept, ms. */
    readonly windowMs: number,
    private readonly log: Logger,
  ) {
    this.sweepEveryMs = Math.min(Math.max(windowMs / 10, 1000), 10 * 60_000);
  }

  /**
   * Whether a call with `key` from `principal` takes the keyed path. Throws INVALID_ARGUMENT for a
   * malformed key.
   */
  applies(key: string, principal: Principal): boolean {
    if (!key) return false;
    if (!keyPattern.test(key)) {
      throw serverError(Code.InvalidArgument, 'idempotency_key must be 1 to 200 characters of A-Z a-z 0-9 _ . : ~ -', {
        reason: ErrorReason.INVALID_IDEMPOTENCY_KEY,
      });
    }
    return !principal.readOnly && this.usable();
  }

  /**
   * Creates the table and functions if the server's login may, and checks it can use them. Run
   * once at start-up, before any call holds a connection (on the embedded engine there is one).
   */
  async init(): Promise<void> {
    this.checkedAt = Date.now();
    try {
      this.ok = await this.backend.withServerConnection(async (conn) => {
        const [who] = (await conn.query('SELECT session_user::text AS u')).rows as { u: string }[];
        this.serverRole = who?.u ?? '';
        const [r] = (await conn.query(idempotencyCurrentSql)).rows as { ok: unknown; present: unknown }[];
        if (!(r?.ok === true || r?.ok === 't')) {
          try {
            await conn.query(idempotencySchemaSql);
          } catch (e) {
            // An older version that this login may not replace still works, unbounded.
            if (!(r?.present === true || r?.present === 't')) throw e;
            await conn.query('ROLLBACK').catch(() => {});
            this.log.warn(
              'the idempotency functions are of an older version that does not bound their arguments: run `heliosdb auth init` to update them',
            );
          }
        }
        await conn.query(idempotencyGrantsSql).catch(() => {}); // only the owner may grant
        const privileges = ['SELECT', 'INSERT', 'UPDATE', 'DELETE']
          .map((p) => `has_table_privilege('${idempotencyTable}', '${p}')`)
          .join(' AND ');
        const [g] = (await conn.query(`SELECT has_schema_privilege('heliosdb', 'USAGE') AND ${privileges} AS ok`)).rows as {
          ok: unknown;
        }[];
        return g?.ok === true || g?.ok === 't';
      });
    } catch (e) {
      this.ok = false;
      const sqlstate = (e as { code?: unknown }).code;
      if (sqlstate !== '42501') this.log.warn({ err: e }, 'idempotency keys: the check failed; trying again in a minute');
    }
    if (!this.ok) {
      this.log.warn(
        `idempotency keys are off: the server's database login cannot create or use ${idempotencyTable}; keyed writes run unprotected (run \`heliosdb auth init\` as an administrator)`,
      );
    }
  }

  /** Whether keys can be recorded now; after a failed check, checks again in the background once a minute. */
  private usable(): boolean {
    if (!this.ok && !this.checking && Date.now() - this.checkedAt > 60_000) {
      this.checking = this.init().finally(() => (this.checking = undefined));
    }
    if (this.ok && Date.now() - this.lastSweep >= this.sweepEveryMs && !this.sweeping) void this.sweep();
    return this.ok;
  }

  /** Deletes expired records (lazily, from time to time; best effort). */
  async sweep(): Promise<number> {
    this.sweeping = true;
    this.lastSweep = Date.now();
    try {
      return await this.backend.withServerConnection(async (conn) => {
        const r = await conn.query({ text: sweepSql, values: [String(this.windowMs)] });
        if (r.rowCount) this.log.debug({ deleted: r.rowCount }, 'expired idempotency records deleted');
        return r.rowCount ?? 0;
      });
    } catch (e) {
      this.log.debug({ err: e }, 'idempotency sweep failed');
      return 0;
    } finally {
      this.sweeping = false;
    }
  }

  /** A principal's part of a record's owner (the login role adds the rest). */
  private ownerOf(p: Principal): string {
    return createHash('sha256').update(ownerKeyOf(p)).digest('hex');
  }

  /** The full owner the functions store: `<session_user>/<principal part>`. */
  private fullOwnerOf(p: Principal): string {
    return `${p.login?.role ?? this.serverRole}/${this.ownerOf(p)}`;
  }

  private async rollback(conn: BackendConnection): Promise<void> {
    if (txStatusOf(conn) !== 'I') await conn.query('ROLLBACK').catch(() => {});
  }

  /**
   * Runs an auto-commit call's handler body `fn` on `conn` (already set up for the principal) inside
   * a transaction that also records the key; see the file comment.
   */
  async run<T>(conn: BackendConnection, signal: AbortSignal, call: KeyedCall, fn: () => Promise<T>): Promise<T | Message> {
    const owner = this.ownerOf(call.principal);
    const fingerprint = fingerprintOf(call);
    const keyParams = [owner, call.key, fingerprint, String(this.windowMs)];
    for (let attempt = 0; ; attempt++) {
      // 1. Open the transaction and claim the key (waits for an attempt in progress with the same key).
      const claimed = new Rows();
      let claimFailed = false;
      try {
        await runPipeline(
          this.backend,
          conn,
          [
            { text: 'BEGIN', values: [] },
            { text: claimSql, values: keyParams },
          ],
          { 1: claimed },
          signal,
        );
      } catch (e) {
        await this.rollback(conn);
        // A serialization failure of the claim (REPEATABLE READ or SERIALIZABLE by default): look again.
        if (signal.aborted || !(e instanceof ConnectError && e.code === Code.Aborted)) throw e;
        claimFailed = true;
      }
      const [cells] = claimed.rows;
      if (claimFailed || cells?.[0] !== 't') {
        // 2a. The key is taken: answer from its record.
        await this.rollback(conn);
        const row = claimFailed ? undefined : rowOf(cells?.slice(1));
        if (row) return replay(row, fingerprint, call.responseSchema, 'the request', this.windowMs);
        if (attempt >= 3)
          throw serverError(Code.Aborted, 'could not claim the idempotency key; retry', {
            reason: ErrorReason.IDEMPOTENCY_UNAVAILABLE,
            retryable: true,
          });
        continue; // the attempt holding it rolled back meanwhile
      }
      // 2b. Ours: run the call in the transaction.
      let out: T;
      try {
        out = await fn();
      } catch (e) {
        await this.rollback(conn);
        if (attempt === 0 && call.retryIf?.(e)) continue;
        if (cannotRunInBlock(e)) {
          throw serverError(
            Code.InvalidArgument,
            `${e instanceof ConnectError ? e.rawMessage : String(e)}: it cannot carry an idempotency key; send it without one`,
            {
              reason: ErrorReason.NOT_KEYABLE,
              sqlstate: '25001',
            },
          );
        }
        throw e;
      }
      if (txStatusOf(conn) === 'E') {
        await this.rollback(conn);
        throw serverError(Code.Internal, 'the statement left its transaction failed; it was rolled back', {
          reason: ErrorReason.IDEMPOTENCY_UNAVAILABLE,
        });
      }
      if (txStatusOf(conn) !== 'T') {
        // The statement ended the transaction itself (a procedure that commits, say): its outcome
        // could not be recorded with it. Forget the claim (if it was not committed with it).
        await runPipeline(this.backend, conn, [{ text: forgetSql, values: [owner, call.key] }], {}).catch(() => {});
        this.log.warn(
          { method: call.method },
          'a keyed statement ended the server transaction itself; its idempotency key was not recorded',
        );
        return out;
      }
      // 3. Record the response and commit. Not cancelled by the client leaving: a repeat finds the answer.
      const response = toBinary(call.responseSchema, create(call.responseSchema, out as never));
      try {
        // The caller's own settings (a statement_timeout it set in its script) do not apply to
        // the server's record of its outcome.
        await runPipeline(
          this.backend,
          conn,
          [
            { text: 'SET LOCAL statement_timeout = 0', values: [] },
            { text: doneSql, values: [owner, call.key, byteaText(response)] },
            { text: 'COMMIT', values: [] },
          ],
          {},
        );
      } catch (e) {
        await this.rollback(conn);
        throw e;
      }
      return out;
    }
  }

  /**
   * The Commit hook, run on the session's connection just before COMMIT: records the key inside
   * the transaction. Throws when the key already has a record (a retry elsewhere declared the
   * transaction abandoned) or cannot be written: the caller rolls back.
   */
  async beforeCommit(
    conn: BackendConnection,
    session: Session,
    call: Omit<KeyedCall, 'responseSchema'> & { responseSchema: DescMessage },
  ): Promise<void> {
    // A failed transaction block ends in ROLLBACK whatever is sent: nothing to record. A read-only
    // one wrote nothing.
    if (txStatusOf(conn) !== 'T' || session.readOnly) return;
    const owner = this.ownerOf(call.principal);
    const fingerprint = fingerprintOf(call);
    const response = toBinary(call.responseSchema, create(call.responseSchema, {} as never));
    const inserted = new Rows();
    try {
      await runPipeline(
        this.backend,
        conn,
        [
          { text: 'SET LOCAL statement_timeout = 0', values: [] },
          { text: recordSql, values: [owner, call.key, fingerprint, String(this.windowMs), byteaText(response)] },
        ],
        { 1: inserted },
      );
    } catch (e) {
      if (e instanceof ConnectError && e.findDetails(ErrorDetailSchema)[0]?.sqlstate === '25006') {
        throw serverError(
          Code.Aborted,
          'the transaction was made read-only after it began (transaction_read_only), so its commit could not be recorded with its idempotency key; it was rolled back',
          { reason: ErrorReason.TRANSACTION_ABORTED, sqlstate: '25006' },
        );
      }
      throw e;
    }
    if (inserted.rows[0]?.[0] !== 't') {
      throw serverError(
        Code.Aborted,
        'the transaction was rolled back: a retry of this Commit elsewhere already recorded that it did not commit',
        {
          reason: ErrorReason.TRANSACTION_ABORTED,
          sqlstate: '25P02',
        },
      );
    }
  }

  /**
   * A keyed Commit whose transaction is not open on this server: final answer from the record,
   * or a tombstone that makes "not committed" final (see the file comment).
   */
  resolveCommit(signal: AbortSignal, transactionId: string, call: KeyedCall): Promise<Message> {
    return this.settle(signal, call, `transaction ${JSON.stringify(transactionId)}`, () =>
      serverError(
        Code.NotFound,
        `transaction ${JSON.stringify(transactionId)} was not committed: it is not open on this server (the server restarted, or the connection to it was lost) and it never committed`,
        { reason: ErrorReason.TRANSACTION_NOT_FOUND },
      ),
    );
  }

  /**
   * Settles a keyed call whose answer was lost, without running it: its recorded response, or
   * `notApplied()` after a tombstone made sure it never will be applied (it waits for an attempt
   * still in progress).
   */
  async settle(signal: AbortSignal, call: KeyedCall, what: string, notApplied: () => ConnectError): Promise<Message> {
    const owner = this.fullOwnerOf(call.principal);
    const fingerprint = fingerprintOf(call);
    const result = await this.backend
      .withServerConnection(async (conn) => {
        const inserted = new Rows();
        const seen = new Rows();
        try {
          await runPipeline(
            this.backend,
            conn,
            [
              { text: tombstoneSql, values: [owner, call.key, fingerprint, String(this.windowMs)] },
              { text: lookupSql, values: [owner, call.key] },
            ],
            { 0: inserted, 1: seen },
            signal,
          );
        } catch (e) {
          if (signal.aborted || !(e instanceof ConnectError && e.code === Code.Aborted)) throw e;
          await this.rollback(conn);
          await runPipeline(this.backend, conn, [{ text: lookupSql, values: [owner, call.key] }], { 0: seen });
        }
        return { tombstoned: inserted.rows.length > 0, row: rowOf(seen.rows[0]) };
      })
      .catch((e) => {
        throw toConnectError(e);
      });
    if (result.tombstoned) throw notApplied();
    if (!result.row)
      throw serverError(Code.Aborted, 'the outcome could not be read; retry', {
        reason: ErrorReason.IDEMPOTENCY_UNAVAILABLE,
        retryable: true,
      });
    return replay(result.row, fingerprint, call.responseSchema, what, this.windowMs);
  }
}
