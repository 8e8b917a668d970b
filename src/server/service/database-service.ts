/**
 * The DatabaseService implementation: one set of handlers, one file per group of RPCs, served by
 * both listeners.
 * @packageDocumentation
 */
import type { ServiceImpl } from '@connectrpc/connect';
import type { DatabaseService } from '@heliosdb/client/wire';
import type { NotificationHub } from '../notifications.js';
import { VERSION } from '../version.js';
import { executeBatchHandler } from './batch.js';
import { ServiceContext, type ServiceDeps } from './context.js';
import { copyHandlers } from './copy.js';
import { listenHandler } from './listen.js';
import { statementHandlers } from './statements.js';
import { streamQueryHandler } from './stream-query.js';
import { transactionHandlers } from './transactions.js';

export type { ServiceDeps } from './context.js';
export { statementIdOf } from './statements.js';

/** The service, and what must be closed with the server. */
export function createDatabaseService(
  deps: ServiceDeps,
  hub: NotificationHub,
): { impl: ServiceImpl<typeof DatabaseService>; close(): void } {
  const c = new ServiceContext(deps);
  const { registry, ...statements } = statementHandlers(c);
  const { backend, options } = deps;
  const impl: ServiceImpl<typeof DatabaseService> = {
    ...statements,
    streamQuery: streamQueryHandler(c),
    executeBatch: executeBatchHandler(c),
    ...transactionHandlers(c),
    ...copyHandlers(c),
    listen: listenHandler(c, hub),
    async getServerInfo() {
      return {
        version: VERSION,
        engine: backend.engine,
        engineVersion: deps.engineVersion,
        limits: {
          maxMessageBytes: options.maxMessageBytes,
          maxUnaryRows: options.maxUnaryRows,
          // PGlite cannot interrupt a running statement: no timeout.
          statementTimeoutMs: backend.engine === 'pglite' ? 0 : options.statementTimeoutMs,
          maxOpenTransactions: options.maxOpenTransactions,
          transactionIdleTimeoutMs: options.transactionIdleTimeoutMs,
        },
      };
    },
  };
  return { impl, close: () => registry.close() };
}
