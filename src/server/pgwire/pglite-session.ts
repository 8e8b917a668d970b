/**
 * One client of the embedded engine's PostgreSQL port: its messages, queued (./pglite-pending.ts)
 * until the scheduler (./pglite-scheduler.ts) gives it PGlite's one session, then forwarded with
 * its statement and portal names mapped (./statement-names.ts) and what cannot be isolated replaced
 * by a statement that raises the refusal (./statement-rules.ts), so the answers keep their order
 * (./pglite-exchanges.ts); the engine's answers go back as they are, except the completions of
 * those replacements. Message types the port does not handle end the client (./pglite-frontend.ts).
 * It gives the session back at ReadyForQuery when idle outside a transaction block with nothing
 * more to send, also when the client left while answers were owed (once the last one came). An
 * engine FATAL, or a ReadyForQuery no exchange was owed, resets the engine connection instead.
 *
 * COPY FROM STDIN (one statement in a simple Query) is played here (./pglite-copy.ts). A
 * CancelRequest removes the client's queued work with 57014; a statement that already runs in
 * PGlite cannot be interrupted. Terminate is handled in order, after what came before is answered.
 *
 * A client that holds the one session every other client waits for, idle inside a transaction
 * block, inside an extended exchange without its Sync, or in COPY FROM STDIN without sending, gets
 * FATAL 25P03 after `--pg-idle-in-transaction-timeout-ms`, as from PostgreSQL's
 * `idle_in_transaction_session_timeout`, and is disconnected; the scheduler rolls its transaction
 * back before the next client's turn.
 *
 * LISTEN and UNLISTEN (alone in a simple Query, outside a transaction block) are played per client:
 * the scheduler listens on the one session for the server's notification hub (../notifications.ts),
 * which hands each notification to this client's subscription as to a Listen stream; it reaches
 * the client as a NotificationResponse while it is idle outside a transaction block, as from
 * PostgreSQL (./pglite-listens.ts). A client's subscriptions end with it.
 * @packageDocumentation
 */
import type { Subscriber, Subscription } from '../notifications.js';
import { endWithFatal, type PgClient } from './client.js';
import { CopyIn } from './pglite-copy.js';
import { type Exchange, isClientsCompletion, isFatal, newExchange } from './pglite-exchanges.js';
import { ClientListens } from './pglite-listens.js';
import { forwardedTypes, functionCallRefusal, unexpectedMessage } from './pglite-frontend.js';
import { PendingQueue } from './pglite-pending.js';
import { MessageFramer } from './framing.js';
import {
  commandComplete,
  copyInResponse,
  cstr,
  cstringAt,
  errorResponse,
  message,
  parseFields,
  ProtocolViolation,
  queryMessage,
  queryText,
  readyForQuery,
  syncMessage,
} from './messages.js';
import { quoteIdent } from '../sql-quote.js';
import { renameMessage, StatementNames } from './statement-names.js';
import { judgeSql, refusalSql } from './statement-rules.js';

const parseComplete = message('1', Buffer.alloc(0));

/** What a session needs from the scheduler. */
export interface SessionHost {
  readonly authRequired: boolean;
  readonly maxCopyBytes: number;
  /** How long a client may be idle inside a transaction block, ms (0: no limit). */
  readonly idleInTransactionTimeoutMs: number;
  /** The session has messages to send and does not hold the engine. */
  want(s: PgliteSession): void;
  /** Sends bytes to the engine (the holder only). */
  write(s: PgliteSession, data: Buffer): void;
  /** The holder is done: idle outside a transaction, nothing to send. */
  idle(s: PgliteSession): void;
  /** The client is gone. */
  gone(s: PgliteSession): void;
  /**
   * The holder's exchange with the engine cannot go on (the engine sent FATAL, or answers no
   * exchange asked for): the engine connection is reset and the client ended.
   */
  broken(s: PgliteSession, reason: string): void;
  /**
   * Listens on `channel` on the held session and subscribes `sub` to it (the server's notification
   * hub); resolves with the subscription.
   */
  listen(s: PgliteSession, channel: string, sub: Subscriber): Promise<Subscription>;
  /** A NotificationResponse the engine sent to the holder: for the hub's subscribers. */
  notification(msg: Buffer): void;
  /** Runs `COPY ... FROM '/dev/blob'` with `data` on the held session. */
  copyFrom(sql: string, data: Buffer): Promise<{ rowCount: number; txStatus: string }>;
}

