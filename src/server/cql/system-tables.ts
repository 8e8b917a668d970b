/**
 * The `system` and `system_schema` tables the drivers read (system.local, system.peers, the
 * keyspaces, tables and columns of `system_schema`, and the rest of `system_schema` empty),
 * answered from the catalog (./catalog.ts) rather than stored.
 * @packageDocumentation
 */
import type { BackendConnection } from '../backend.js';
import { listKeyspaces, listTables, stableId, type TableMeta } from './catalog.js';
import { type CqlType, t, typeText } from './types.js';
import type { CqlValue } from './values.js';

/** A column of a system table. */
export interface SystemColumn {
  readonly name: string;
  readonly type: CqlType;
}

/** What a system table needs to know about the server. */
export interface SystemContext {
  readonly conn: BackendConnection;
  /** The address the client connected to. */
  readonly localAddress: string;
  readonly dataCenter: string;
  readonly releaseVersion: string;
}

/** A system table: its columns, and its rows (objects by column name). */
export interface SystemTable {
  readonly columns: readonly SystemColumn[];
  rows(ctx: SystemContext): Promise<Record<string, CqlValue>[]>;
}

const text = t('text');
const setOfText: CqlType = { kind: 'set', element: text };
const mapTextText: CqlType = { kind: 'map', key: text, value: text };
const mapTextBlob: CqlType = { kind: 'map', key: text, value: t('blob') };

function cols(spec: Record<string, CqlType>): SystemColumn[] {
  return Object.entries(spec).map(([name, type]) => ({ name, type }));
}

const empty = (spec: Record<string, CqlType>): SystemTable => ({ columns: cols(spec), rows: async () => [] });

const peers = cols({
  peer: t('inet'),
  data_center: text,
  host_id: t('uuid'),
  preferred_ip: t('inet'),
  rack: text,
  release_version: text,
  rpc_address: t('inet'),
  schema_version: t('uuid'),
  tokens: setOfText,
});

/** The schema version every node agrees on (one node). */
export const schemaVersion = stableId('heliosdb-cql-schema');

function tableRow(tb: TableMeta): Record<string, CqlValue> {
  return {
    keyspace_name: tb.keyspace,
    table_name: tb.name,
    bloom_filter_fp_chance: 0.01,
    caching: [
      ['keys', 'ALL'],
      ['rows_per_partition', 'NONE'],
    ],
    cdc: false,
    comment: '',
    compaction: [['class', 'org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy']],
    compression: [],
    crc_check_chance: 1,
    dclocal_read_repair_chance: 0,
    default_time_to_live: 0,
    extensions: [],
    flags: ['compound'],
    gc_grace_seconds: 864000,
    id: tb.id,
    max_index_interval: 2048,
    memtable_flush_period_in_ms: 0,
    min_index_interval: 128,
    read_repair_chance: 0,
    speculative_retry: '99PERCENTILE',
  };
}

