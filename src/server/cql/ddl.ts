/**
 * CQL schema statements: CREATE / DROP KEYSPACE as PostgreSQL schemas, CREATE / DROP TABLE and
 * TRUNCATE as tables with a composite primary key (partition key columns, then clustering
 * columns), each described by its COMMENT (./catalog.ts).
 * @packageDocumentation
 */
import type { BackendConnection } from '../backend.js';
import { quoteIdent, quoteLiteral } from '../sql-quote.js';
import type { Statement } from './ast.js';
import { keyspaceComment, keyspaceMissing, qualified, readKeyspace, readTable, tableComment } from './catalog.js';
import { CqlError, ErrorCode, invalid, unsupported } from './errors.js';
import { expiresColumn } from './planner.js';
import { isSystemKeyspace } from './system-tables.js';
import { isCollection, pgTypeOf } from './types.js';
import { keyable } from './values.js';

/** What a schema statement changed (the SCHEMA_CHANGE result and event); undefined: nothing (IF [NOT] EXISTS). */
export interface SchemaChange {
  readonly change: 'CREATED' | 'UPDATED' | 'DROPPED';
  readonly target: 'KEYSPACE' | 'TABLE';
  readonly keyspace: string;
  readonly table?: string;
}

async function exists(conn: BackendConnection, sql: string, values: unknown[]): Promise<boolean> {
  return (await conn.query({ text: sql, values })).rows.length > 0;
}

/** A keyspace that must exist (and be one of CQL's) for a table statement. */
export async function requireKeyspace(conn: BackendConnection, name: string): Promise<void> {
  if (isSystemKeyspace(name)) throw new CqlError(ErrorCode.unauthorized, `${name} keyspace is not user-modifiable.`);
  if (!(await readKeyspace(conn, name))) throw invalid(keyspaceMissing(name));
}

