/**
 * SessionService: DatabaseService's unary calls multiplexed over one bidirectional stream (see
 * proto/heliosdb/v1/session.proto). Each operation runs through the same handler as its unary
 * call, with a call context of its own (its signal: the stream's, its own deadline and cancel
 * op; the stream's headers, principal and peer, authenticated once at open). Results finished in
 * one event-loop tick go out in one message. At most {@link defaultSessionInFlight} operations run
 * at once per stream (announced in the first message); more wait in order. Transactions and
 * reserved sessions begun on the stream are rolled back / released when it ends (one used later
 * by another stream of the same server, after a token renewal, belongs to that stream from then).
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import {
  type DatabaseService,
  ErrorDetailSchema,
  type SessionOp,
  type SessionRequest,
  type SessionResponse,
  SessionResponseSchema,
  type SessionResult,
  SessionResultSchema,
  type SessionService,
} from '@heliosdb/client/wire';
import type { Logger } from 'pino';
import type { CallContext } from '../call-context.js';
import { PushQueue } from './push-queue.js';

/**
 * How often a stream's credentials are checked again, ms: an operation that starts later than
 * this after the last check waits for a new one, so that a revoked key or an expired token stops
 * working on open streams too (the authenticator's cache makes most checks free).
 */
export const sessionReauthMs = 1000;

/** Operations one stream runs at once. */
export const defaultSessionInFlight = 256;

type Op = Exclude<SessionOp['op'], { case: 'cancel' } | { case: undefined }>;
type AnyHandler = (req: unknown, ctx: CallContext) => Promise<unknown>;

/** The SessionService implementation over `database` (the unary handlers). */
export function createSessionService(
  database: ServiceImpl<typeof DatabaseService>,
  log: Logger,
  maxInFlight = defaultSessionInFlight,
): ServiceImpl<typeof SessionService> {
  // Which stream owns each transaction and reserved session: the one that used it last.
  const owners = new Map<string, SessionRun>();
  return {
    session(requests: AsyncIterable<SessionRequest>, ctx: CallContext): AsyncIterable<SessionResponse> {
      const run = new SessionRun(database as unknown as Record<string, AnyHandler>, ctx, log, maxInFlight, owners);
      return run.start(requests);
    },
  };
}

interface Running {
  ac: AbortController;
  timer: NodeJS.Timeout | undefined;
}

/** One open stream. */
class SessionRun {
  private readonly out = new PushQueue<SessionResponse>();
  private readonly running = new Map<number, Running>();
  private readonly waiting: SessionOp[] = [];
  private pending: SessionResult[] = [];
  private flushScheduled = false;
  private readonly transactions = new Set<string>();
  private readonly reserved = new Set<string>();
  private closed = false;
  private authAt = Date.now();
  private reauth: Promise<void> | undefined;

  constructor(
    private readonly handlers: Record<string, AnyHandler>,
    private readonly stream: CallContext,
    private readonly log: Logger,
    private readonly maxInFlight: number,
    private readonly owners: Map<string, SessionRun>,
  ) {}

  start(requests: AsyncIterable<SessionRequest>): AsyncIterable<SessionResponse> {
    this.out.push(create(SessionResponseSchema, { opened: { maxInFlight: this.maxInFlight } }));
    // The client went away: the responses end at once (and the finally below gives back what it owned).
    const onStreamAbort = () => {
      for (const r of this.running.values()) r.ac.abort(this.stream.signal.reason);
      this.out.end();
    };
    if (this.stream.signal.aborted) onStreamAbort();
    else this.stream.signal.addEventListener('abort', onStreamAbort, { once: true });
    void this.read(requests);
    const self = this;
    return (async function* () {
      try {
        yield* self.out.drain();
      } finally {
        await self.close();
      }
    })();
  }

  private async read(requests: AsyncIterable<SessionRequest>): Promise<void> {
    try {
      for await (const req of requests) {
        for (const op of req.ops) this.receive(op);
      }
    } catch {
      // The stream failed (the client went away): the responses end too.
    }
    // The client half-closed: answer what runs, then end.
    this.endWhenIdle = true;
    this.maybeEnd();
  }

  private endWhenIdle = false;

  private maybeEnd(): void {
    if (this.endWhenIdle && this.running.size === 0 && this.waiting.length === 0) {
      this.flush();
      this.out.end();
    }
  }

  private receive(op: SessionOp): void {
    if (op.op.case === 'cancel') {
      const target = op.op.value.id;
      const r = this.running.get(target);
      if (r) r.ac.abort(new ConnectError('cancelled by the client', Code.Canceled));
      else {
        const i = this.waiting.findIndex((w) => w.id === target);
        if (i !== -1) {
          this.waiting.splice(i, 1);
          this.fail(target, new ConnectError('the operation was cancelled before it started', Code.Canceled));
        }
      }
      return;
    }
    if (this.running.size >= this.maxInFlight) this.waiting.push(op);
    else this.run(op);
  }