/** The system tables by `keyspace.table`. */
export const systemTables: Readonly<Record<string, SystemTable>> = {
  'system.local': {
    columns: cols({
      key: text,
      bootstrapped: text,
      broadcast_address: t('inet'),
      cluster_name: text,
      cql_version: text,
      data_center: text,
      host_id: t('uuid'),
      listen_address: t('inet'),
      native_protocol_version: text,
      partitioner: text,
      rack: text,
      release_version: text,
      rpc_address: t('inet'),
      rpc_port: t('int'),
      schema_version: t('uuid'),
      tokens: setOfText,
    }),
    rows: async (c) => [
      {
        key: 'local',
        bootstrapped: 'COMPLETED',
        broadcast_address: c.localAddress,
        cluster_name: 'HeliosDB',
        cql_version: '3.4.4',
        data_center: c.dataCenter,
        host_id: stableId('heliosdb-cql-host'),
        listen_address: c.localAddress,
        native_protocol_version: '4',
        partitioner: 'org.apache.cassandra.dht.Murmur3Partitioner',
        rack: 'rack1',
        release_version: c.releaseVersion,
        rpc_address: c.localAddress,
        rpc_port: 0,
        schema_version: schemaVersion,
        tokens: ['-9223372036854775808'],
      },
    ],
  },
  'system.peers': { columns: peers, rows: async () => [] },
  'system_schema.keyspaces': {
    columns: cols({ keyspace_name: text, durable_writes: t('boolean'), replication: mapTextText }),
    rows: async (c) => {
      const own = (await listKeyspaces(c.conn)).map((k) => ({
        keyspace_name: k.name,
        durable_writes: k.durableWrites,
        replication: Object.entries(k.replication).sort() as [CqlValue, CqlValue][],
      }));
      const local = [['class', 'org.apache.cassandra.locator.LocalStrategy']] as [CqlValue, CqlValue][];
      return [
        { keyspace_name: 'system', durable_writes: true, replication: local },
        { keyspace_name: 'system_schema', durable_writes: true, replication: local },
        ...own,
      ];
    },
  },
  'system_schema.tables': {
    columns: cols({
      keyspace_name: text,
      table_name: text,
      bloom_filter_fp_chance: t('double'),
      caching: mapTextText,
      cdc: t('boolean'),
      comment: text,
      compaction: mapTextText,
      compression: mapTextText,
      crc_check_chance: t('double'),
      dclocal_read_repair_chance: t('double'),
      default_time_to_live: t('int'),
      extensions: mapTextBlob,
      flags: setOfText,
      gc_grace_seconds: t('int'),
      id: t('uuid'),
      max_index_interval: t('int'),
      memtable_flush_period_in_ms: t('int'),
      min_index_interval: t('int'),
      read_repair_chance: t('double'),
      speculative_retry: text,
    }),
    rows: async (c) => (await listTables(c.conn)).map(tableRow),
  },
  'system_schema.columns': {
    columns: cols({
      keyspace_name: text,
      table_name: text,
      column_name: text,
      clustering_order: text,
      column_name_bytes: t('blob'),
      kind: text,
      position: t('int'),
      type: text,
    }),
    rows: async (c) =>
      (await listTables(c.conn)).flatMap((tb) =>
        tb.columns.map((col) => ({
          keyspace_name: tb.keyspace,
          table_name: tb.name,
          column_name: col.name,
          clustering_order: col.kind === 'clustering' ? (tb.order[col.name] ?? 'ASC').toLowerCase() : 'none',
          column_name_bytes: Buffer.from(col.name, 'utf8'),
          kind: col.kind,
          position: col.position,
          type: typeText(col.type),
        })),
      ),
  },
  'system_schema.types': empty({
    keyspace_name: text,
    type_name: text,
    field_names: { kind: 'list', element: text },
    field_types: { kind: 'list', element: text },
  }),
  'system_schema.functions': empty({
    keyspace_name: text,
    function_name: text,
    argument_names: { kind: 'list', element: text },
    argument_types: { kind: 'list', element: text },
    body: text,
    called_on_null_input: t('boolean'),
    language: text,
    return_type: text,
  }),
  'system_schema.aggregates': empty({
    keyspace_name: text,
    aggregate_name: text,
    argument_types: { kind: 'list', element: text },
    final_func: text,
    initcond: text,
    return_type: text,
    state_func: text,
    state_type: text,
  }),
  'system_schema.indexes': empty({ keyspace_name: text, table_name: text, index_name: text, kind: text, options: mapTextText }),
  'system_schema.triggers': empty({ keyspace_name: text, table_name: text, trigger_name: text, options: mapTextText }),
  'system_schema.views': empty({
    keyspace_name: text,
    view_name: text,
    base_table_id: t('uuid'),
    base_table_name: text,
    include_all_columns: t('boolean'),
    where_clause: text,
    id: t('uuid'),
  }),
  'system_schema.dropped_columns': empty({
    keyspace_name: text,
    table_name: text,
    column_name: text,
    dropped_time: t('timestamp'),
    type: text,
  }),
};

/** Whether a keyspace is one of the system keyspaces (read-only, answered here). */
export function isSystemKeyspace(name: string): boolean {
  return (
    name === 'system' ||
    name === 'system_schema' ||
    name === 'system_auth' ||
    name === 'system_distributed' ||
    name === 'system_traces' ||
    name === 'system_virtual_schema'
  );
}
