/**
 * Statement classification with PostgreSQL's own parser (libpg-query: the PostgreSQL 18 grammar
 * compiled to WASM): per statement of a SQL text, what it is (see {@link StatementInfo}), so that
 * the server can keep read-only callers from writing, run what cannot run in a transaction block
 * outside one, refuse COPY and LISTEN in SQL text, and recognise transaction control.
 *
 * Await {@link loadSqlParser} once at start; {@link analyzeSql} is synchronous and remembers its
 * answers for recently seen texts.
 * @packageDocumentation
 */
export {
  analysisCacheLimits,
  analysisCacheStats,
  analyzeSql,
  isReadOnlyAnalysis,
  isSingleStatement,
  loadSqlParser,
  sqlParserLoaded,
} from './analysis.js';
export { NotCopyStdioError, replaceCopyStdio } from './copy-stdio.js';
export type { SqlAnalysis, StatementInfo, TransactionControl } from './types.js';
