/**
 * What every DatabaseService handler shares: the backend, sessions and options, the call scope
 * (./../call/scope.ts) and the few helpers each RPC needs (parameters, the statement policy,
 * idempotency keys).
 * @packageDocumentation
 */
import { ErrorReason } from '@heliosdb/client/wire';
import type { DescMessage, Message } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import type { Logger } from 'pino';
import type { Value } from '@heliosdb/client/wire';
import { principalOf } from '../auth/principal.js';
import type { Backend } from '../backend.js';
import type { LoginResolver } from '../backend/logins.js';
import type { CallContext } from '../call-context.js';
import { type ScopeDeps, frameOf } from '../call/scope.js';
import { type CallFacts, type CheckedSql, checkSql } from '../call/statement-policy.js';
import { serverError } from '../errors.js';
import type { Idempotency, KeyedCall } from '../idempotency.js';
import type { ResolvedServerOptions } from '../options.js';
import type { SessionManager } from '../sessions.js';
import type { TypeNames } from '../type-names.js';
import { paramToText } from '../values.js';

/** Most parameters one statement takes: the protocol's Bind message counts them in 16 bits. */
/** Most parameters one statement takes (the protocol's Bind message counts them in 16 bits). */
export const maxParameters = 65535;

/** What the service runs on. */
export interface ServiceDeps {
  backend: Backend;
  sessions: SessionManager;
  logins: LoginResolver;
  idempotency: Idempotency;
  options: ResolvedServerOptions;
  typeNames: TypeNames;
  engineVersion: string;
  /** Authentication is required (`--auth required`). */
  authRequired: boolean;
  log: Logger;
}

/** The shared state and helpers of the handlers. */
export class ServiceContext {
  readonly scope: ScopeDeps;
  /** Largest unary result, bytes (under the message limit). */
  readonly maxResultBytes: number;
  /** Largest stream batch, bytes. */
  readonly batchBytesCap: number;

  constructor(readonly deps: ServiceDeps) {
    this.scope = { backend: deps.backend, sessions: deps.sessions, logins: deps.logins, idempotency: deps.idempotency, log: deps.log };
    this.maxResultBytes = Math.floor(deps.options.maxMessageBytes * 0.9);
    this.batchBytesCap = Math.max(1024, Math.floor(deps.options.maxMessageBytes / 4));
  }

  /** Parameters in PostgreSQL text form. */
  params(values: Value[]): (string | null)[] {
    // The protocol's Bind message counts parameters in 16 bits: more would wrap around.
    if (values.length > maxParameters) {
      throw serverError(
        Code.InvalidArgument,
        `${values.length} parameters are more than PostgreSQL takes in one statement (${maxParameters})`,
        {
          reason: ErrorReason.INVALID_PARAMETER,
        },
      );
    }
    return values.map((v, i) => paramToText(v, i));
  }

  /** Refuses an empty statement. */
  requireSql(sql: string): void {
    if (!sql.trim()) throw serverError(Code.InvalidArgument, 'sql is empty', { reason: ErrorReason.INVALID_REQUEST });
  }

  /** Applies the statement policy (../call/statement-policy.ts) to a call's SQL. */
  check(
    sqls: readonly string[],
    ctx: CallContext,
    txId: string,
    rpc: CallFacts['rpc'],
    opts: { keyed?: boolean; claimedRead?: boolean } = {},
  ): CheckedSql[] {
    return checkSql(sqls, {
      principal: principalOf(ctx),
      frame: frameOf(this.scope, txId),
      keyed: opts.keyed ?? false,
      claimedRead: opts.claimedRead ?? false,
      engine: this.deps.backend.engine,
      authRequired: this.deps.authRequired,
      rpc,
    });
  }

  /** The most rows a unary result may have. */
  unaryRowCap(requested: number): number {
    const max = this.deps.options.maxUnaryRows;
    return requested > 0 ? Math.min(requested, max) : max;
  }

  /**
   * The keyed call of an auto-commit request with an idempotency key (see ../idempotency.ts), if
   * it is one and the server can record keys.
   */
  keyedCall(
    req: Message & { idempotencyKey: string; transactionId: string },
    ctx: CallContext,
    method: string,
    requestSchema: DescMessage,
    responseSchema: DescMessage,
  ): KeyedCall | undefined {
    const principal = principalOf(ctx);
    if (req.transactionId || !this.deps.idempotency.applies(req.idempotencyKey, principal)) return undefined;
    return { key: req.idempotencyKey, principal, method, request: req, requestSchema, responseSchema };
  }

  /** A required transaction or session id. */
  transactionId(id: string): string {
    if (!id) throw serverError(Code.InvalidArgument, 'transaction_id is required', { reason: ErrorReason.INVALID_REQUEST });
    return id;
  }
}
