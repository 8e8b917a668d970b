/**
 * The behaviour suite's browser bundle entry: the browser build of the client (`src/web.ts`) and
 * the cases, exposed to the test driver as `globalThis.heliosdbSuite`.
 * @packageDocumentation
 */
import * as lib from '@heliosdb/client/web';
import { type CaseResult, cases, runAll } from './suite.js';

/** What the page offers the test driver. */
export interface BrowserSuite {
  /** The names of the cases, in order. */
  names: string[];
  /** Runs every case against `url`; results without the (unserializable) error objects. */
  run(env: { url: string; backend: 'pglite' | 'postgresql' }): Promise<Omit<CaseResult, 'error'>[]>;
  /** Runs a query with a fresh client; resolves to the rows, or to the error's name, code and message. */
  probe(
    url: string,
    sql: string,
  ): Promise<{ rows?: unknown[]; error?: { name: string; code: string; message: string; isHeliosDBError: boolean } }>;
}

const suite: BrowserSuite = {
  names: cases.map((c) => c.name),
  async run(env) {
    const results = await runAll({ lib, url: env.url, runtime: 'browser', backend: env.backend });
    return results.map(({ error: _error, ...rest }) => rest);
  },
  async probe(url, sql) {
    const client = lib.createClient({ url });
    try {
      const r = await client.query(sql, [], { timeoutMs: 5000 });
      return { rows: r.rows };
    } catch (e) {
      const err = e as InstanceType<typeof lib.HeliosDBError>;
      return { error: { name: err.name, code: err.code, message: err.message, isHeliosDBError: e instanceof lib.HeliosDBError } };
    } finally {
      await client.close();
    }
  },
};

(globalThis as { heliosdbSuite?: BrowserSuite }).heliosdbSuite = suite;
document.title = 'heliosdb behaviour suite: ready';
