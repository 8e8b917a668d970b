/**
 * Client-side counters of transactions and streams (`client.stats()`). Browser-safe.
 * @packageDocumentation
 */
import type { QueryCacheStats } from './cache/query-cache.js';

/** A snapshot of a client's transaction and stream counters. */
export interface ClientStats {
  /** Interactive transactions open now (begun and not yet committed or rolled back). */
  openTransactions: number;
  /** Transactions begun since the client was created. */
  transactionsBegun: number;
  /** Transactions committed. */
  transactionsCommitted: number;
  /** Transactions rolled back (explicitly, by `client.transaction` after a failure, by disposal, or by the server's idle timeout). */
  transactionsRolledBack: number;
  /**
   * Times `client.transaction` ran its callback again after a serialization failure or a deadlock
   * (each retry counts once).
   */
  transactionRetries: number;
  /** Result streams open now (started and not yet finished). */
  openStreams: number;
  /** Query cache lookups answered from the cache. */
  cacheHits: number;
  /** Query cache lookups that went to the server. */
  cacheMisses: number;
  /** Results in the query cache now. */
  cacheEntries: number;
  /** Their estimated size, bytes (at most `queryCache.maxBytes`). */
  cacheBytes: number;
  /** Cached results dropped because a write through this client touched their tables. */
  cacheInvalidations: number;
  /** Cached results dropped, least recently used first, to stay under `queryCache.maxBytes`. */
  cacheEvictions: number;
}

const noCache: QueryCacheStats = { cacheHits: 0, cacheMisses: 0, cacheEntries: 0, cacheBytes: 0, cacheInvalidations: 0, cacheEvictions: 0 };

/** The mutable counters behind {@link ClientStats}. */
export class ClientCounters {
  openTransactions = 0;
  transactionsBegun = 0;
  transactionsCommitted = 0;
  transactionsRolledBack = 0;
  transactionRetries = 0;
  openStreams = 0;

  snapshot(cache?: QueryCacheStats): ClientStats {
    return {
      ...(cache ?? noCache),
      openTransactions: this.openTransactions,
      transactionsBegun: this.transactionsBegun,
      transactionsCommitted: this.transactionsCommitted,
      transactionsRolledBack: this.transactionsRolledBack,
      transactionRetries: this.transactionRetries,
      openStreams: this.openStreams,
    };
  }
}
