/**
 * `client.query` through the query cache: which calls it serves (reads, outside transactions,
 * with a TTL), and the lookup, the call and the store. Results are copied in and out
 * (`structuredClone`), so that a caller changing its rows changes no one else's. Browser-safe.
 * @packageDocumentation
 */
import type { QueryRunner } from '../query-runner.js';
import { isReadOnlySql } from '../sql-classify.js';
import type { QueryOptions, QueryResult } from '../types.js';
import { cacheKey } from './cache-key.js';
import type { QueryCache } from './query-cache.js';
import { namesIn } from './sql-tables.js';

/** The TTL a call is cached for: 0 when it is not (no TTL, `cache: false`, or not a read). */
export function cacheTtlOf(cache: QueryCache, sql: string, options: QueryOptions | undefined): number {
  const asked = options?.cache;
  const ttlMs = asked === false ? 0 : typeof asked === 'object' && asked !== null ? asked.ttlMs : cache.options.ttlMs;
  if (!(ttlMs > 0)) return 0;
  return isReadOnlySql(sql) ? ttlMs : 0;
}

/** Runs a read through the cache. */
export async function cachedQuery<T>(
  cache: QueryCache,
  principal: string,
  runner: QueryRunner,
  sql: string,
  params: readonly unknown[] | undefined,
  options: QueryOptions | undefined,
  ttlMs: number,
): Promise<QueryResult<T>> {
  const t0 = performance.now();
  const key = cacheKey(principal, sql, params, `${options?.rowMode ?? runner.config.rowMode}|${options?.maxRows ?? 0}`);
  const hit = cache.get(key);
  if (hit) return { ...(structuredClone(hit) as QueryResult<T>), roundTripMs: performance.now() - t0 };
  const pending = cache.begin();
  const result = await runner.query<T>(sql, params, options);
  let copy: QueryResult<unknown>;
  try {
    copy = structuredClone(result) as QueryResult<unknown>;
  } catch {
    return result; // a value that cannot be copied (a custom type parser's): not cached
  }
  cache.set(key, pending, namesIn(sql), copy, ttlMs);
  return result;
}
