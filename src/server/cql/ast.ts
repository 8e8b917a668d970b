/**
 * The statements the CQL parser (./parser.ts) produces.
 * @packageDocumentation
 */
import type { CqlType } from './types.js';

/** A bind marker: its position among the statement's markers, and its name for `:name`. */
export interface Marker {
  readonly kind: 'marker';
  readonly index: number;
  readonly name: string | undefined;
}

/** A term: a constant, a bind marker, a collection literal, or a function call (now(), uuid()). */
export type Term =
  | { readonly kind: 'string' | 'number' | 'uuid' | 'blob'; readonly text: string }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'null' }
  | Marker
  | { readonly kind: 'list' | 'set'; readonly items: readonly Term[] }
  | { readonly kind: 'map'; readonly entries: readonly (readonly [Term, Term])[] }
  | { readonly kind: 'call'; readonly name: string; readonly args: readonly Term[] };

/** A keyspace-qualified name; keyspace undefined: the connection's current one. */
export interface TableName {
  readonly keyspace: string | undefined;
  readonly name: string;
}

/** `column op term` in a WHERE or IF. */
export interface Relation {
  readonly column: string;
  readonly op: '=' | '<' | '>' | '<=' | '>=' | '!=' | 'IN' | 'CONTAINS';
  /** The term; for IN, a list of terms or one marker. */
  readonly value: Term | readonly Term[];
}

/** USING TTL / TIMESTAMP. */
export interface Using {
  readonly ttl?: Term;
  readonly timestamp?: Term;
}

/** `col = term`, `col = col + term`, `col = col - term`, `col = term + col`. */
export interface Assignment {
  readonly column: string;
  readonly op: 'set' | 'add' | 'subtract' | 'prepend';
  readonly value: Term;
}

/** What SELECT returns per row. */
export type Selector =
  | { readonly kind: 'column'; readonly name: string; readonly alias?: string }
  | { readonly kind: 'count'; readonly alias?: string };

/** A parsed statement. */
export type Statement =
  | { readonly kind: 'use'; readonly keyspace: string }
  | {
      readonly kind: 'createKeyspace';
      readonly name: string;
      readonly ifNotExists: boolean;
      readonly options: Readonly<Record<string, unknown>>;
    }
  | { readonly kind: 'dropKeyspace'; readonly name: string; readonly ifExists: boolean }
  | {
      readonly kind: 'createTable';
      readonly table: TableName;
      readonly ifNotExists: boolean;
      readonly columns: readonly { readonly name: string; readonly type: CqlType; readonly static: boolean }[];
      readonly partitionKey: readonly string[];
      readonly clustering: readonly string[];
      readonly order: Readonly<Record<string, 'ASC' | 'DESC'>>;
      readonly options: Readonly<Record<string, unknown>>;
    }
  | { readonly kind: 'dropTable'; readonly table: TableName; readonly ifExists: boolean }
  | { readonly kind: 'truncate'; readonly table: TableName }
  | {
      readonly kind: 'insert';
      readonly table: TableName;
      readonly columns: readonly string[];
      readonly values: readonly Term[];
      readonly ifNotExists: boolean;
      readonly using: Using;
      readonly json: boolean;
    }
  | {
      readonly kind: 'update';
      readonly table: TableName;
      readonly using: Using;
      readonly set: readonly Assignment[];
      readonly where: readonly Relation[];
      readonly ifExists: boolean;
      readonly conditions: readonly Relation[];
    }
  | {
      readonly kind: 'delete';
      readonly table: TableName;
      readonly columns: readonly string[];
      readonly using: Using;
      readonly where: readonly Relation[];
      readonly ifExists: boolean;
      readonly conditions: readonly Relation[];
    }
  | {
      readonly kind: 'select';
      readonly table: TableName;
      readonly selectors: readonly Selector[] | '*';
      readonly distinct: boolean;
      readonly json: boolean;
      readonly where: readonly Relation[];
      readonly orderBy: readonly { readonly column: string; readonly desc: boolean }[];
      readonly limit: Term | undefined;
      readonly perPartitionLimit: boolean;
      readonly allowFiltering: boolean;
    }
  | {
      readonly kind: 'batch';
      readonly type: 'logged' | 'unlogged' | 'counter';
      readonly using: Using;
      readonly statements: readonly Statement[];
    }
  | { readonly kind: 'unsupported'; readonly what: string };

/** A parsed statement and its bind markers, in order. */
export interface Parsed {
  readonly statement: Statement;
  readonly markers: readonly Marker[];
}
