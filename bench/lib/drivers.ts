/**
 * The client stacks the benchmark compares, each behind one small interface: the HeliosDB SDK
 * (native gRPC, Connect, postgres://), the raw generated stub on a bare grpc-js client (the floor
 * of our stack), node-postgres and postgres.js (straight to PostgreSQL, or node-postgres through the
 * server's pg port), and cassandra-driver on the server's CQL port (./cql-driver.ts).
 * @packageDocumentation
 */
import { create, fromBinary, type DescMessage, toBinary } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import pg from 'pg';
import Cursor from 'pg-cursor';
import postgres from 'postgres';
import {
  type ExecuteBatchRequest,
  ExecuteBatchRequestSchema,
  type ExecuteBatchResponse,
  ExecuteBatchResponseSchema,
  type QueryRequest,
  QueryRequestSchema,
  type QueryResponse,
  QueryResponseSchema,
  type StreamQueryRequest,
  StreamQueryRequestSchema,
  type StreamQueryResponse,
  StreamQueryResponseSchema,
} from '../../gen/heliosdb/v1/database_pb.js';
import { RowFormat, type Value, ValueSchema } from '../../gen/heliosdb/v1/value_pb.js';
import { createClient, type HeliosDBClient } from '@heliosdb/client';
import { cqlDriver } from './cql-driver.js';
import { expectValue, insertKvSql, kvValue, pointKey, pointSql } from './kv.js';
import { tracedClient } from './traced.js';
import type { BenchDriver, BenchRow, CellSpec, DriverName, DriverNotes } from './types.js';

export type { BenchDriver, BenchRow, DriverNotes } from './types.js';

export const insertTable = 'bench_insert';
export const insertColumns = ['id', 'name', 'score', 'created'] as const;
export const createInsertTable = `CREATE TABLE IF NOT EXISTS ${insertTable} (id int, name text, score float8, created timestamptz)`;
export const simpleSql = 'SELECT $1::int AS n';

/** The streamed result: `rows` rows of ~1 KB. */
export function streamSql(rows: number, width = 1000): string {
  return `SELECT g, repeat('x', ${width}) AS payload FROM generate_series(1, ${rows}) g`;
}

/** Bytes of the text cells of {@link streamSql}: the digits of g plus the payload. */
export function streamPayloadBytes(rows: number, width = 1000): number {
  let digits = 0;
  for (let d = 1, lo = 1; lo <= rows; d++, lo *= 10) digits += d * (Math.min(rows, lo * 10 - 1) - lo + 1);
  return digits + rows * width;
}

function multiRowInsert(n: number): string {
  const groups: string[] = [];
  for (let r = 0; r < n; r++) {
    const b = r * 4;
    groups.push(`($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4})`);
  }
  return `INSERT INTO ${insertTable} (${insertColumns.join(', ')}) VALUES ${groups.join(', ')}`;
}

const multiRowCache = new Map<number, string>();
function multiRowInsertSql(n: number): string {
  let s = multiRowCache.get(n);
  if (!s) multiRowCache.set(n, (s = multiRowInsert(n)));
  return s;
}

const singleInsertSql = `INSERT INTO ${insertTable} (${insertColumns.join(', ')}) VALUES ($1, $2, $3, $4)`;

function expectN(got: unknown, i: number): void {
  if (got !== i) throw new Error(`SELECT $1::int returned ${String(got)}, expected ${i}`);
}

// ---------------------------------------------------------------------------------------------
// HeliosDB SDK