/** Runs a schema statement on `conn` (inside the caller's transaction). */
export async function runDdl(conn: BackendConnection, s: Statement, keyspace: string | undefined): Promise<SchemaChange | undefined> {
  switch (s.kind) {
    case 'createKeyspace': {
      if (isSystemKeyspace(s.name))
        throw new CqlError(ErrorCode.alreadyExists, `Cannot add existing keyspace "${s.name}"`, { keyspace: s.name });
      const replication = s.options.replication as Record<string, string> | undefined;
      if (!replication || typeof replication !== 'object' || !replication.class)
        throw new CqlError(
          ErrorCode.config,
          "Missing mandatory option replication with a class (e.g. {'class': 'SimpleStrategy', 'replication_factor': 1})",
        );
      if (await exists(conn, 'SELECT 1 FROM pg_namespace WHERE nspname = $1', [s.name])) {
        if (s.ifNotExists) return undefined;
        throw new CqlError(ErrorCode.alreadyExists, `Cannot add existing keyspace "${s.name}"`, { keyspace: s.name });
      }
      const cls = String(replication.class).includes('.') ? String(replication.class) : `org.apache.cassandra.locator.${replication.class}`;
      const repl = Object.fromEntries(Object.entries({ ...replication, class: cls }).map(([k, v]) => [k, String(v)]));
      await conn.query(`CREATE SCHEMA ${quoteIdent(s.name)}`);
      await conn.query(
        `COMMENT ON SCHEMA ${quoteIdent(s.name)} IS ${quoteLiteral(keyspaceComment(repl, s.options.durable_writes !== false && s.options.durable_writes !== 'false'))}`,
      );
      return { change: 'CREATED', target: 'KEYSPACE', keyspace: s.name };
    }
    case 'dropKeyspace': {
      if (isSystemKeyspace(s.name)) throw new CqlError(ErrorCode.unauthorized, `${s.name} keyspace is not user-modifiable.`);
      if (!(await readKeyspace(conn, s.name))) {
        if (s.ifExists) return undefined;
        throw new CqlError(ErrorCode.config, `Cannot drop non existing keyspace '${s.name}'.`);
      }
      await conn.query(`DROP SCHEMA ${quoteIdent(s.name)} CASCADE`);
      return { change: 'DROPPED', target: 'KEYSPACE', keyspace: s.name };
    }
    case 'createTable': {
      const ks = s.table.keyspace ?? keyspace;
      if (!ks) throw invalid('No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename');
      await requireKeyspace(conn, ks);
      const names = new Set<string>();
      for (const c of s.columns) {
        if (names.has(c.name)) throw invalid(`Multiple definition of identifier ${c.name}`);
        if (c.name === expiresColumn) throw invalid(`${expiresColumn} is reserved by HeliosDB`);
        names.add(c.name);
        if (c.static) throw unsupported('static columns');
        if (isCollection(c.type) && isCollection(c.type.kind === 'map' ? c.type.value : c.type.element))
          throw unsupported('nested collections');
        if (c.type.kind === 'map' && isCollection(c.type.key)) throw unsupported('nested collections');
      }
      if (!s.partitionKey.length) throw invalid('No PRIMARY KEY specifed (exactly one required)');
      const byName = new Map(s.columns.map((c) => [c.name, c]));
      for (const k of [...s.partitionKey, ...s.clustering]) {
        const c = byName.get(k);
        if (!c) throw invalid(`Unknown definition ${k} referenced in PRIMARY KEY`);
        if (!keyable(c.type))
          throw invalid(`Invalid ${c.type.kind === 'counter' ? 'counter' : 'collection'} type for PRIMARY KEY component ${k}`);
      }
      for (const k of Object.keys(s.order))
        if (!s.clustering.includes(k)) throw invalid(`Only clustering key columns can be defined in CLUSTERING ORDER directive: ${k}`);
      const keys = new Set([...s.partitionKey, ...s.clustering]);
      const regular = s.columns.filter((c) => !keys.has(c.name));
      const counters = regular.filter((c) => c.type.kind === 'counter');
      if (counters.length && counters.length !== regular.length)
        throw invalid('Cannot mix counter and non counter columns in the same table');
      for (const [k, v] of Object.entries(s.options)) {
        if (k === 'compact storage') throw unsupported('COMPACT STORAGE');
        if (k === 'default_time_to_live' && String(v) !== '0') throw unsupported('default_time_to_live (use INSERT ... USING TTL)');
      }
      const tbl = qualified(ks, s.table.name);
      if (await exists(conn, 'SELECT 1 FROM pg_class WHERE oid = to_regclass($1)', [tbl])) {
        if (s.ifNotExists) return undefined;
        throw new CqlError(ErrorCode.alreadyExists, `Cannot add already existing table "${s.table.name}" to keyspace "${ks}"`, {
          keyspace: ks,
          table: s.table.name,
        });
      }
      const defs = s.columns.map((c) => `${quoteIdent(c.name)} ${pgTypeOf(c.type)}${keys.has(c.name) ? ' NOT NULL' : ''}`);
      defs.push(`${quoteIdent(expiresColumn)} timestamptz`);
      defs.push(`PRIMARY KEY (${[...s.partitionKey, ...s.clustering].map(quoteIdent).join(', ')})`);
      await conn.query(`CREATE TABLE ${tbl} (${defs.join(', ')})`);
      const comment = tableComment({
        keyspace: ks,
        name: s.table.name,
        columns: s.columns,
        partitionKey: s.partitionKey,
        clustering: s.clustering,
        order: s.order,
        counter: counters.length > 0,
      });
      await conn.query(`COMMENT ON TABLE ${tbl} IS ${quoteLiteral(comment)}`);
      return { change: 'CREATED', target: 'TABLE', keyspace: ks, table: s.table.name };
    }
    case 'dropTable':
    case 'truncate': {
      const ks = s.table.keyspace ?? keyspace;
      if (!ks) throw invalid('No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename');
      if (isSystemKeyspace(ks)) throw new CqlError(ErrorCode.unauthorized, `${ks} keyspace is not user-modifiable.`);
      const meta = await readTable(conn, ks, s.table.name);
      if (!meta) {
        if (s.kind === 'dropTable' && s.ifExists) return undefined;
        await requireKeyspace(conn, ks);
        throw invalid(s.kind === 'dropTable' ? `Table '${ks}.${s.table.name}' doesn't exist` : `unconfigured table ${s.table.name}`);
      }
      await conn.query(`${s.kind === 'truncate' ? 'TRUNCATE' : 'DROP TABLE'} ${qualified(ks, s.table.name)}`);
      return s.kind === 'truncate' ? undefined : { change: 'DROPPED', target: 'TABLE', keyspace: ks, table: s.table.name };
    }
    default:
      throw invalid(`not a schema statement: ${s.kind}`);
  }
}
