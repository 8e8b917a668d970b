/**
 * Prepared statements of a CQL listener, shared by its connections (the drivers prepare once
 * and execute on any connection): id = MD5 of the keyspace and query text, as Cassandra's is a
 * digest of them. Bounded; a schema change forgets the statements of what it changed.
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import type { Parsed } from './ast.js';
import type { ColumnSpec } from './bind.js';
import type { SchemaChange } from './ddl.js';
import type { Target } from './execute.js';

/** A prepared statement. */
export interface PreparedStatement {
  readonly id: Buffer;
  readonly query: string;
  readonly keyspace: string | undefined;
  readonly parsed: Parsed;
  readonly target: Target;
  readonly binds: readonly ColumnSpec[];
  readonly pkIndexes: readonly number[];
  readonly columns: readonly ColumnSpec[];
}

/** The id of a query prepared in a keyspace. */
export function preparedId(keyspace: string | undefined, query: string): Buffer {
  return createHash('md5')
    .update(`${keyspace ?? ''}\u0000${query}`)
    .digest();
}

/** See the file comment. */
export class PreparedCache {
  private readonly byId = new Map<string, PreparedStatement>();
  constructor(private readonly max = 10_000) {}

  get(id: Buffer): PreparedStatement | undefined {
    return this.byId.get(id.toString('hex'));
  }

  add(p: PreparedStatement): void {
    const k = p.id.toString('hex');
    this.byId.delete(k);
    if (this.byId.size >= this.max) {
      const oldest = this.byId.keys().next().value;
      if (oldest !== undefined) this.byId.delete(oldest);
    }
    this.byId.set(k, p);
  }

  /** Forgets what a schema change made stale. */
  invalidate(c: SchemaChange): void {
    for (const [k, p] of this.byId) {
      const t = p.target.kind === 'table' ? p.target.meta : undefined;
      if (!t) continue;
      if (t.keyspace === c.keyspace && (c.target === 'KEYSPACE' || t.name === c.table)) this.byId.delete(k);
    }
  }
}