function sdkDriver(client: HeliosDBClient, mode: 'many' | 'values'): BenchDriver {
  const notes: DriverNotes = {};
  let insert: ((rows: BenchRow[]) => Promise<void>) | undefined;
  let insertAll: ((rows: BenchRow[]) => Promise<void>) | undefined;
  if (mode === 'values') {
    insert = async (rows) => {
      await client.execute(multiRowInsertSql(rows.length), rows.flat());
    };
    notes.batch = 'client.execute with one multi-row INSERT ... VALUES per chunk (the statements pg runs)';
  } else {
    insertAll = async (rows) => {
      const r = await client.executeMany(singleInsertSql, rows);
      if (r.rowCount !== rows.length) throw new Error(`executeMany inserted ${r.rowCount} rows, expected ${rows.length}`);
    };
    notes.batch =
      'one client.executeMany call with every row (the SDK splits it into ExecuteBatch calls of about 4 MiB, one INSERT with a parameter set per row, in one transaction)';
  }
  const stream = async (sql: string) => {
    let n = 0;
    for await (const rows of client.stream(sql).batches()) n += rows.length;
    return n;
  };
  notes.stream = 'client.stream(sql).batches(), rows decoded to objects';
  notes.simple = 'client.query, the SDK defaults';
  notes.point = 'client.query';
  notes.insert = 'client.execute of the upsert';
  return {
    notes,
    async simple(i) {
      const r = await client.query<{ n: number }>(simpleSql, [i]);
      expectN(r.rows[0]?.n, i);
    },
    async point(i) {
      const key = pointKey(i);
      const r = await client.query<{ value: string }>(pointSql, [key]);
      expectValue(r.rows[0]?.value, key);
    },
    async insertOne(key) {
      const r = await client.execute(insertKvSql, [key, kvValue(key)]);
      if (r.rowCount !== 1) throw new Error(`the insert affected ${r.rowCount} rows`);
    },
    insert,
    insertAll,
    stream,
    close: () => client.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// The raw stub: grpc-js + protobuf-es, no SDK code.

function ser<T>(desc: DescMessage) {
  return (m: T): Buffer => {
    const b = toBinary(desc, m as never);
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  };
}
function de<T>(desc: DescMessage) {
  return (b: Buffer): T => fromBinary(desc, b) as T;
}

const service = '/heliosdb.v1.DatabaseService/';

function toValue(v: number | string | Date): Value {
  if (typeof v === 'number') {
    return create(ValueSchema, { kind: Number.isInteger(v) ? { case: 'int32', value: v } : { case: 'float64', value: v } });
  }
  if (typeof v === 'string') return create(ValueSchema, { kind: { case: 'text', value: v } });
  return create(ValueSchema, { kind: { case: 'timestamptz', value: BigInt(v.getTime()) * 1000n } });
}

function rawDriver(grpcUrl: string): BenchDriver {
  const target = grpcUrl.replace(/^grpc:\/\//, '');
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    'grpc.max_send_message_length': 64 * 1024 * 1024,
  });
  const q = { ser: ser<QueryRequest>(QueryRequestSchema), de: de<QueryResponse>(QueryResponseSchema) };
  const b = { ser: ser<ExecuteBatchRequest>(ExecuteBatchRequestSchema), de: de<ExecuteBatchResponse>(ExecuteBatchResponseSchema) };
  const s = { ser: ser<StreamQueryRequest>(StreamQueryRequestSchema), de: de<StreamQueryResponse>(StreamQueryResponseSchema) };
  return {
    notes: {
      all: 'one bare grpc.Client (one HTTP/2 connection), protobuf-es codecs of the generated schemas; rows left as compact bytes, not decoded',
      batch: 'the ExecuteBatch RPC (sql + parameter_sets)',
    },
    simple(i) {
      const req = create(QueryRequestSchema, {
        sql: simpleSql,
        params: [create(ValueSchema, { kind: { case: 'int32', value: i } })],
        rowFormat: RowFormat.COMPACT,
      });
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest(service + 'Query', q.ser, q.de, req, (err, res) => {
          if (err) return reject(err);
          if (res?.result?.rows?.rowCount !== 1) return reject(new Error('Query returned no row'));
          resolve();
        });
      });
    },
    insert(rows) {
      const req = create(ExecuteBatchRequestSchema, {
        sql: singleInsertSql,
        parameterSets: rows.map((r) => ({ values: r.map(toValue) })),
        atomic: true,
      });
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest(service + 'ExecuteBatch', b.ser, b.de, req, (err, res) => {
          if (err) return reject(err);
          if (Number(res?.rowsAffected) !== rows.length)
            return reject(new Error(`ExecuteBatch inserted ${res?.rowsAffected}, expected ${rows.length}`));
          resolve();
        });
      });
    },
    stream(sql) {
      const req = create(StreamQueryRequestSchema, { sql, rowFormat: RowFormat.COMPACT });
      return new Promise((resolve, reject) => {
        let n = 0;
        let complete = false;
        const call = client.makeServerStreamRequest(service + 'StreamQuery', s.ser, s.de, req);
        call.on('data', (m: StreamQueryResponse) => {
          if (m.event.case === 'rows') n += m.event.value.rowCount;
          else if (m.event.case === 'complete') complete = true;
        });
        call.on('error', reject);
        call.on('end', () => (complete ? resolve(n) : reject(new Error('stream ended without complete'))));
      });
    },
    close: async () => client.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// node-postgres

function pgDriver(url: string, poolSize: number, maxRowsPerStatement = Number.POSITIVE_INFINITY): BenchDriver {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  return {
    notes: {
      all: `pg.Pool (max ${poolSize})`,
      simple: 'pool.query with a parameter (extended protocol, unnamed statement)',
      batch: Number.isFinite(maxRowsPerStatement)
        ? `one multi-row INSERT ... VALUES per ${maxRowsPerStatement} rows of a chunk (the embedded engine's pg port refuses statements over 64 KiB)`
        : 'one multi-row INSERT ... VALUES per chunk',
      stream: 'pg-cursor, 2000 rows per read',
      point: 'pool.query of a named (prepared) statement',
      insert: 'pool.query of a named (prepared) upsert',
    },
    async simple(i) {
      const r = await pool.query<{ n: number }>(simpleSql, [i]);
      expectN(r.rows[0]?.n, i);
    },
    async point(i) {
      const key = pointKey(i);
      const r = await pool.query<{ value: string }>({ name: 'bench_point', text: pointSql, values: [key] });
      expectValue(r.rows[0]?.value, key);
    },
    async insertOne(key) {
      const r = await pool.query({ name: 'bench_insert_kv', text: insertKvSql, values: [key, kvValue(key)] });
      if (r.rowCount !== 1) throw new Error(`the insert affected ${r.rowCount} rows`);
    },
    async insert(rows) {
      for (let i = 0; i < rows.length; i += maxRowsPerStatement) {
        const part = rows.slice(i, i + maxRowsPerStatement);
        await pool.query(multiRowInsertSql(part.length), part.flat());
      }
    },
    async stream(sql) {
      const c = await pool.connect();
      try {
        const cursor = c.query(new Cursor<Record<string, unknown>>(sql));
        let n = 0;
        for (;;) {
          const rows = await cursor.read(2000);
          if (rows.length === 0) break;
          n += rows.length;
        }
        await cursor.close();
        return n;
      } finally {
        c.release();
      }
    },
    close: () => pool.end(),
  };
}

