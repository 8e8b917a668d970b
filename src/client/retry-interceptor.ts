/**
 * Retries that never duplicate a write: one Connect interceptor for every transport (native gRPC
 * in Node, Connect and gRPC-Web in Node and in browsers). Browser-safe.
 *
 * What is sent again, after a backoff `min(maxDelayMs, baseDelayMs * exponentialBase^n)` plus a
 * random share (`jitter`) and never sooner than the server's `retry_after_ms`:
 * - anything the server provably never received (connection refused, stream refused, the
 *   circuit open, a connection that could not be opened in time);
 * - reads (statements that are SELECT, VALUES, TABLE, SHOW, EXPLAIN, or WITH without a data
 *   change) and calls without effects (Prepare, GetServerInfo, health checks, BeginTransaction,
 *   Rollback), after a lost connection or when the server marks the error retryable;
 * - server-streaming queries, only before their first row was delivered;
 * - writes only through idempotency keys: every auto-commit statement that is not a read, and
 *   every Commit, carries a key the server records with its outcome, so a repeat returns the
 *   first result instead of running again (see src/server/idempotency.ts).
 * Statements inside a transaction are sent again only when they never left; serialization
 * failures re-run whole transactions in `client.transaction`, not here.
 *
 * Never: past the call's deadline, after the caller cancelled, or when the endpoint's retry
 * budget (a token bucket as in gRPC's retry throttling) is spent. A write whose outcome stays
 * unknown fails with {@link AmbiguousResultError}.
 * @packageDocumentation
 */
import { Code, ConnectError, createContextKey, type Interceptor, type StreamRequest, type StreamResponse, type UnaryRequest } from '@connectrpc/connect';
import { type ErrorDetail, ErrorDetailSchema, ErrorReason } from '../../gen/heliosdb/v1/error_pb.js';
import { CircuitBreaker, type CircuitBreakerOptions, type CircuitStats } from './circuit-breaker.js';
import { AmbiguousResultError, ConnectionError, HeliosDBError } from './errors.js';
import { isKeyableSql, isReadOnlySql } from './sql-classify.js';

export { isKeyableSql, isReadOnlySql } from './sql-classify.js';

/** Retry settings (client option `retry`; `false` turns retries and idempotency keys off). */
export interface RetryOptions {
  /** Most attempts of one call, the first included. Default `4`. */
  maxAttempts?: number;
  /** Wait before the first retry, ms. Default `100`. */
  baseDelayMs?: number;
  /** Longest wait between attempts, ms (before jitter). Default `2000`. */
  maxDelayMs?: number;
  /** Growth of the wait per retry: `delay = min(maxDelayMs, baseDelayMs * exponentialBase^retry)`. Default `2`. */
  exponentialBase?: number;
  /** Random extra wait, as a share of the delay (`delay + random() * jitter * delay`), 0 to 1. Default `0.2`. */
  jitter?: number;
  /**
   * Send an idempotency key with every auto-commit write and every Commit, so that they can be
   * retried without ever applying twice. `false`: writes are retried only when they provably never
   * left, and a lost answer is an {@link AmbiguousResultError}. Default `true`.
   */
  idempotencyKeys?: boolean;
  /**
   * The retry budget of each endpoint, gRPC's retry throttling: a bucket of `maxTokens` tokens;
   * each failed attempt takes one, each success gives back `tokenRatio`; retries are sent only
   * while more than half the tokens remain. So an outage costs a few retries, not a storm.
   * `false` turns it off. Default `{ maxTokens: 10, tokenRatio: 0.1 }`.
   */
  budget?: { maxTokens?: number; tokenRatio?: number } | false;
}

/** Resolved {@link RetryOptions}. */
export interface ResolvedRetryOptions {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  exponentialBase: number;
  jitter: number;
  idempotencyKeys: boolean;
  budget: { maxTokens: number; tokenRatio: number } | false;
}

/** Defaults of {@link RetryOptions}. */
export const retryDefaults: ResolvedRetryOptions = {
  maxAttempts: 4,
  baseDelayMs: 100,
  maxDelayMs: 2000,
  exponentialBase: 2,
  jitter: 0.2,
  idempotencyKeys: true,
  budget: { maxTokens: 10, tokenRatio: 0.1 },
};

