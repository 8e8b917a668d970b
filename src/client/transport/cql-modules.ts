/**
 * The CQL transport's optional peer dependency, loaded on first use: `cassandra-driver` when a
 * `cql://` client connects. An application that never uses `cql://` needs none of it installed.
 * Node only.
 * @packageDocumentation
 */
import type cassandra from 'cassandra-driver';
import { HeliosDBError } from '../errors.js';

/** The driver's module. */
export type CassandraModule = typeof cassandra;

/** A prepared statement's description, as the driver's prepare handler answers it. */
export interface CqlPrepared {
  queryId: Uint8Array;
  meta: { columns?: { name: string; type: { code: number; info: unknown } }[] | null } | undefined;
}

/** What the transport uses of the driver's (internal) prepare handler. */
export interface CqlPrepareHandler {
  getPrepared(client: cassandra.Client, loadBalancing: unknown, query: string, keyspace: string | undefined): Promise<CqlPrepared>;
}

/** The loaders. */
export interface CqlModules {
  driver(): Promise<CassandraModule>;
  /** The driver's prepare handler (undefined when this version of the driver has none where expected). */
  prepareHandler(): Promise<CqlPrepareHandler | undefined>;
}

/** Imports `specifier` by a name the bundler and the compiler leave alone (the package is optional). */
async function load<T>(specifier: string): Promise<T> {
  try {
    const m = (await import(specifier)) as { default?: T } & T;
    return (m.default ?? m) as T;
  } catch (e) {
    throw new HeliosDBError(
      'cql:// URLs need the cassandra-driver package (an optional peer dependency of @heliosdb/client): npm install cassandra-driver',
      'INVALID_CONFIG',
      { cause: e },
    );
  }
}

/** Loaders that import each module once. */
export function cqlModules(): CqlModules {
  let d: Promise<CassandraModule> | undefined;
  let p: Promise<CqlPrepareHandler | undefined> | undefined;
  return {
    driver: () => (d ??= load<CassandraModule>('cassandra-driver')),
    prepareHandler: () =>
      (p ??= load<CqlPrepareHandler>('cassandra-driver/lib/prepare-handler.js').then(
        (h) => (typeof h?.getPrepared === 'function' ? h : undefined),
        () => undefined,
      )),
  };
}
