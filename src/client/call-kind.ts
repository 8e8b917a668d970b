/**
 * How a call may be sent again, read from its method descriptor: the proto's `idempotency_level`
 * (NO_SIDE_EFFECTS and IDEMPOTENT methods after any transient failure; an IDEMPOTENT method whose
 * request carries an idempotency key, Commit, is a write the key makes safe), and for the
 * statement RPCs (IDEMPOTENCY_UNKNOWN) the SQL they carry. Browser-safe.
 * @packageDocumentation
 */
import type { DescMethod } from '@bufbuild/protobuf';
import { MethodOptions_IdempotencyLevel } from '@bufbuild/protobuf/wkt';
import { Health } from '../../gen/grpc/health/v1/health_pb.js';
import { isKeyableSql, isReadOnlySql } from './sql-classify.js';

/** How a call may be retried. */
export type CallKind =
  /** No effect: retried after any transient failure. */
  | 'safe'
  /** An auto-commit write: sent again only with an idempotency key. */
  | 'write'
  /** A write its idempotency key makes safe to send again (a transaction's Commit). */
  | 'commit'
  /** A statement inside a transaction, or anything unknown: only when it never left. */
  | 'other';

/** The fields of the requests that {@link callKindOf} reads. */
export interface SqlMessage {
  sql?: string;
  transactionId?: string;
  statements?: { sql: string }[];
  idempotencyKey?: string;
  readOnly?: boolean;
}

/** The SQL texts a statement request carries (a batch's statements, or its one `sql`). */
function sqlsOf(m: SqlMessage): string[] {
  return m.statements && m.statements.length > 0 ? m.statements.map((s) => s.sql) : [m.sql ?? ''];
}

function hasField(method: DescMethod, localName: string): boolean {
  return method.input.fields.some((f) => f.localName === localName);
}

/** The kind of a call, from its method's descriptor and its request. */
export function callKindOf(method: DescMethod, message: unknown): CallKind {
  const m = (message ?? {}) as SqlMessage;
  // The standard health service's proto carries no idempotency level: its calls only read.
  if (method.parent.typeName === Health.typeName) return 'safe';
  switch (method.idempotency) {
    case MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS:
      return 'safe';
    case MethodOptions_IdempotencyLevel.IDEMPOTENT:
      return hasField(method, 'idempotencyKey') ? 'commit' : 'safe';
  }
  // A request stream cannot be sent again (CopyFrom settles by its key instead).
  if (method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming') return 'other';
  if (m.transactionId || !hasField(method, 'sql')) return 'other';
  return sqlsOf(m).every(isReadOnlySql) ? 'safe' : 'write';
}

/**
 * Whether the request's `read_only` field is the caller's claim that the call only reads: a
 * statement RPC (IDEMPOTENCY_UNKNOWN) with that field (BeginTransaction's means READ ONLY).
 */
export function claimsRead(method: DescMethod): boolean {
  return method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN && hasField(method, 'readOnly');
}

/**
 * Marks an auto-commit read as one (`read_only`): the server then runs it READ ONLY and refuses
 * it (NOT_A_READ) if it writes after all, so a read sent again after a lost answer can never
 * write twice.
 */
export function claimRead(method: DescMethod, kind: CallKind, m: SqlMessage | undefined): void {
  if (kind === 'safe' && m && claimsRead(method) && !m.transactionId) m.readOnly = true;
}

/**
 * Whether the request can carry an idempotency key: Commit always; a statement RPC whose
 * statements are all keyable (see ./sql-classify.ts), never a streaming one.
 */
export function keyableMessage(method: DescMethod, m: SqlMessage): boolean {
  if (!('idempotencyKey' in m) || method.methodKind !== 'unary') return false;
  if (method.idempotency === MethodOptions_IdempotencyLevel.IDEMPOTENT) return true;
  return sqlsOf(m).every(isKeyableSql);
}