// ---------------------------------------------------------------------------------------------
// postgres.js

function postgresJsDriver(url: string, poolSize: number): BenchDriver {
  const sql = postgres(url, { max: poolSize, onnotice: () => {} });
  return {
    notes: {
      all: `postgres(url, { max: ${poolSize} }), its defaults (named prepared statements)`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the label names postgres.js's template
      batch: 'sql`INSERT INTO t ${sql(rows)}` per chunk',
      stream: '.cursor(2000)',
    },
    async simple(i) {
      const r = await sql<{ n: number }[]>`SELECT ${i}::int AS n`;
      expectN(r[0]?.n, i);
    },
    async insert(rows) {
      const objects = rows.map(([id, name, score, created]) => ({ id, name, score, created }));
      await sql`INSERT INTO ${sql(insertTable)} ${sql(objects, ...insertColumns)}`;
    },
    async stream(text) {
      let n = 0;
      for await (const rows of sql.unsafe(text).cursor(2000)) n += rows.length;
      return n;
    },
    close: () => sql.end({ timeout: 5 }),
  };
}

/** Why a stack cannot run here, or undefined when it can. */
export function unsupported(driver: DriverName, spec: Pick<CellSpec, 'targets' | 'backend'>): string | undefined {
  if (spec.backend !== 'direct' && (driver === 'pg' || driver === 'sdk-pg' || driver === 'postgres.js') && !spec.targets.pgPortUrl)
    return 'the server has no pg port';
  if (driver === 'cql' && !spec.targets.cqlAddress) return 'the server has no CQL port';
  if (driver === 'sdk-connect') {
    if (!spec.targets.httpUrl) return 'the server has no HTTP listener';
    try {
      const c = createClient({ url: spec.targets.httpUrl, minConnections: 0 });
      void c.close();
    } catch (e) {
      return `the Node client does not take http:// URLs yet (${(e as Error).message.split(':')[0]})`;
    }
  }
  return undefined;
}

/** Opens a stack for a cell. */
export function openDriver(spec: CellSpec): BenchDriver {
  const { targets } = spec;
  // The PostgreSQL drivers: straight to PostgreSQL, or through the server's pg port.
  const pgUrl = spec.backend === 'direct' ? targets.postgresUrl! : targets.pgPortUrl!;
  // Through the pg port every bench client is one principal, which holds at most
  // --max-connections-per-principal (half of the server's pool of 20) backends at once.
  const pgPoolSize = spec.backend === 'direct' ? spec.poolSize : Math.min(spec.poolSize, 10);
  switch (spec.driver) {
    case 'sdk-grpc':
      return sdkDriver(createClient({ url: targets.grpcUrl! }), 'many');
    case 'sdk-grpc-traced': {
      const d = sdkDriver(tracedClient(targets.grpcUrl!), 'many');
      d.notes.all =
        'an OpenTelemetry BasicTracerProvider registered in the client process, a BatchSpanProcessor with an exporter that drops the spans: every call records a client span and sends its traceparent (the server process has no provider)';
      return d;
    }
    case 'cql':
      return cqlDriver(targets.cqlAddress!);
    case 'sdk-session': {
      const d = sdkDriver(createClient({ url: targets.grpcUrl!, sessions: true }), 'many');
      d.notes.all =
        'sessions: true (unary calls multiplexed over one SessionService stream per connection, one message per event-loop tick)';
      return d;
    }
    case 'sdk-values':
      return sdkDriver(createClient({ url: targets.grpcUrl! }), 'values');
    case 'sdk-connect':
      return sdkDriver(createClient({ url: targets.httpUrl! }), 'many');
    case 'sdk-pg':
      return sdkDriver(createClient({ url: pgUrl, maxConnections: pgPoolSize }), 'many');
    case 'raw':
      return rawDriver(targets.grpcUrl!);
    case 'pg':
      return pgDriver(pgUrl, pgPoolSize, spec.backend === 'pglite' ? 1000 : undefined);
    case 'postgres.js':
      return postgresJsDriver(pgUrl, pgPoolSize);
  }
}
