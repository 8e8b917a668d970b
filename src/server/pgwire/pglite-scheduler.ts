/**
 * The session scheduler of the embedded engine's PostgreSQL port, in the manner of PgBouncer's
 * transaction mode over PGlite's one session: a client holds the session from its first message
 * until it is idle outside a transaction block (./pglite-session.ts); others wait in order. The
 * session comes from the backend's pool like any call's, so gRPC and HTTP calls get their turn too
 * (it goes back when no client of this port waits, or when calls wait for it).
 *
 * When the session passes to another client, the settings of the client that had it are read back
 * (when it ran SET or RESET) and the next one's applied (`RESET ALL`, then its own), and its role
 * set when authentication is required; its prepared statements are made again after PGlite was
 * reset between holders, and those of clients that left are closed.
 * @packageDocumentation
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Backend, BackendConnection } from '../backend.js';
import { stateOf } from '../backend/connection.js';
import type { LoginResolver } from '../backend/logins.js';
import { recycle } from '../backend/recycle.js';
import type { NotificationHub, Subscriber, Subscription } from '../notifications.js';
import type { ResolvedServerOptions } from '../options.js';
import { reportedParameters } from '../pglite/messages.js';
import { quoteIdent, quoteLiteral } from '../sql-quote.js';
import { endWithFatal, type PgClient } from './client.js';
import { MessageFramer } from './framing.js';
import {
  authenticationOk,
  backendKeyData,
  cstr,
  cstringAt,
  dataRowCells,
  errorFieldsOf,
  message,
  parameterStatus,
  queryMessage,
  readyForQuery,
  syncMessage,
} from './messages.js';
import { PgliteSession, type SessionHost } from './pglite-session.js';
import { failAndSync, resetSql, startupSettings } from './pglite-turns.js';

/** What the scheduler needs. */
export interface SchedulerDeps {
  backend: Backend;
  logins: LoginResolver;
  options: ResolvedServerOptions;
  /** The server's notification hub, which the clients' LISTENs subscribe to. */
  hub: NotificationHub | undefined;
  log: Logger;
}

/** How long the session is kept after the last client's turn, for the next one, ms. */
const lingerMs = 50;

/**
 * How long a client that left may still hold the session for the answers it was owed, ms: then
 * the engine connection is reset, so that nothing a departed client started keeps every other
 * client and call waiting.
 */
export const goneHolderMs = 30_000;

interface Turn {
  session: PgliteSession;
  /** The session is this turn's; `prepared` is how preparing it went. */
  start(prepared: ExchangeResult): void;
  fail(e: unknown): void;
}

interface ExchangeResult {
  rows: (string | null)[][];
  errors: Record<string, string>[];
  /** The error fields of each ReadyForQuery's part, in order (undefined: it went well). */
  parts: (Record<string, string> | undefined)[];
}