/** See the file comment. */
export class PgliteSession {
  /** The engine's prepared statements of this client, by engine name: the Parse that made each. */
  readonly prepared = new Map<string, Buffer>();
  /**
   * Named statements answered here while another client held the engine (a Parse-only exchange,
   * as libpq's PQprepare sends): made in the engine when this client next takes it.
   */
  readonly deferred = new Map<string, Buffer>();
  /** Deferred statements the engine refused: the error their first use gets. */
  readonly failedParses = new Map<string, { code: string; message: string }>();
  /** The engine generation {@link prepared} exist in (the scheduler bumps it when PGlite was reset). */
  preparedGen = 0;
  /** Settings to apply when this client takes the engine (start-up ones, then what it SET). */
  settings: [string, string][];
  /** It ran SET or RESET since its settings were last read back. */
  settingsDirty = false;
  holder = false;
  closed = false;
  txStatus = 'I';
  private readonly names: StatementNames;
  private readonly framer: MessageFramer;
  private readonly engineFramer: MessageFramer;
  private readonly pending: PendingQueue;
  /** It sent Terminate: it ends once what it sent before is answered. */
  private terminating = false;
  private outstanding = 0;
  private exchanges: Exchange[] = [];
  /** The extended exchange being sent (in {@link exchanges} once its first message is). */
  private current: Exchange | undefined;
  private skipUntilSync = false;
  private discardUntilSync = false;
  private copy: CopyIn | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  /** This client's LISTENs and the notifications they brought. */
  private readonly listens: ClientListens;
  /** A LISTEN being played: the messages after it wait. */
  private listening = false;

  constructor(
    readonly client: PgClient,
    private readonly host: SessionHost,
    settings: [string, string][],
    maxMessageBytes: number,
  ) {
    this.settings = settings;
    this.names = new StatementNames(client.id);
    this.pending = new PendingQueue(client.socket);
    this.framer = new MessageFramer(maxMessageBytes);
    this.engineFramer = new MessageFramer(0x7fffffff);
    this.listens = new ClientListens(
      client,
      () => !this.busy && this.txStatus === 'I',
      () => this.close(),
    );
  }

  /** Starts reading the client's messages. */
  start(): void {
    const { socket } = this.client;
    socket.on('data', (chunk: Buffer) => this.fromClient(chunk));
    socket.on('close', () => this.close());
    if (this.client.leftover.length) this.fromClient(this.client.leftover);
  }

  /** True when it has messages the engine has not been sent. */
  get hasWork(): boolean {
    return this.pending.length > 0;
  }

  /** True when it sent extended-protocol messages without their Sync (the engine is inside an exchange). */
  get unsynced(): boolean {
    return this.current !== undefined;
  }

  /** True when the engine owes it answers. */
  get busy(): boolean {
    return this.outstanding > 0 || this.copy !== undefined || this.listening;
  }

  /** The scheduler gave it the engine. */
  activated(): void {
    this.holder = true;
    this.pump();
  }