  private run(op: SessionOp): void {
    const id = op.id;
    const kind = op.op as Op;
    const handler = kind.case ? this.handlers[kind.case] : undefined;
    if (!handler) {
      this.fail(id, new ConnectError('the session operation is empty or unknown', Code.InvalidArgument));
      return;
    }
    if (this.running.has(id)) {
      this.fail(id, new ConnectError(`operation id ${id} is already in flight on this session`, Code.InvalidArgument));
      return;
    }
    const ac = new AbortController();
    if (this.stream.signal.aborted) ac.abort(this.stream.signal.reason);
    const deadline = op.timeoutMs > 0 ? Date.now() + op.timeoutMs : undefined;
    const timer =
      deadline !== undefined
        ? setTimeout(() => ac.abort(new ConnectError('deadline exceeded', Code.DeadlineExceeded)), op.timeoutMs)
        : undefined;
    const entry: Running = { ac, timer };
    this.running.set(id, entry);
    const call = () => {
      const ctx: CallContext = {
        signal: ac.signal,
        requestHeader: this.stream.requestHeader,
        principal: this.stream.principal,
        peer: this.stream.peer,
        values: this.stream.values,
        timeoutMs: () => (deadline !== undefined ? deadline - Date.now() : undefined),
      };
      return handler(kind.value, ctx);
    };
    let p: Promise<unknown>;
    try {
      const check = this.credentialsCheck();
      p = check ? check.then(call) : Promise.resolve(call());
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (res) => {
        // Only a call that succeeded (its principal owns the transaction) moves it here.
        this.adopt((kind.value as { transactionId?: string }).transactionId);
        this.track(kind, res);
        this.push(create(SessionResultSchema, { id, result: { case: kind.case, value: res } as SessionResult['result'] }));
      },
      (e: unknown) => this.fail(id, ac.signal.aborted && !(e instanceof ConnectError) ? ac.signal.reason : e),
    ).finally(() => {
      if (timer) clearTimeout(timer);
      this.running.delete(id);
      const next = this.waiting.shift();
      if (next) this.run(next);
      this.maybeEnd();
    });
  }

  /**
   * The stream's credentials checked again when the last check is older than
   * {@link sessionReauthMs} (one check for the operations that wait for it); undefined when no
   * check is due. A refusal fails the waiting operations and ends the stream with it.
   */
  private credentialsCheck(): Promise<void> | undefined {
    const again = this.stream.reauthenticate;
    if (!again) return this.reauth;
    if (!this.reauth && Date.now() - this.authAt >= sessionReauthMs) {
      this.reauth = again().then(
        () => {
          this.authAt = Date.now();
          this.reauth = undefined;
        },
        (e: unknown) => {
          setImmediate(() => this.out.end(e));
          throw e;
        },
      );
    }
    return this.reauth;
  }

  /** A transaction or reserved session of another stream used here: this stream owns it now. */
  private adopt(id: string | undefined): void {
    if (!id) return;
    const from = this.owners.get(id);
    if (!from || from === this) return;
    this.owners.set(id, this);
    if (from.transactions.delete(id)) this.transactions.add(id);
    if (from.reserved.delete(id)) this.reserved.add(id);
  }

  /** Remembers what the stream owns, so that its end can give it back. */
  private track(kind: Op, res: unknown): void {
    switch (kind.case) {
      case 'beginTransaction': {
        const id = (res as { transactionId: string }).transactionId;
        this.transactions.add(id);
        this.owners.set(id, this);
        break;
      }
      case 'commit':
      case 'rollback':
        this.forget(this.transactions, kind.value.transactionId);
        break;
      case 'reserveSession': {
        const id = (res as { sessionId: string }).sessionId;
        this.reserved.add(id);
        this.owners.set(id, this);
        break;
      }
      case 'releaseSession':
        this.forget(this.reserved, kind.value.sessionId);
        break;
    }
  }

  private forget(set: Set<string>, id: string): void {
    set.delete(id);
    if (this.owners.get(id) === this) this.owners.delete(id);
  }

  private fail(id: number, e: unknown): void {
    let ce: ConnectError;
    if (e instanceof ConnectError) ce = e;
    else {
      this.log.error({ err: e }, 'unexpected error while serving a session operation');
      ce = new ConnectError(e instanceof Error ? e.message : String(e), Code.Internal);
    }
    const detail = ce.findDetails(ErrorDetailSchema)[0];
    this.push(create(SessionResultSchema, { id, result: { case: 'error', value: { code: ce.code, message: ce.rawMessage, detail } } }));
  }

  private push(r: SessionResult): void {
    if (this.closed) return;
    this.pending.push(r);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const results = this.pending;
    this.pending = [];
    this.out.push(create(SessionResponseSchema, { results }));
  }

  /** The stream ended: stop what runs, roll back its transactions, release its sessions. */
  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const r of this.running.values()) r.ac.abort(new ConnectError('the session ended', Code.Canceled));
    this.waiting.length = 0;
    const ctx: CallContext = {
      signal: new AbortController().signal,
      requestHeader: this.stream.requestHeader,
      principal: this.stream.principal,
      peer: this.stream.peer,
      values: this.stream.values,
    };
    for (const transactionId of this.transactions) {
      if (this.owners.get(transactionId) !== this) continue;
      this.owners.delete(transactionId);
      await this.handlers.rollback({ transactionId }, ctx).catch(() => {});
    }
    for (const sessionId of this.reserved) {
      if (this.owners.get(sessionId) !== this) continue;
      this.owners.delete(sessionId);
      await this.handlers.releaseSession({ sessionId }, ctx).catch(() => {});
    }
    this.transactions.clear();
    this.reserved.clear();
  }
}
