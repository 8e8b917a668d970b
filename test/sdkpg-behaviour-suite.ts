/**
 * The behaviour suite (test/behaviour/suite.ts) over `postgres://` URLs, for any server that
 * speaks the PostgreSQL wire protocol: PostgreSQL itself (test/sdkpg-behaviour.test.ts) or
 * heliosdb's PostgreSQL port (call {@link describePgBehaviour} with its URL).
 */
import { describe, test } from 'node:test';
import * as lib from '@heliosdb/client';
import { cases, type ClientModule, runCase, skipReason } from './behaviour/suite.js';

const nodeEntry: ClientModule = lib;

/**
 * Declares one test per behaviour case over the `postgres://` URL `url()` returns (read when the
 * case runs, so it may come from a server started in a `before` hook). `backend` is what
 * `serverInfo().engine` must report.
 */
export function describePgBehaviour(title: string, url: () => string, backend: 'pglite' | 'postgresql'): void {
  describe(title, () => {
    for (const c of cases) {
      const skip = skipReason(c, 'node-pg', nodeEntry);
      test(`[node-pg] ${c.name}`, { skip }, async () => {
        const r = await runCase(c, { lib: nodeEntry, url: url(), runtime: 'node-pg', backend });
        if (r.status === 'failed') throw r.error;
      });
    }
  });
}
