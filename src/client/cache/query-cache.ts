/**
 * The client's query cache (opt-in): read results kept in memory, keyed by caller, SQL and
 * parameters (./cache-key.ts), each for its TTL, bounded by an estimate of their bytes with the
 * least recently used dropped first. A write through the same client drops the entries that read
 * a table it writes (./sql-tables.ts), when it starts and again when it ends (and, in a
 * transaction, when it commits); a read that overlapped such a write is not stored. Browser-safe.
 * @packageDocumentation
 */
import type { QueryResult } from '../types.js';
import { estimateBytes } from './result-size.js';
import type { TableSet } from './sql-tables.js';

/** Client option `queryCache`. */
export interface QueryCacheOptions {
  /**
   * How long each read's result is served from the cache, ms, for every `client.query` that is a
   * read (per call: `cache: false` opts out, `cache: { ttlMs }` sets another TTL). `0`: only calls
   * that ask with `cache` are cached. Default `0`.
   */
  ttlMs?: number;
  /** The most memory the cached results may take, bytes (estimated); the least recently used go first. Default `16777216` (16 MiB). */
  maxBytes?: number;
}

/** Defaults of {@link QueryCacheOptions}. */
export const queryCacheDefaults: Required<QueryCacheOptions> = { ttlMs: 0, maxBytes: 16 * 1024 * 1024 };

interface Entry {
  result: QueryResult<unknown>;
  tables: ReadonlySet<string>;
  expiresAt: number;
  bytes: number;
}

/** Counters of the cache, in `client.stats()`. */
export interface QueryCacheStats {
  cacheHits: number;
  cacheMisses: number;
  /** Results held now. */
  cacheEntries: number;
  /** Their estimated size, bytes. */
  cacheBytes: number;
  /** Entries dropped because a write through this client touched their tables. */
  cacheInvalidations: number;
  /** Entries dropped to stay under `maxBytes`. */
  cacheEvictions: number;
}

/** A read in flight, to be stored when it ends unless a write to its tables overlapped it. */
export interface PendingRead {
  readonly epoch: number;
}

/** See the file comment. */
export class QueryCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private epoch = 0;
  private allChangedAt = 0;
  private readonly changedAt = new Map<string, number>();
  private readonly txWrites = new Map<string, Set<string> | 'all'>();
  private readonly counters = { cacheHits: 0, cacheMisses: 0, cacheInvalidations: 0, cacheEvictions: 0 };

  constructor(
    readonly options: Required<QueryCacheOptions>,
    private readonly now: () => number = () => Date.now(),
  ) {
    if (!(options.maxBytes >= 0) || !(options.ttlMs >= 0))
      throw new RangeError(`queryCache needs ttlMs >= 0 (${options.ttlMs}) and maxBytes >= 0 (${options.maxBytes})`);
  }

  /** The live entry for `key` (a hit moves it to the most recently used), counting the hit or miss. */
  get(key: string): QueryResult<unknown> | undefined {
    const e = this.entries.get(key);
    if (e && e.expiresAt > this.now()) {
      this.entries.delete(key);
      this.entries.set(key, e);
      this.counters.cacheHits++;
      return e.result;
    }
    if (e) this.remove(key, e);
    this.counters.cacheMisses++;
    return undefined;
  }

  /** Notes a read starting (its result may be stored by {@link set} only if no write to its tables overlapped it). */
  begin(): PendingRead {
    return { epoch: this.epoch };
  }

  /** Stores a read's result for `ttlMs`, unless a write to `tables` overlapped it or it is larger than the bound. */
  set(key: string, read: PendingRead, tables: ReadonlySet<string>, result: QueryResult<unknown>, ttlMs: number): void {
    if (ttlMs <= 0 || this.allChangedAt > read.epoch) return;
    for (const t of tables) if ((this.changedAt.get(t) ?? 0) > read.epoch) return;
    const bytes = estimateBytes(result) + key.length * 2;
    if (bytes > this.options.maxBytes) return;
    const old = this.entries.get(key);
    if (old) this.remove(key, old);
    this.entries.set(key, { result, tables, expiresAt: this.now() + ttlMs, bytes });
    this.bytes += bytes;
    for (const [k, e] of this.entries) {
      if (this.bytes <= this.options.maxBytes) break;
      this.remove(k, e);
      this.counters.cacheEvictions++;
    }
  }

  /** A write to `tables` (or to everything) started or ended: drops the entries that read them. */
  changed(tables: TableSet): void {
    this.epoch++;
    if (tables === 'all') {
      this.allChangedAt = this.epoch;
      this.changedAt.clear();
      this.counters.cacheInvalidations += this.entries.size;
      this.entries.clear();
      this.bytes = 0;
      return;
    }
    if (tables.size === 0) return;
    for (const t of tables) this.changedAt.set(t, this.epoch);
    for (const [k, e] of this.entries) {
      for (const t of e.tables) {
        if (tables.has(t)) {
          this.remove(k, e);
          this.counters.cacheInvalidations++;
          break;
        }
      }
    }
  }

  /** A write inside transaction (or session) `id`: its tables change again when it commits. */
  changedIn(id: string, tables: TableSet): void {
    this.changed(tables);
    const seen = this.txWrites.get(id);
    if (seen === 'all') return;
    if (tables === 'all') this.txWrites.set(id, 'all');
    else if (seen) for (const t of tables) seen.add(t);
    else this.txWrites.set(id, new Set(tables));
  }

  /** Transaction (or session) `id` ended: committed, its writes are visible now. */
  ended(id: string, committed: boolean): void {
    const seen = this.txWrites.get(id);
    this.txWrites.delete(id);
    if (seen && committed) this.changed(seen);
  }

  /** Forgets every entry. */
  clear(): void {
    this.changed('all');
  }

  stats(): QueryCacheStats {
    return { ...this.counters, cacheEntries: this.entries.size, cacheBytes: this.bytes };
  }

  private remove(key: string, e: Entry): void {
    this.entries.delete(key);
    this.bytes -= e.bytes;
  }
}
