/**
 * Transaction isolation levels. Browser-safe.
 * @packageDocumentation
 */
import { IsolationLevel as ProtoIsolationLevel } from '../../gen/heliosdb/v1/database_pb.js';

/**
 * Transaction isolation levels, as the SQL standard names them.
 *
 * | Level | Prevents | Typical use |
 * |---|---|---|
 * | `ReadUncommitted` | nothing (PostgreSQL runs it as READ COMMITTED) | analytics, bulk operations |
 * | `ReadCommitted` | dirty reads | the default; most applications |
 * | `RepeatableRead` | dirty and non-repeatable reads | reports, consistent views |
 * | `Serializable` | every anomaly | money, inventory: anything that must never interleave |
 *
 * PostgreSQL runs READ UNCOMMITTED as READ COMMITTED: it never shows uncommitted data.
 * REPEATABLE READ and SERIALIZABLE transactions can fail with `SerializationFailureError`;
 * `client.transaction` re-runs them.
 *
 * @example
 * ```ts
 * await client.transaction(async (tx) => { ... }, { isolationLevel: IsolationLevel.Serializable });
 * ```
 */
export const IsolationLevel = {
  /** READ UNCOMMITTED (PostgreSQL runs it as READ COMMITTED). */
  ReadUncommitted: 'READ UNCOMMITTED',
  /** READ COMMITTED: each statement sees what was committed before it began. PostgreSQL's default. */
  ReadCommitted: 'READ COMMITTED',
  /** REPEATABLE READ: every statement sees the snapshot taken at the transaction's first statement. */
  RepeatableRead: 'REPEATABLE READ',
  /** SERIALIZABLE: the outcome equals some serial order of the committed transactions, or one fails with 40001. */
  Serializable: 'SERIALIZABLE',
} as const;

/** One of the {@link IsolationLevel} values (the SQL spelling, e.g. `'SERIALIZABLE'`). */
export type IsolationLevel = (typeof IsolationLevel)[keyof typeof IsolationLevel];

const toProto: Record<IsolationLevel, ProtoIsolationLevel> = {
  'READ UNCOMMITTED': ProtoIsolationLevel.READ_UNCOMMITTED,
  'READ COMMITTED': ProtoIsolationLevel.READ_COMMITTED,
  'REPEATABLE READ': ProtoIsolationLevel.REPEATABLE_READ,
  SERIALIZABLE: ProtoIsolationLevel.SERIALIZABLE,
};

/** The wire enum of a level; `undefined` is the database's default. Throws TypeError for anything else. */
export function isolationLevelToProto(level: IsolationLevel | undefined): ProtoIsolationLevel {
  if (level === undefined) return ProtoIsolationLevel.UNSPECIFIED;
  const v = toProto[level];
  if (v === undefined) {
    throw new TypeError(
      `unknown isolation level ${JSON.stringify(level)}: use one of ${Object.keys(toProto)
        .map((k) => JSON.stringify(k))
        .join(', ')} (IsolationLevel.*)`,
    );
  }
  return v;
}