  /** Bytes from the engine for this client (the holder). */
  engineData(chunk: Buffer): void {
    this.engineFramer.push(chunk);
    const out: Buffer[] = [];
    for (;;) {
      const msg = this.engineFramer.nextTyped();
      if (!msg) break;
      const type = msg[0]!;
      if (type === 0x31 /* 1 */ || type === 0x32 /* 2 */ || type === 0x33 /* 3 */) {
        if (!isClientsCompletion(this.exchanges[0], type)) continue;
      } else if (type === 0x41 /* A */) {
        // A notification of the one session: the hub hands it to the clients that listen.
        this.host.notification(Buffer.from(msg));
        continue;
      } else if (type === 0x45 /* E */) {
        if (this.exchanges[0]) this.exchanges[0].failed = true;
        if (isFatal(msg)) {
          // The engine ends the session: this client's answers end here, and the connection is reset.
          out.push(msg);
          this.writeToClient(out);
          this.host.broken(this, 'the embedded engine sent FATAL');
          return;
        }
      } else if (type === 0x5a /* Z */) {
        if (this.outstanding <= 0) {
          // An answer no exchange asked for: the engine's answers no longer line up with the clients'.
          this.writeToClient(out);
          this.host.broken(this, 'the embedded engine sent a ReadyForQuery no exchange was owed');
          return;
        }
        const tag = this.exchanges[0]?.replaceTag;
        if (tag) out.push(commandComplete(tag));
        this.exchanges.shift();
        this.outstanding--;
        this.txStatus = String.fromCharCode(msg[5]!);
      }
      out.push(msg);
    }
    this.writeToClient(out);
    this.afterAnswers();
  }

  private writeToClient(out: Buffer[]): void {
    if (out.length && !this.closed) this.client.socket.write(out.length === 1 ? Buffer.from(out[0]!) : Buffer.concat(out));
  }

  /** A CancelRequest for this client. */
  cancel(): void {
    if (this.holder || this.closed || this.pending.length === 0) return;
    // Queued work never reached the engine: drop its first exchange, answered as cancelled.
    const i = this.pending.findIndex((m) => m[0] === 0x53 /* S */ || m[0] === 0x51 /* Q */);
    if (i < 0) {
      this.pending.drop(this.pending.length);
      this.discardUntilSync = true;
      return;
    }
    this.pending.drop(i + 1);
    this.client.socket.write(
      Buffer.concat([
        errorResponse({ severity: 'ERROR', code: '57014', message: 'canceling statement due to user request' }),
        readyForQuery(this.txStatus),
      ]),
    );
  }