/** Applies the defaults to the client's `retry` option; `false` means one attempt and no keys. */
export function resolveRetryOptions(options: RetryOptions | false | undefined): ResolvedRetryOptions {
  if (options === false) return { ...retryDefaults, maxAttempts: 1, idempotencyKeys: false };
  const r: ResolvedRetryOptions = { ...retryDefaults };
  for (const [k, v] of Object.entries(options ?? {})) if (v !== undefined) (r as unknown as Record<string, unknown>)[k] = v;
  if (r.budget !== false) r.budget = { ...(retryDefaults.budget as object), ...(options?.budget || {}) } as { maxTokens: number; tokenRatio: number };
  if (!Number.isInteger(r.maxAttempts) || r.maxAttempts < 1) throw new RangeError(`retry.maxAttempts must be an integer >= 1, got ${r.maxAttempts}`);
  if (!(r.baseDelayMs >= 0) || !(r.maxDelayMs >= r.baseDelayMs)) throw new RangeError(`retry needs 0 <= baseDelayMs (${r.baseDelayMs}) <= maxDelayMs (${r.maxDelayMs})`);
  if (!(r.exponentialBase >= 1)) throw new RangeError(`retry.exponentialBase must be >= 1, got ${r.exponentialBase}`);
  if (!(r.jitter >= 0 && r.jitter <= 1)) throw new RangeError(`retry.jitter must be between 0 and 1, got ${r.jitter}`);
  if (r.budget && (!(r.budget.maxTokens > 0) || !(r.budget.tokenRatio > 0))) throw new RangeError('retry.budget needs maxTokens > 0 and tokenRatio > 0');
  return r;
}

/**
 * The wait before retry number `retry` (0 for the first retry):
 * `min(maxDelayMs, baseDelayMs * exponentialBase^retry)`, plus `random() * jitter` of that, and
 * never less than the server's `retryAfterMs`.
 */
export function retryDelayFor(retry: number, o: ResolvedRetryOptions, retryAfterMs?: number, random: () => number = Math.random): number {
  const delay = Math.min(o.maxDelayMs, o.baseDelayMs * o.exponentialBase ** retry);
  return Math.max(Math.round(delay + random() * o.jitter * delay), retryAfterMs ?? 0);
}

/** gRPC's retry throttling: see {@link RetryOptions.budget}. */
export class RetryBudget {
  tokens: number;
  constructor(
    readonly maxTokens: number,
    readonly tokenRatio: number,
  ) {
    this.tokens = maxTokens;
  }
  /** A failed attempt. */
  onFailure(): void {
    this.tokens = Math.max(0, this.tokens - 1);
  }
  /** A successful call. */
  onSuccess(): void {
    if (this.tokens < this.maxTokens) this.tokens = Math.min(this.maxTokens, this.tokens + this.tokenRatio);
  }
  /** Whether a retry may be sent now. */
  allows(): boolean {
    return this.tokens > this.maxTokens / 2;
  }
}

// ---------------------------------------------------------------------------------------------
// What a transport tells the interceptor about an attempt.

/** Facts a transport attaches to an attempt's error. */
export interface AttemptInfo {
  /** The endpoint (server URL) the attempt went to. */
  endpoint?: string;
  /** False when the request provably never left the client. */
  sent?: boolean;
  /** The call's absolute deadline (ms since the epoch), when it has one. */
  deadline?: number;
}

const attemptInfos = new WeakMap<object, AttemptInfo>();

/** Attaches {@link AttemptInfo} to an error (transports call this); returns the error. */
export function annotateAttempt<E>(error: E, info: AttemptInfo): E {
  if (error && typeof error === 'object') attemptInfos.set(error, { ...attemptInfos.get(error), ...info });
  return error;
}

/** The {@link AttemptInfo} of an error, if a transport attached any. */
export function attemptInfoOf(error: unknown): AttemptInfo | undefined {
  return error && typeof error === 'object' ? attemptInfos.get(error) : undefined;
}

/** Context value: the endpoint a retry should avoid (the one the failed attempt went to). */
export const avoidEndpoint = createContextKey<string | undefined>(undefined, { description: 'heliosdb endpoint to avoid' });

// ---------------------------------------------------------------------------------------------
// Classifying statements and failures.

/** How a call may be retried. */
export type CallKind =
  /** No effect: retried after any transient failure. */
  | 'safe'
  /** An auto-commit write. */
  | 'write'
  /** A transaction's Commit. */
  | 'commit'
  /** A statement inside a transaction, or anything unknown: only when it never left. */
  | 'other';

