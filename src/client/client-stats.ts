/**
 * Client-side counters of transactions and streams (`client.stats()`). Browser-safe.
 * @packageDocumentation
 */

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
}

/** The mutable counters behind {@link ClientStats}. */
export class ClientCounters {
  openTransactions = 0;
  transactionsBegun = 0;
  transactionsCommitted = 0;
  transactionsRolledBack = 0;
  transactionRetries = 0;
  openStreams = 0;

  snapshot(): ClientStats {
    return {
      openTransactions: this.openTransactions,
      transactionsBegun: this.transactionsBegun,
      transactionsCommitted: this.transactionsCommitted,
      transactionsRolledBack: this.transactionsRolledBack,
      transactionRetries: this.transactionRetries,
      openStreams: this.openStreams,
    };
  }
}
