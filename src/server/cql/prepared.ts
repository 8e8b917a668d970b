/**
 * Prepared statements of a CQL listener, shared by its connections (the drivers prepare once
 * and execute on any connection): id = MD5 of the keyspace and query text, as Cassandra's is a
 * digest of them. Kept per principal and bounded; a schema change forgets the statements of what it changed.
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

/** Most statement text remembered per principal, bytes (as the gRPC path's registry). */
export const maxPreparedBytesPerPrincipal = 16 * 1024 * 1024;
/** Most principals with remembered statements at once (the longest unused forgotten first). */
const maxOwners = 10_000;

interface Owner {
  /** In order of use, least recent first. */
  readonly entries: Map<string, { p: PreparedStatement; lastUsed: number; bytes: number }>;
  bytes: number;
}

/** What a statement counts against its principal's byte budget: its text and the parsed copy of it. */
function weightOf(p: PreparedStatement): number {
  return 2 * p.query.length + 256;
}

/**
 * See the file comment. Per principal (the key of `../auth/principal.ts`'s `ownerKeyOf`): at most
 * `maxPerPrincipal` statements and {@link maxPreparedBytesPerPrincipal}, the least recently used
 * forgotten first (a driver told Unprepared prepares again), each forgotten after `ttlMs` unused.
 */
export class PreparedCache {
  private readonly owners = new Map<string, Owner>();
  private readonly maxPerPrincipal: number;

  constructor(
    maxPerPrincipal: number,
    private readonly ttlMs: number,
    private readonly maxBytes = maxPreparedBytesPerPrincipal,
  ) {
    this.maxPerPrincipal = Math.max(1, maxPerPrincipal);
  }

  /** `owner`'s statement `id`, if remembered and not expired (marks it used). */
  get(owner: string, id: Buffer): PreparedStatement | undefined {
    const o = this.owners.get(owner);
    const k = id.toString('hex');
    const e = o?.entries.get(k);
    if (!o || !e) return undefined;
    o.entries.delete(k);
    if (Date.now() - e.lastUsed > this.ttlMs) {
      o.bytes -= e.bytes;
      return undefined;
    }
    e.lastUsed = Date.now();
    o.entries.set(k, e);
    this.owners.delete(owner);
    this.owners.set(owner, o);
    return e.p;
  }

  /** Remembers `p` for `owner`, forgetting its least recently used ones over the limits. */
  add(owner: string, p: PreparedStatement): void {
    let o = this.owners.get(owner);
    if (o) this.owners.delete(owner);
    else {
      if (this.owners.size >= maxOwners) this.owners.delete(this.owners.keys().next().value!);
      o = { entries: new Map(), bytes: 0 };
    }
    this.owners.set(owner, o);
    const k = p.id.toString('hex');
    const old = o.entries.get(k);
    if (old) {
      o.entries.delete(k);
      o.bytes -= old.bytes;
    }
    const bytes = weightOf(p);
    o.entries.set(k, { p, lastUsed: Date.now(), bytes });
    o.bytes += bytes;
    const now = Date.now();
    for (const [ek, e] of o.entries) {
      const expired = now - e.lastUsed > this.ttlMs;
      if (!expired && o.entries.size <= this.maxPerPrincipal && (o.bytes <= this.maxBytes || o.entries.size === 1)) break;
      o.entries.delete(ek);
      o.bytes -= e.bytes;
    }
  }

  /** Statements remembered for `owner`. */
  sizeOf(owner: string): number {
    return this.owners.get(owner)?.entries.size ?? 0;
  }

  /** Forgets what a schema change made stale. */
  invalidate(c: SchemaChange): void {
    for (const o of this.owners.values()) {
      for (const [k, e] of o.entries) {
        const t = e.p.target.kind === 'table' ? e.p.target.meta : undefined;
        if (!t) continue;
        if (t.keyspace === c.keyspace && (c.target === 'KEYSPACE' || t.name === c.table)) {
          o.entries.delete(k);
          o.bytes -= e.bytes;
        }
      }
    }
  }
}