interface SqlMessage {
  sql?: string;
  transactionId?: string;
  statements?: { sql: string }[];
  idempotencyKey?: string;
  readOnly?: boolean;
}

/** The kind of a call, by RPC name and request. */
export function callKindOf(method: string, message: unknown): CallKind {
  const m = (message ?? {}) as SqlMessage;
  switch (method) {
    case 'Query':
    case 'Execute':
    case 'ExecutePrepared':
    case 'StreamQuery':
      if (m.transactionId) return 'other';
      return isReadOnlySql(m.sql ?? '') ? 'safe' : 'write';
    case 'ExecuteBatch': {
      if (m.transactionId) return 'other';
      const sqls = m.statements && m.statements.length > 0 ? m.statements.map((s) => s.sql) : [m.sql ?? ''];
      return sqls.every(isReadOnlySql) ? 'safe' : 'write';
    }
    case 'Commit':
      return 'commit';
    case 'CopyTo':
    case 'Listen':
    case 'Prepare':
    case 'ClosePrepared':
    case 'GetServerInfo':
    case 'BeginTransaction':
    case 'ReserveSession':
    case 'ReleaseSession':
    case 'Rollback':
    case 'Check':
    case 'Login':
    case 'Logout':
    case 'WhoAmI':
      return 'safe';
    default:
      return 'other';
  }
}

/**
 * Marks an auto-commit read as one (`read_only`): the server then runs it READ ONLY and refuses
 * it (NOT_A_READ) if it writes after all, so a read sent again after a lost answer can never
 * write twice.
 */
function claimRead(method: string, kind: CallKind, m: SqlMessage | undefined): void {
  if (kind === 'safe' && m && claimingMethods.has(method) && !m.transactionId) m.readOnly = true;
}

/** The statement RPCs whose `read_only` field is the claim (BeginTransaction's means READ ONLY). */
const claimingMethods = new Set(['Query', 'Execute', 'ExecuteBatch', 'ExecutePrepared', 'StreamQuery']);

/** The server refused a call sent as a read: it writes (see {@link claimRead}). */
function isNotARead(e: unknown): boolean {
  return detailOf(e)?.reason === ErrorReason.NOT_A_READ;
}

/** The server refused the call's idempotency key: the statement cannot carry one. */
function isNotKeyable(e: unknown): boolean {
  return detailOf(e)?.reason === ErrorReason.NOT_KEYABLE;
}

function keyableMessage(method: string, m: SqlMessage): boolean {
  if (method === 'Commit') return true;
  if (method === 'ExecuteBatch') return (m.statements && m.statements.length > 0 ? m.statements.map((s) => s.sql) : [m.sql ?? '']).every(isKeyableSql);
  return method !== 'StreamQuery' && isKeyableSql(m.sql ?? '');
}

/** A fresh idempotency key: 128 random bits, base64url. */
export function newIdempotencyKey(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function detailOf(e: unknown): ErrorDetail | undefined {
  if (e instanceof ConnectError) return e.findDetails(ErrorDetailSchema)[0];
  return undefined;
}

function codesInChain(e: unknown): string[] {
  const out: string[] = [];
  for (let x = e, depth = 0; x && typeof x === 'object' && depth < 6; x = (x as { cause?: unknown }).cause, depth++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === 'string') out.push(code);
  }
  return out;
}