  /** Ends the session (the client left, or the engine went away). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopIdleTimer();
    this.listens.close();
    this.pending.close();
    // A COPY that runs in the engine keeps the session until it ends.
    if (!this.copy?.running) this.copy = undefined;
    this.host.gone(this);
  }

  private fromClient(chunk: Buffer): void {
    if (this.closed || this.terminating) return;
    this.stopIdleTimer();
    try {
      this.framer.push(chunk);
      for (;;) {
        const msg = this.framer.nextTyped();
        if (!msg) break;
        const type = msg[0]!;
        if (!forwardedTypes.has(type)) throw new ProtocolViolation(unexpectedMessage(type).message);
        if (type === 0x58 /* X */) {
          // In order: after what it sent before is answered.
          this.terminating = true;
          break;
        }
        if (this.discardUntilSync) {
          if (type === 0x53) this.discardUntilSync = false;
          continue;
        }
        this.pending.push(msg);
      }
    } catch (e) {
      const m = e instanceof ProtocolViolation ? e.message : String(e);
      this.client.socket.end(errorResponse({ severity: 'FATAL', code: '08P01', message: m }));
      this.close();
      return;
    }
    this.pump();
  }

  /** After Terminate, once nothing is owed or queued: ends the client. */
  private terminateIfDone(): boolean {
    if (!this.terminating || this.closed || this.busy || this.pending.length) return false;
    this.client.socket.end();
    this.close();
    return true;
  }

  private pump(): void {
    try {
      this.pumpMessages();
    } catch (e) {
      // A malformed message ends this client only.
      const m = e instanceof ProtocolViolation ? e.message : String(e);
      if (!this.closed) this.client.socket.end(errorResponse({ severity: 'FATAL', code: '08P01', message: m }));
      this.close();
    }
  }

  private pumpMessages(): void {
    if (this.closed) return;
    if (!this.holder) {
      while (this.answerPrepareOnly()) {
        // answered here
      }
      if (this.pending.length) this.host.want(this);
      else this.terminateIfDone();
      return;
    }
    const out: Buffer[] = [];
    while (this.pending.length) {
      if (this.listening) break;
      if (this.copy) {
        if (this.copy.take(this.pending.shift())) this.endCopy();
        continue;
      }
      const msg = this.pending.at(0)!;
      const type = String.fromCharCode(msg[0]!);
      if (type === 'Q') {
        const verdict = judgeSql(queryText(msg), this.host.authRequired);
        if (verdict.copyFromStdin && !verdict.refusal) {
          // Answered here, in order: only once everything sent before has its answers.
          if (this.outstanding > 0) break;
          this.pending.shift();
          this.flush(out);
          this.startCopy(queryText(msg));
          continue;
        }
        if (verdict.listen && !verdict.refusal && this.txStatus === 'I') {
          // Played here, in order: only once everything sent before has its answers.
          if (this.outstanding > 0) break;
          this.pending.shift();
          this.flush(out);
          this.playListen(verdict.listen);
          continue;
        }
        if (verdict.listen && !verdict.refusal) {
          verdict.refusal = {
            code: '0A000',
            message: `${verdict.listen.kind.toUpperCase()} runs outside a transaction block on the embedded engine's PostgreSQL port, where the port plays it for each client`,
          };
        }
        if (verdict.deallocate?.all) {
          if (this.outstanding > 0) break;
          this.pending.shift();
          // This client's statements only, by Close messages (the tag is DEALLOCATE ALL's).
          const names = [...this.prepared.keys()];
          this.prepared.clear();
          this.deferred.clear();
          this.failedParses.clear();
          this.names.forgetStatements();
          for (const name of names) out.push(message('C', Buffer.concat([Buffer.from('S'), cstr(name)])));
          out.push(syncMessage);
          this.outstanding++;
          this.exchanges.push({ ...newExchange(), replaceTag: 'DEALLOCATE ALL' });
          continue;
        }
        this.pending.shift();
        if (verdict.deallocate && !verdict.deallocate.all) {
          const mapped = this.names.forgetStatement(verdict.deallocate.name) ?? `h0x${verdict.deallocate.name}`;
          this.prepared.delete(mapped);
          this.deferred.delete(mapped);
          this.failedParses.delete(mapped);
          this.outstanding++;
          if (this.current) this.current = undefined;
          else this.exchanges.push(newExchange());
          out.push(queryMessage(`DEALLOCATE ${quoteIdent(mapped)}`));
          continue;
        }
        if (verdict.changesSettings) this.settingsDirty = true;
        this.outstanding++;
        // Extended messages sent without a Sync before it share its ReadyForQuery.
        if (this.current) this.current = undefined;
        else this.exchanges.push(newExchange());
        this.names.forgetPortals();
        out.push(verdict.refusal ? queryMessage(refusalSql(verdict.refusal)) : msg);
        continue;
      }
      this.pending.shift();
      if (this.skipUntilSync && type !== 'S') continue;
      if (type === 'd' || type === 'c' || type === 'f') continue; // no COPY in progress: ignored
      if (type === 'F' && !this.current) {
        // Refused, answered in order with its ReadyForQuery as the engine would answer it.
        this.outstanding++;
        this.exchanges.push(newExchange());
        out.push(queryMessage(refusalSql(functionCallRefusal)));
        continue;
      }
      const ex = this.exchange();
      if (type === 'P') {
        const { sql } = parseFields(msg);
        const verdict = judgeSql(sql, this.host.authRequired);
        const refusal =
          verdict.refusal ??
          (verdict.copyFromStdin
            ? { code: '0A000', message: "COPY FROM STDIN runs on the embedded engine's PostgreSQL port only as a simple Query" }
            : verdict.listen
              ? {
                  code: '0A000',
                  message: `${verdict.listen.kind.toUpperCase()} runs on the embedded engine's PostgreSQL port only as a simple Query, which the port plays for each client`,
                }
              : undefined);
        if (refusal) {
          this.inject(ex, refusal, out);
          continue;
        }
        if (verdict.changesSettings) this.settingsDirty = true;
        const r = renameMessage(msg, this.names);
        if (r.statement) {
          this.prepared.set(r.statement, r.msg);
          this.deferred.delete(r.statement);
          this.failedParses.delete(r.statement);
        }
        ex.sentParses++;
        out.push(r.msg);
        continue;
      }
      if (type === 'S') {
        this.skipUntilSync = false;
        this.outstanding++;
        this.current = undefined;
        out.push(msg);
        continue;
      }
      const r = renameMessage(msg, this.names);
      const failed = this.failedStatementOf(r.msg);
      if (failed) {
        this.inject(ex, failed, out);
        continue;
      }
      if (r.closes && r.statement) {
        this.prepared.delete(r.statement);
        this.deferred.delete(r.statement);
        this.failedParses.delete(r.statement);
      }
      if (type === 'F') {
        // Inside an extended exchange: an error, and the rest of the exchange skipped to its Sync.
        this.inject(ex, functionCallRefusal, out);
        continue;
      }
      if (type === 'B') ex.sentBinds++;
      out.push(r.msg);
    }
    this.flush(out);
    this.afterAnswers();
  }

  /**
   * Sends, instead of a refused message, a statement that raises the refusal (its completions
   * swallowed), and skips the rest of the exchange: the engine answers with the error in order,
   * and fails the transaction block as PostgreSQL would.
   */
  private inject(ex: Exchange, refusal: { code: string; message: string }, out: Buffer[]): void {
    ex.swallowParseAfter = ex.sentParses;
    ex.swallowBindAfter = ex.sentBinds;
    out.push(
      message('P', Buffer.concat([cstr(''), cstr(refusalSql(refusal)), Buffer.alloc(2)])),
      message('B', Buffer.concat([cstr(''), cstr(''), Buffer.alloc(6)])),
      message('E', Buffer.concat([cstr(''), Buffer.alloc(4)])),
    );
    this.skipUntilSync = true;
  }

  /** The extended exchange being sent, opened (and queued for its answers) by its first message. */
  private exchange(): Exchange {
    if (!this.current) {
      this.current = newExchange();
      this.exchanges.push(this.current);
    }
    return this.current;
  }

  /**
   * A queued exchange of named Parse messages and a Sync, outside a transaction block, is answered
   * at once and its statements made when this client next holds the engine: a client that
   * prepares while it waits (pgbench -M prepared, with several clients on one thread) would
   * otherwise wait for a client it is itself blocking. An error in such a statement comes with its
   * first Bind or Describe.
   */
  private answerPrepareOnly(): boolean {
    if (this.txStatus !== 'I' || this.outstanding > 0) return false;
    let n = 0;
    while (n < this.pending.length && this.pending.at(n)![0] === 0x50 /* P */) n++;
    if (n === 0 || this.pending.at(n)?.[0] !== 0x53 /* S */) return false;
    const parses = this.pending.first(n);
    for (const msg of parses) {
      const { name, sql } = parseFields(msg);
      if (name === '') return false;
      const v = judgeSql(sql, this.host.authRequired);
      if (v.refusal || v.copyFromStdin || v.changesSettings || v.listen) return false;
    }
    this.pending.drop(n + 1);
    for (const msg of parses) {
      const r = renameMessage(msg, this.names);
      this.prepared.set(r.statement!, r.msg);
      this.deferred.set(r.statement!, r.msg);
      this.failedParses.delete(r.statement!);
    }
    this.client.socket.write(Buffer.concat([...parses.map(() => parseComplete), readyForQuery(this.txStatus)]));
    return true;
  }

  /** The error a Bind or Describe of a deferred statement that failed gets, instead of running. */
  private failedStatementOf(msg: Buffer): { code: string; message: string } | undefined {
    if (this.failedParses.size === 0) return undefined;
    const type = msg[0];
    let name: string | undefined;
    if (type === 0x42 /* B */) name = cstringAt(msg, cstringAt(msg, 5)[1])[0];
    else if (type === 0x44 /* D */ && msg[5] === 0x53 /* S */) name = cstringAt(msg, 6)[0];
    return name ? this.failedParses.get(name) : undefined;
  }

  private flush(out: Buffer[]): void {
    if (out.length === 0) return;
    this.host.write(this, out.length === 1 ? out[0]! : Buffer.concat(out));
    out.length = 0;
  }

  /** A LISTEN or UNLISTEN of this client, outside a transaction block, with nothing outstanding. */
  private playListen(l: { kind: 'listen' | 'unlisten'; channel: string | undefined }): void {
    const done = (tag: string, error?: { code: string; message: string }): void => {
      this.listening = false;
      if (this.closed) return;
      this.client.socket.write(
        Buffer.concat([error ? errorResponse({ severity: 'ERROR', ...error }) : commandComplete(tag), readyForQuery(this.txStatus)]),
      );
      this.afterAnswers();
    };
    if (l.kind === 'unlisten') {
      this.listens.remove(l.channel);
      done('UNLISTEN');
      return;
    }
    const channel = l.channel ?? '';
    if (this.listens.has(channel)) {
      done('LISTEN');
      return;
    }
    this.listening = true;
    this.host.listen(this, channel, this.listens.subscriber).then(
      (sub) => {
        this.listens.add(channel, sub);
        done('LISTEN');
      },
      (e: { code?: string; message?: string }) => done('LISTEN', { code: e.code ?? 'XX000', message: e.message ?? String(e) }),
    );
  }

  private afterAnswers(): void {
    this.listens.flush();
    if (!this.holder) return;
    if (this.closed) {
      // Gone while answers were owed: the engine goes back once the last one arrived.
      if (!this.busy) {
        this.holder = false;
        this.host.idle(this);
      }
      return;
    }
    if (this.outstanding === 0 && this.pending.length) {
      this.pump();
      return;
    }
    if (this.terminateIfDone()) return;
    // Not inside an extended exchange either: its Sync is still to come.
    const waiting = this.outstanding === 0 && !this.copy && this.pending.length === 0 && !this.current;
    if (waiting && this.txStatus === 'I') {
      this.holder = false;
      this.host.idle(this);
    } else if (this.holdsIdle && this.host.idleInTransactionTimeoutMs > 0 && !this.idleTimer) {
      this.idleTimer = setTimeout(() => this.idleInTransactionTimeout(), this.host.idleInTransactionTimeoutMs);
      this.idleTimer.unref();
    }
  }

  /**
   * It holds the engine and the engine waits for it: idle inside a transaction block, inside an
   * extended exchange without its Sync, or in COPY FROM STDIN.
   */
  private get holdsIdle(): boolean {
    if (!this.holder || this.closed || this.pending.length || this.outstanding > 0 || this.listening) return false;
    return this.txStatus !== 'I' || this.current !== undefined || (this.copy !== undefined && !this.copy.running);
  }

  private stopIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Idle in a transaction block too long: disconnected (the scheduler rolls the transaction back). */
  private idleInTransactionTimeout(): void {
    this.idleTimer = undefined;
    if (!this.holdsIdle) return;
    const where = this.current ? 'extended-protocol messages without Sync' : this.copy ? 'COPY FROM STDIN' : 'a transaction block';
    this.client.log.info({ timeoutMs: this.host.idleInTransactionTimeoutMs, where }, 'pg port: idle-in-transaction timeout');
    endWithFatal(this.client.socket, {
      code: '25P03',
      message: 'terminating connection due to idle-in-transaction timeout',
      hint: `on the embedded engine ${where} holds the one session every client shares; the server allows --pg-idle-in-transaction-timeout-ms (${this.host.idleInTransactionTimeoutMs} ms) of idleness there`,
    });
    this.close();
  }

  private startCopy(sql: string): void {
    this.copy = new CopyIn(sql, this.host);
    this.client.socket.write(copyInResponse(/\bbinary\b/i.test(sql)));
  }

  private endCopy(): void {
    const inBlock = this.txStatus !== 'I';
    void this.copy!.run().then((r) => {
      this.copy = undefined;
      this.txStatus = r.txStatus ?? (inBlock ? 'E' : 'I');
      if (!this.closed) this.client.socket.write(Buffer.concat([r.answer, readyForQuery(this.txStatus)]));
      this.afterAnswers();
    });
  }
}
