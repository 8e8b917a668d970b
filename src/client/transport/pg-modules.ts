/**
 * The PostgreSQL transport's optional peer dependencies, loaded on first use: `pg`
 * (node-postgres) when a `postgres://` client connects, `pg-cursor` with the first stream,
 * `pg-copy-streams` with the first COPY. An application that never uses `postgres://` needs none
 * of them installed. Node only.
 * @packageDocumentation
 */
import type pg from 'pg';
import type * as copyStreams from 'pg-copy-streams';
import { HeliosDBError } from '../errors.js';

/** What the transport uses of pg-cursor (it has no type declarations of its own). */
export interface PgCursor {
  read(rows: number): Promise<unknown[]>;
  close(): Promise<void>;
  /** node-postgres's Result of the portal: its fields once described, the command tag once complete. */
  readonly _result: { fields: pg.FieldDef[]; command: string | null; rowCount: number | null };
}

/** pg-cursor's constructor. */
export type PgCursorClass = new (
  text: string,
  values: (string | null)[],
  config: { rowMode: 'array'; types: { getTypeParser: () => (text: string) => string } },
) => PgCursor;

/** The loaders. */
export interface PgModules {
  pg(): Promise<typeof pg>;
  cursor(): Promise<PgCursorClass>;
  copyStreams(): Promise<typeof copyStreams>;
}

function missing(name: string, what: string, e: unknown): HeliosDBError {
  return new HeliosDBError(
    `postgres:// URLs need the ${name} package for ${what} (an optional peer dependency of @heliosdb/client): npm install ${name}`,
    'INVALID_CONFIG',
    { cause: e },
  );
}

/** Imports `specifier` by a name the bundler and the compiler leave alone (the packages are optional). */
async function load<T>(specifier: string, what: string): Promise<T> {
  try {
    const m = (await import(specifier)) as { default?: T } & T;
    return (m.default ?? m) as T;
  } catch (e) {
    throw missing(specifier, what, e);
  }
}

/** Loaders that import each package once. */
export function pgModules(): PgModules {
  let p: Promise<typeof pg> | undefined;
  let c: Promise<PgCursorClass> | undefined;
  let s: Promise<typeof copyStreams> | undefined;
  return {
    pg: () => (p ??= load<typeof pg>('pg', 'the PostgreSQL wire protocol')),
    cursor: () => (c ??= load<PgCursorClass>('pg-cursor', 'streaming queries')),
    copyStreams: () => (s ??= load<typeof copyStreams>('pg-copy-streams', 'COPY')),
  };
}