const neverSentCodes = new Set(['CONNECT_TIMEOUT', 'CONNECTION_FAILED', 'CIRCUIT_OPEN', 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const neverSentMessage = /No connection established|Stream refused|REFUSED_STREAM|Failed to start HTTP\/2 stream|ECONNREFUSED|ENOTFOUND|EAI_AGAIN/;

/** Whether a failed attempt provably never reached the server. */
export function neverSent(e: unknown): boolean {
  const info = attemptInfoOf(e);
  if (info?.sent === false) return true;
  if (codesInChain(e).some((c) => neverSentCodes.has(c))) return true;
  for (let x = e, depth = 0; x && typeof x === 'object' && depth < 6; x = (x as { cause?: unknown }).cause, depth++) {
    const message = (x as { message?: unknown }).message;
    if (typeof message === 'string' && neverSentMessage.test(message)) return true;
  }
  return false;
}

/** The Connect code of an attempt's error. */
function codeOf(e: unknown): Code {
  if (e instanceof ConnectError) return e.code;
  if (e instanceof HeliosDBError) return e.grpcCode;
  return Code.Unknown;
}

/**
 * Whether an attempt failed on the way (the connection, the stream), not with an answer from the
 * server: no ErrorDetail, and a code transports use for broken connections (connect-node reports
 * a reset connection as ABORTED).
 */
export function isTransportFailure(e: unknown): boolean {
  if (detailOf(e)) return false;
  if (e instanceof HeliosDBError) return e.code === 'CONNECT_TIMEOUT' || e.code === 'CONNECTION_FAILED' || e.code === 'CIRCUIT_OPEN' || e.code === 'CONNECTION_ERROR';
  const code = codeOf(e);
  return code === Code.Unavailable || code === Code.Internal || code === Code.Unknown || code === Code.Aborted;
}

/**
 * A CANCELLED the caller did not ask for is a lost connection (connect-node reports an HTTP/2
 * session that died under a stream as RST_STREAM CANCEL): make it UNAVAILABLE, so that it is
 * treated, retried and reported as one.
 */
export function normalizeFailure(req: UnaryRequest | StreamRequest, e: unknown): unknown {
  if (codeOf(e) !== Code.Canceled || detailOf(e) || (req.signal as AbortSignal | undefined)?.aborted) return e;
  const ce = ConnectError.from(e);
  const lost = new ConnectError(`the connection was lost: ${ce.rawMessage}`, Code.Unavailable, ce.metadata, undefined, e);
  const info = attemptInfoOf(e);
  return info ? annotateAttempt(lost, info) : lost;
}

/** The server says the database connection broke mid-statement: not applied, or applied; unknown. */
function lostMidStatement(e: unknown): boolean {
  return detailOf(e)?.reason === ErrorReason.BACKEND_CONNECTION_LOST;
}

// ---------------------------------------------------------------------------------------------
// The interceptor.

/** Counters of a client's retries. */
export interface RetryStats {
  /** Attempts sent again. */
  retries: number;
  /** Retries not sent because the endpoint's retry budget was spent. */
  retriesThrottled: number;
  /** Writes whose outcome stayed unknown (each threw AmbiguousResultError). */
  ambiguousResults: number;
  /** The retry budget per endpoint: tokens left. */
  budgets: Record<string, number>;
}

/** What {@link createRetryInterceptor} returns. */
export interface RetryControl {
  interceptor: Interceptor;
  stats(): RetryStats;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The call's absolute deadline: from the transport's note, or from the protocol's timeout header. */
function deadlineOf(req: UnaryRequest | StreamRequest, e: unknown, startedAt: number, headerRead: boolean): number | undefined {
  const noted = attemptInfoOf(e)?.deadline;
  if (noted !== undefined) return noted;
  if (!headerRead) return undefined;
  const ms = Number(req.header.get('connect-timeout-ms'));
  if (ms > 0) return startedAt + ms;
  const grpc = /^(\d+)([HMSmun])$/.exec(req.header.get('grpc-timeout') ?? '');
  if (grpc) {
    const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }[grpc[2] as 'H'];
    return startedAt + Number(grpc[1]) * unit;
  }
  return undefined;
}

/** Rewrites the protocol's timeout header to the time left (Connect transports send it per attempt). */
function setRemainingTimeout(req: UnaryRequest | StreamRequest, deadline: number): void {
  const left = Math.max(1, Math.floor(deadline - Date.now()));
  if (req.header.has('connect-timeout-ms')) req.header.set('connect-timeout-ms', String(left));
  if (req.header.has('grpc-timeout')) req.header.set('grpc-timeout', `${left}m`);
}

/**
 * Builds the retry interceptor. `headerTimeouts`: the transport puts the call's timeout in the
 * request header (the Connect transports) rather than noting its deadline on errors.
 */
export function createRetryInterceptor(options: ResolvedRetryOptions, init: { headerTimeouts: boolean }): RetryControl {
  const budgets = new Map<string, RetryBudget>();
  let retries = 0;
  let retriesThrottled = 0;
  let ambiguousResults = 0;
  let depleted = 0; // budgets below their maximum: successes need to refill them

  const budgetOf = (endpoint: string): RetryBudget | undefined => {
    if (!options.budget) return undefined;
    let b = budgets.get(endpoint);
    if (!b) budgets.set(endpoint, (b = new RetryBudget(options.budget.maxTokens, options.budget.tokenRatio)));
    return b;
  };
  const credit = () => {
    if (depleted === 0) return;
    depleted = 0;
    for (const b of budgets.values()) {
      b.onSuccess();
      if (b.tokens < b.maxTokens) depleted++;
    }
  };
  const endpointOf = (req: UnaryRequest | StreamRequest, e: unknown): string => {
    const noted = attemptInfoOf(e)?.endpoint;
    if (noted) return noted;
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/]+/i.exec(req.url);
    return m ? m[0] : req.url;
  };

  /**
   * After a failed attempt: whether to send again, and the wait. `state` carries what earlier
   * attempts learnt.
   */
  const decide = (
    req: UnaryRequest | StreamRequest,
    kind: CallKind,
    keyed: boolean,
    e: unknown,
    state: { attempt: number; maybeApplied: boolean; startedAt: number },
  ): { retry: true; delay: number; deadline: number | undefined; endpoint: string } | { retry: false } => {
    const code = codeOf(e);
    const transport = isTransportFailure(e);
    // Never sent, for a reason another attempt can fix (not a saturated pool or a closed client).
    const never = neverSent(e) && (transport || code === Code.Unavailable);
    const detail = detailOf(e);
    const durable = kind === 'write' || kind === 'commit';
    // The request may have been applied without its answer coming back.
    if (durable && !never && (transport || lostMidStatement(e) || code === Code.DeadlineExceeded)) state.maybeApplied = true;
    if (code === Code.Canceled || code === Code.DeadlineExceeded) return { retry: false };
    // Failed logins slowed down on purpose are for the caller to see, never retried here.
    if (detail?.reason === ErrorReason.AUTH_RATE_LIMITED) return { retry: false };
    const transient = never || transport || detail?.retryable === true || lostMidStatement(e);
    if (!transient) return { retry: false };
    let resend: boolean;
    if (never) resend = true;
    else if (kind === 'safe') resend = true;
    else if (durable && keyed) resend = true;
    // Unkeyed auto-commit write: only when the server says it did not run (retryable, e.g. a serialization failure).
    else if (kind === 'write') resend = !transport && !lostMidStatement(e) && detail?.retryable === true;
    else resend = false;
    const endpoint = endpointOf(req, e);
    const budget = budgetOf(endpoint);
    // A call refused by an open circuit was no attempt: it costs no token.
    if (budget && !(e instanceof HeliosDBError && e.code === 'CIRCUIT_OPEN')) {
      budget.onFailure();
      depleted++;
    }
    if (!resend || state.attempt + 1 >= options.maxAttempts) return { retry: false };
    if (budget && !budget.allows()) {
      retriesThrottled++;
      return { retry: false };
    }
    const retryAfter = (e instanceof HeliosDBError ? e.retryAfterMs : detail?.retryAfterMs) || retryAfterHeader(e);
    const delay = retryDelayFor(state.attempt, options, retryAfter);
    const deadline = deadlineOf(req, e, state.startedAt, init.headerTimeouts);
    // No retry that could not even start before the deadline.
    if (deadline !== undefined && Date.now() + delay + 5 >= deadline) return { retry: false };
    return { retry: true, delay, deadline, endpoint };
  };

  /** The error a call ends with: the last failure, or AmbiguousResultError when a write's fate is unknown. */
  const finalError = (req: UnaryRequest | StreamRequest, e: unknown, maybeApplied: boolean, key: string | undefined, attempts: number): unknown => {
    if (!maybeApplied) return e;
    // A definitive answer from the server (with a key it is the recorded outcome) settles it; a
    // deadline or cancellation it reports may have cut a wait for an earlier attempt short.
    const code = codeOf(e);
    if (detailOf(e) && !lostMidStatement(e) && code !== Code.DeadlineExceeded && code !== Code.Canceled) return e;
    ambiguousResults++;
    const what = req.method.name === 'Commit' ? 'the commit' : 'the write';
    const why = key
      ? `its idempotency key could not settle it within ${attempts} attempt${attempts === 1 ? '' : 's'} (the retry budget, the deadline or maxAttempts ran out)`
      : 'it was sent without an idempotency key (retry.idempotencyKeys is off, or the statement cannot carry one)';
    const cause = e instanceof Error ? e.message : String(e);
    const amb = new AmbiguousResultError(
      `the outcome of ${what} is unknown: the request may have reached the server, but its answer was lost (${cause}), and ${why}. Check whether it was applied before doing it again`,
      { cause: e, grpcCode: codeOf(e), idempotencyKey: key },
    );
    // A call that ends with its deadline reports the deadline's reason: attach the verdict to it
    // (toHeliosError unwraps a HeliosDBError cause).
    const reason = (req.signal as AbortSignal | undefined)?.aborted ? req.signal.reason : undefined;
    if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) reason.cause = amb;
    return amb;
  };

  const interceptor: Interceptor = (next) => async (req) => {
    const method = req.method.name;
    // A streaming request (CopyFrom) cannot be sent again: its caller settles it by its key.
    if (req.stream && req.method.methodKind !== 'server_streaming') return next(req);
    const message = req.stream ? undefined : (req.message as SqlMessage);
    let kind = req.stream ? 'safe' : callKindOf(method, message);
    let key: string | undefined;
    const keyIt = () => {
      if (options.idempotencyKeys && (kind === 'write' || kind === 'commit') && message && 'idempotencyKey' in message && keyableMessage(method, message)) {
        key = message.idempotencyKey ||= newIdempotencyKey();
      }
    };
    keyIt();
    claimRead(method, kind, message);
    if (req.stream) return retryStream(next as (r: StreamRequest) => Promise<StreamResponse>, req);
    /** Sends the call again at once as what the server said it is (a write; or without a key). */
    const reclassify = (e: unknown): boolean => {
      if (!message) return false;
      if (isNotARead(e) && message.readOnly) {
        message.readOnly = false;
        kind = 'write';
        keyIt();
        return true;
      }
      if (isNotKeyable(e) && message.idempotencyKey) {
        message.idempotencyKey = '';
        key = undefined;
        return true;
      }
      return false;
    };
    if (options.maxAttempts <= 1 && kind !== 'write' && kind !== 'commit') {
      for (;;) {
        try {
          const res = await next(req);
          credit();
          return res;
        } catch (caught) {
          const e = normalizeFailure(req, caught);
          if (reclassify(e)) continue;
          decide(req, kind, false, e, { attempt: 0, maybeApplied: false, startedAt: 0 });
          throw e;
        }
      }
    }
    const state = { attempt: 0, maybeApplied: false, startedAt: Date.now() };
    for (;;) {
      try {
        const res = await next(req);
        credit();
        return res;
      } catch (caught) {
        const e = normalizeFailure(req, caught);
        // Refused before it ran: sent again at once, as what it is (no attempt spent).
        if (reclassify(e)) continue;
        const d = decide(req, kind, key !== undefined, e, state);
        if (!d.retry) throw finalError(req, e, state.maybeApplied, key, state.attempt + 1);
        if (!(await sleep(d.delay, req.signal))) throw finalError(req, e, state.maybeApplied, key, state.attempt + 1);
        state.attempt++;
        retries++;
        req.contextValues.set(avoidEndpoint, d.endpoint);
        if (d.deadline !== undefined && init.headerTimeouts) setRemainingTimeout(req, d.deadline);
      }
    }
  };

  /** Streams: sent again only before their first row (or completion) was delivered. */
  async function retryStream(next: (r: StreamRequest) => Promise<StreamResponse>, req: StreamRequest): Promise<StreamResponse> {
    // Connect's request iterable is single-use: keep its messages for the next attempt.
    const source = req.message;
    let cache: unknown[] | undefined;
    (req as { message: AsyncIterable<unknown> }).message = {
      async *[Symbol.asyncIterator]() {
        if (!cache) {
          const c: unknown[] = [];
          for await (const m of source) c.push(m);
          cache = c;
          claimRead(req.method.name, callKindOf(req.method.name, c[0]), c[0] as SqlMessage);
        }
        yield* cache;
      },
    };
    let notARead = false;
    const kindOf = (m: unknown): CallKind => (notARead ? 'other' : callKindOf(req.method.name, m));
    /** A stream sent as a read that writes: sent again as a write (not retried once sent). */
    const reclassify = (e: unknown): boolean => {
      const m = cache?.[0] as SqlMessage | undefined;
      if (!m?.readOnly || !isNotARead(e)) return false;
      m.readOnly = false;
      notARead = true;
      kind = 'other';
      return true;
    };
    let kind: CallKind = 'other';
    const state = { attempt: 0, maybeApplied: false, startedAt: Date.now() };
    const open = async (): Promise<StreamResponse> => {
      for (;;) {
        try {
          const res = await next(req);
          if (cache?.[0]) kind = kindOf(cache[0]);
          return res;
        } catch (caught) {
          const e = normalizeFailure(req, caught);
          if (cache?.[0]) kind = kindOf(cache[0]);
          if (reclassify(e)) continue;
          const d = decide(req, kind, false, e, state);
          if (!d.retry || !(await sleep(d.delay, req.signal))) throw e;
          state.attempt++;
          retries++;
          req.contextValues.set(avoidEndpoint, d.endpoint);
          if (d.deadline !== undefined && init.headerTimeouts) setRemainingTimeout(req, d.deadline);
        }
      }
    };
    const first = await open();
    return {
      ...first,
      message: (async function* () {
        let res = first;
        let headerDelivered = false;
        let rowsDelivered = false;
        for (;;) {
          try {
            for await (const m of res.message as AsyncIterable<{ event?: { case?: string } }>) {
              if (m?.event?.case === 'header') {
                if (headerDelivered) continue; // the retry's header: the consumer has one
                headerDelivered = true;
              } else {
                rowsDelivered = true;
              }
              yield m;
            }
            credit();
            return;
          } catch (caught) {
            const e = normalizeFailure(req, caught);
            if (rowsDelivered) throw e;
            if (reclassify(e)) {
              res = await open();
              continue;
            }
            const d = decide(req, kind, false, e, state);
            if (!d.retry || !(await sleep(d.delay, req.signal))) throw e;
            state.attempt++;
            retries++;
            req.contextValues.set(avoidEndpoint, d.endpoint);
            if (d.deadline !== undefined && init.headerTimeouts) setRemainingTimeout(req, d.deadline);
            res = await open();
          }
        }
      })(),
    } as StreamResponse;
  }

  return {
    interceptor,
    stats() {
      const out: Record<string, number> = {};
      for (const [k, b] of budgets) out[k] = Math.round(b.tokens * 100) / 100;
      return { retries, retriesThrottled, ambiguousResults, budgets: out };
    },
  };
}

