/**
 * The query cache's keys: the caller (the client's credentials), the SQL text, the parameter
 * values with their types, and the options that change a result's shape. Browser-safe.
 * @packageDocumentation
 */
import type { ResolvedConnectionConfig } from '../config.js';

/** Parameter values as text that tells types apart (`1` and `'1'`, a bigint, a date, bytes). */
export function paramsKey(params: readonly unknown[] | undefined): string {
  if (!params || params.length === 0) return '[]';
  return JSON.stringify(params, function (this: unknown, k: string, v: unknown) {
    const raw = k === '' ? v : (this as Record<string, unknown>)[k];
    if (typeof raw === 'bigint') return { $bigint: raw.toString() };
    if (raw instanceof Date) return { $date: Number.isNaN(raw.getTime()) ? 'invalid' : raw.toISOString() };
    if (raw instanceof Uint8Array) return { $bytes: Array.from(raw, (b) => b.toString(16).padStart(2, '0')).join('') };
    if (raw instanceof ArrayBuffer) return { $bytes: Array.from(new Uint8Array(raw), (b) => b.toString(16).padStart(2, '0')).join('') };
    if (raw === undefined) return { $undefined: true };
    if (typeof raw === 'number' && !Number.isFinite(raw)) return { $number: String(raw) };
    return v;
  });
}

/**
 * Who the client's calls run as, from its credentials (a user name, an API key's public id, or
 * OAuth), so that a key never matches another caller's entry. The secret part of a key is never
 * kept.
 */
export function principalKey(config: Pick<ResolvedConnectionConfig, 'user' | 'apiKey' | 'oauth'>): string {
  if (config.user) return `user:${config.user}`;
  if (config.apiKey) return `key:${config.apiKey.split('_').slice(0, 2).join('_')}`;
  if (config.oauth) return 'oauth';
  return 'anonymous';
}

/** The whole key of one query. */
export function cacheKey(principal: string, sql: string, params: readonly unknown[] | undefined, shape: string): string {
  return `${principal}\u0000${shape}\u0000${sql}\u0000${paramsKey(params)}`;
}
