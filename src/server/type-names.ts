/**
 * Type OID -> name, for column metadata: built-in names without a query, other types (enums,
 * domains, extension types) looked up once in pg_type and cached.
 * @packageDocumentation
 */
import { builtinTypeName } from '@heliosdb/client/wire';
import type { BackendConnection } from './backend.js';

/** See the file comment. */
export class TypeNames {
  private readonly cache = new Map<number, string>();

  /** The name of `oid`, or `''` when it was not resolved yet. */
  get = (oid: number): string => builtinTypeName(oid) ?? this.cache.get(oid) ?? '';

  /** Looks up the OIDs this cache cannot name yet, on `conn`. Failures leave names empty. */
  async resolve(conn: BackendConnection, oids: Iterable<number>): Promise<void> {
    const missing = [...new Set(oids)].filter((o) => o !== 0 && builtinTypeName(o) === undefined && !this.cache.has(o));
    if (missing.length === 0) return;
    try {
      const r = await conn.query({
        text: 'SELECT oid::int8::text, typname FROM pg_catalog.pg_type WHERE oid = ANY($1::oid[])',
        values: [`{${missing.join(',')}}`],
        rowMode: 'array',
      });
      for (const [oid, name] of r.rows as [string, string][]) this.cache.set(Number(oid), name);
    } catch {
      // Inside a failed transaction the lookup cannot run; names stay empty.
    }
  }
}