/** A `retry-after` response header (seconds, or an HTTP date), in ms. */
function retryAfterHeader(e: unknown): number | undefined {
  const v = e instanceof ConnectError ? e.metadata.get('retry-after') : null;
  if (!v) return undefined;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}

// ---------------------------------------------------------------------------------------------
// A circuit breaker as an interceptor, for transports with one endpoint the platform connects to
// (Connect over fetch or Node's HTTP stack). The Node gRPC pool keeps its own per endpoint.

/** The error of a call refused because the endpoint's circuit is open. */
export function circuitOpenError(endpoint: string, retryInMs: number): ConnectionError {
  return new ConnectionError(`the circuit breaker of ${endpoint} is open after repeated connection failures; the next probe in ${retryInMs} ms`, 'CIRCUIT_OPEN', {
    grpcCode: Code.Unavailable,
    retryable: true,
    retryAfterMs: retryInMs,
  });
}

/** A circuit breaker for a single endpoint, as an interceptor (placed inside the retry interceptor). */
export function createBreakerInterceptor(endpoint: string, options: CircuitBreakerOptions | false): { interceptor: Interceptor; stats(): CircuitStats } {
  const breaker = new CircuitBreaker(options);
  const observe = (req: UnaryRequest | StreamRequest, caught: unknown) => {
    const e = normalizeFailure(req, caught);
    if (codeOf(e) === Code.Canceled || codeOf(e) === Code.DeadlineExceeded) breaker.onNeutral();
    else if (isTransportFailure(e)) breaker.onFailure();
    else breaker.onSuccess();
  };
  const interceptor: Interceptor = (next) => async (req) => {
    if (!breaker.tryAcquire()) throw annotateAttempt(circuitOpenError(endpoint, breaker.retryInMs()), { sent: false, endpoint });
    let res;
    try {
      res = await next(req);
    } catch (e) {
      observe(req, e);
      throw e;
    }
    breaker.onSuccess();
    if (!res.stream) return res;
    const inner = res.message;
    return {
      ...res,
      message: (async function* () {
        try {
          yield* inner;
        } catch (e) {
          observe(req, e);
          throw e;
        }
      })(),
    };
  };
  return { interceptor, stats: () => breaker.stats() };
}