/** See the file comment. */
export class PgliteScheduler implements SessionHost {
  readonly authRequired: boolean;
  readonly maxCopyBytes: number;
  readonly idleInTransactionTimeoutMs: number;
  private conn: BackendConnection | undefined;
  private stream: Duplex | undefined;
  private saved: ((...a: unknown[]) => void)[] = [];
  private gen = 0;
  private holder: PgliteSession | undefined;
  private last: PgliteSession | undefined;
  private needsRollback = false;
  /** A client left inside an extended exchange: the engine needs a Sync before anything else. */
  private needsSync = false;
  private closes: string[] = [];
  private queue: Turn[] = [];
  private turning = false;
  private lingering: NodeJS.Timeout | undefined;
  private internal:
    | {
        framer: MessageFramer;
        zLeft: number;
        result: ExchangeResult;
        partError?: Record<string, string>;
        resolve: (r: ExchangeResult) => void;
        reject: (e: Error) => void;
      }
    | undefined;
  private closed = false;
  private goneTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: SchedulerDeps) {
    this.authRequired = deps.options.auth === 'required';
    this.maxCopyBytes = deps.options.maxCopyBytes;
    this.idleInTransactionTimeoutMs = Math.max(0, deps.options.pgIdleInTransactionTimeoutMs);
  }

  /** Serves one authenticated client until it leaves. */
  async serve(client: PgClient, registerCancel: (fn: () => void) => void): Promise<void> {
    let settings: [string, string][];
    try {
      settings = startupSettings(client.params);
    } catch (e) {
      endWithFatal(client.socket, { code: '42601', message: (e as Error).message });
      return;
    }
    const session = new PgliteSession(client, this, settings, this.deps.options.maxMessageBytes);
    registerCancel(() => session.cancel());
    const closed = new Promise<void>((resolve) => client.socket.once('close', () => resolve()));
    let reported: [string, string][];
    try {
      reported = await new Promise<[string, string][]>((resolve, reject) => {
        this.enqueue({
          session,
          start: (prepared) => {
            const failed = prepared.errors[0];
            if (failed) {
              this.idle(session);
              reject(Object.assign(new Error(failed.M ?? 'invalid start-up setting'), { code: failed.C }));
              return;
            }
            this.reportedParams().then((r) => {
              this.idle(session);
              resolve(r);
            }, reject);
          },
          fail: reject,
        });
      });
    } catch (e) {
      const f = e as { code?: string; message?: string };
      endWithFatal(client.socket, { code: f.code ?? '08006', message: f.message ?? String(e) });
      session.close();
      return;
    }
    client.socket.write(
      Buffer.concat([
        authenticationOk(),
        ...reported.map(([k, v]) => parameterStatus(k, v)),
        backendKeyData(client.key.processId, client.key.secretKey),
        readyForQuery('I'),
      ]),
    );
    session.start();
    await closed;
  }

  want(s: PgliteSession): void {
    if (this.holder === s || this.queue.some((t) => t.session === s)) return;
    this.enqueue({
      session: s,
      start: () => s.activated(),
      fail: (e) => {
        const code = (e as { code?: string }).code;
        endWithFatal(
          s.client.socket,
          code
            ? { code, message: (e as Error).message }
            : { code: '08006', message: `the embedded engine is unavailable: ${(e as Error).message}` },
        );
        s.close();
      },
    });
  }

  write(s: PgliteSession, data: Buffer): void {
    if (this.holder === s && this.stream) this.stream.write(data);
  }

  idle(s: PgliteSession): void {
    if (this.holder !== s) return;
    if (this.goneTimer) clearTimeout(this.goneTimer);
    this.goneTimer = undefined;
    this.holder = undefined;
    this.last = s;
    if (s.closed && s.unsynced) this.needsSync = true;
    if (s.closed) this.forget(s);
    void this.next();
  }

  gone(s: PgliteSession): void {
    this.queue = this.queue.filter((t) => t.session !== s);
    if (this.holder === s) {
      if (!s.busy) {
        this.idle(s);
        return;
      }
      // It gives the session back when its last answer arrives (PgliteSession.afterAnswers); should
      // that never come, the engine connection is reset.
      if (this.goneTimer) clearTimeout(this.goneTimer);
      this.goneTimer = setTimeout(() => {
        this.goneTimer = undefined;
        if (this.holder === s) this.broken(s, `a client that left still held the session after ${goneHolderMs} ms`);
      }, goneHolderMs);
      this.goneTimer.unref();
      return;
    }
    this.forget(s);
  }

  broken(s: PgliteSession, reason: string): void {
    if (this.holder !== s || !this.conn) return;
    this.deps.log.warn({ pgClient: s.client.id, reason }, 'pg port: resetting the embedded engine connection');
    this.holder = undefined;
    this.internal?.reject(new Error('the embedded engine connection was reset'));
    this.internal = undefined;
    this.gen++;
    this.detach(true);
    if (!s.closed) {
      endWithFatal(s.client.socket, { code: '08P01', message: `terminating connection: ${reason}` });
      s.close();
    }
    void this.next();
  }

  async listen(s: PgliteSession, channel: string, sub: Subscriber): Promise<Subscription> {
    const hub = this.deps.hub;
    if (!hub) throw Object.assign(new Error('notifications are not available on this server'), { code: '0A000' });
    const conn = this.conn;
    if (this.holder !== s || !conn) throw new Error('the embedded engine session is not held');
    const r = await this.exchange(queryMessage(`LISTEN ${quoteIdent(channel)}`), 1);
    const failed = r.errors[0];
    if (failed) throw Object.assign(new Error(failed.M ?? 'LISTEN failed'), { code: failed.C });
    return hub.adoptEngineListen(channel, sub, conn);
  }

  notification(msg: Buffer): void {
    const processId = msg.readInt32BE(5);
    const [channel, at] = cstringAt(msg, 9);
    const [payload] = cstringAt(msg, at);
    this.deps.hub?.deliverEngineNotification({ channel, payload, processId });
  }

  copyFrom(sql: string, data: Buffer): Promise<{ rowCount: number; txStatus: string }> {
    const conn = this.conn;
    if (!conn || !this.deps.backend.copyFromBlob) return Promise.reject(new Error('the embedded engine session is not held'));
    return this.deps.backend
      .copyFromBlob(conn, sql, data)
      .then((r) => ({ rowCount: r.rowCount, txStatus: (conn as unknown as { _txStatus: string })._txStatus }));
  }

  /** Ends every client and gives the session back. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue) t.fail(new Error('the server is shutting down'));
    this.queue = [];
    this.holder?.close();
    if (this.conn) this.detach(true);
  }

  /** A client that left: its statements are closed at the next turn (they exist in this generation only). */
  private forget(s: PgliteSession): void {
    if (this.holder === s) return;
    if (s.txStatus !== 'I' && this.last === s) this.needsRollback = true;
    if (s.preparedGen === this.gen && this.conn) this.closes.push(...s.prepared.keys());
    s.prepared.clear();
  }

  private enqueue(t: Turn): void {
    if (this.closed) {
      t.fail(new Error('the server is shutting down'));
      return;
    }
    this.queue.push(t);
    void this.next();
  }

  private async next(): Promise<void> {
    if (this.holder || this.turning || this.closed) return;
    const turn = this.queue.shift();
    if (!turn) {
      this.linger();
      return;
    }
    if (this.lingering) clearTimeout(this.lingering);
    this.lingering = undefined;
    this.turning = true;
    let prepared: ExchangeResult;
    try {
      if (this.conn && this.deps.backend.stats().waiting > 0) await this.giveBack();
      if (!this.conn) await this.take(turn.session);
      prepared = await this.switchTo(turn.session);
    } catch (e) {
      this.turning = false;
      turn.fail(e);
      void this.next();
      return;
    }
    this.turning = false;
    if (turn.session.closed) {
      this.last = turn.session;
      void this.next();
      return;
    }
    this.holder = turn.session;
    turn.start(prepared);
  }

  /** Keeps the session a little for the next client, unless calls wait for it. */
  private linger(): void {
    if (!this.conn || this.lingering) return;
    const until = Date.now() + lingerMs;
    const check = (): void => {
      this.lingering = undefined;
      if (this.holder || this.turning || !this.conn) return;
      if (this.queue.length) {
        void this.next();
        return;
      }
      if (this.deps.backend.stats().waiting > 0 || Date.now() >= until) {
        this.turning = true;
        this.giveBack()
          .catch((err) => this.deps.log.warn({ err }, 'pg port: giving the embedded engine session back failed'))
          .finally(() => {
            this.turning = false;
            void this.next();
          });
        return;
      }
      this.lingering = setTimeout(check, 2);
    };
    this.lingering = setTimeout(check, 2);
  }

  private async take(s: PgliteSession): Promise<void> {
    await this.deps.logins.ready(s.client.principal);
    const conn = await this.deps.backend.acquire(this.deps.logins.loginOf(s.client.principal));
    const stream = (conn as unknown as { connection: { stream: Duplex } }).connection.stream;
    this.saved = stream.listeners('data') as ((...a: unknown[]) => void)[];
    stream.removeAllListeners('data');
    stream.on('data', this.onData);
    stream.once('close', this.onEngineClose);
    this.conn = conn;
    this.stream = stream;
    this.gen++;
    this.last = undefined;
    this.closes = [];
    this.needsRollback = false;
    this.needsSync = false;
  }

  private async giveBack(): Promise<void> {
    if (!this.conn) return;
    if (this.needsSync) await this.exchange(failAndSync, 1);
    this.needsSync = false;
    await this.snapshotLast();
    if (this.needsRollback) await this.exchange(queryMessage('ROLLBACK'), 1);
    this.detach(false);
  }

  private detach(destroy: boolean): void {
    const conn = this.conn!;
    const stream = this.stream!;
    stream.removeListener('data', this.onData);
    stream.removeListener('close', this.onEngineClose);
    for (const l of this.saved) stream.on('data', l);
    this.saved = [];
    this.conn = undefined;
    this.stream = undefined;
    this.last = undefined;
    this.closes = [];
    this.needsRollback = false;
    // Its settings, role and statements are gone after the backend's reset.
    stateOf(conn).dirty = true;
    (conn as unknown as { _txStatus: string })._txStatus = 'I';
    void recycle(this.deps.backend, conn, { destroy });
  }

  /** Reads back the settings of the client that had the session, when it changed them. */
  private async snapshotLast(): Promise<void> {
    const last = this.last;
    if (!last || last.closed || !last.settingsDirty) return;
    const role = this.authRequired ? '' : " UNION ALL SELECT 'role', current_user::text WHERE current_user <> session_user";
    const r = await this.exchange(
      queryMessage(
        `SELECT name, current_setting(name) FROM pg_settings WHERE source = 'session' AND name NOT IN ('role', 'session_authorization')${role}`,
      ),
      1,
    );
    if (r.errors.length === 0) {
      last.settings = r.rows.map(([k, v]) => [k ?? '', v ?? '']);
      last.settingsDirty = false;
    }
  }

  private async switchTo(s: PgliteSession): Promise<ExchangeResult> {
    if (this.needsSync) await this.exchange(failAndSync, 1);
    this.needsSync = false;
    const parts: Buffer[] = [];
    let z = 0;
    const rollback = this.needsRollback;
    this.needsRollback = false;
    // Each step its own Query, so that one failing leaves the others applied.
    let settings: [string, string][] = [];
    let rolePart = -1;
    const reset = this.last !== s;
    if (reset) {
      await this.snapshotLast();
      parts.push(queryMessage(resetSql(rollback, this.deps.hub?.engineChannels() ?? [])));
      z++;
      settings = s.settings.filter(([k]) => !(this.authRequired && k === 'role'));
      for (const [k, v] of settings) parts.push(queryMessage(`SELECT set_config(${quoteLiteral(k)}, ${quoteLiteral(v)}, false)`));
      z += settings.length;
      const role = s.client.principal.role;
      if (this.authRequired && role) {
        parts.push(queryMessage(`SET ROLE ${quoteIdent(role)}`));
        rolePart = z++;
      }
    } else if (rollback) {
      parts.push(queryMessage('ROLLBACK'));
      z++;
    }
    const first = z;
    const made = s.preparedGen !== this.gen ? [...s.prepared] : [...s.deferred];
    for (const [, parse] of made) {
      parts.push(parse, syncMessage);
      z++;
    }
    s.preparedGen = this.gen;
    s.deferred.clear();
    if (this.closes.length) {
      for (const name of this.closes) parts.push(message('C', Buffer.concat([Buffer.from('S'), cstr(name)])));
      parts.push(syncMessage);
      z++;
      this.closes = [];
    }
    this.last = s;
    if (z === 0) return { rows: [], errors: [], parts: [] };
    const r = await this.exchange(Buffer.concat(parts), z);
    if (settings.length) {
      // The reset came first; a setting that no longer applies (its object dropped) is dropped.
      const failed = new Set(settings.filter((_, i) => r.parts[1 + i]).map(([k]) => k));
      if (failed.size) s.settings = s.settings.filter(([k]) => !failed.has(k));
    }
    const stepFailed = (reset ? r.parts[0] : undefined) ?? (rolePart >= 0 ? r.parts[rolePart] : undefined);
    if (stepFailed) {
      // Never a turn under another client's role or settings: the client is ended instead.
      throw Object.assign(new Error(`the session could not be prepared for this client: ${stepFailed.M ?? 'failed'}`), {
        code: stepFailed.C ?? 'XX000',
      });
    }
    made.forEach(([name], i) => {
      const e = r.parts[first + i];
      if (e) s.failedParses.set(name, { code: e.C ?? 'XX000', message: e.M ?? 'the statement could not be prepared' });
    });
    if (r.errors.length)
      this.deps.log.debug({ errors: r.errors, pgClient: s.client.id }, 'pg port: preparing the session for a client failed in part');
    return r;
  }

  private async reportedParams(): Promise<[string, string][]> {
    const names = reportedParameters.map((n) => quoteLiteral(n)).join(', ');
    const r = await this.exchange(queryMessage(`SELECT n, current_setting(n, true) FROM unnest(ARRAY[${names}]) n`), 1);
    if (r.errors.length) throw Object.assign(new Error(r.errors[0]!.M ?? 'start-up failed'), { code: r.errors[0]!.C });
    return r.rows.filter(([, v]) => v !== null).map(([k, v]) => [k!, v!]);
  }

  /** Sends internal messages and collects their answers up to `zCount` ReadyForQuery. */
  private exchange(data: Buffer, zCount: number): Promise<ExchangeResult> {
    return new Promise((resolve, reject) => {
      if (!this.stream) {
        reject(new Error('the embedded engine session is not held'));
        return;
      }
      this.internal = {
        framer: new MessageFramer(0x7fffffff),
        zLeft: zCount,
        result: { rows: [], errors: [], parts: [] },
        resolve,
        reject,
      };
      this.stream.write(data);
    });
  }

  private readonly onData = (chunk: Buffer): void => {
    const x = this.internal;
    if (!x) {
      this.holder?.engineData(chunk);
      return;
    }
    x.framer.push(chunk);
    for (;;) {
      const msg = x.framer.nextTyped();
      if (!msg) return;
      if (msg[0] === 0x44 /* D */) x.result.rows.push(dataRowCells(msg));
      else if (msg[0] === 0x41 /* A */) this.notification(msg);
      else if (msg[0] === 0x45 /* E */) {
        const e = errorFieldsOf(msg);
        x.result.errors.push(e);
        x.partError ??= e;
      } else if (msg[0] === 0x5a /* Z */) {
        x.result.parts.push(x.partError);
        x.partError = undefined;
        if (--x.zLeft > 0) continue;
        this.internal = undefined;
        x.resolve(x.result);
        const rest = x.framer.drain();
        if (rest.length) this.holder?.engineData(rest);
        return;
      }
    }
  };

  private readonly onEngineClose = (): void => {
    const holder = this.holder;
    this.conn = undefined;
    this.stream = undefined;
    this.saved = [];
    this.gen++;
    this.holder = undefined;
    this.last = undefined;
    this.internal?.reject(new Error('the embedded engine connection closed'));
    this.internal = undefined;
    if (holder) {
      endWithFatal(holder.client.socket, { code: '57P01', message: 'terminating connection: the embedded engine session ended' });
      holder.close();
    }
    void this.next();
  };
}
