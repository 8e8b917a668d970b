/**
 * The bodies of requests and results (native_protocol_v4.spec section 4): query parameters of
 * QUERY and EXECUTE, BATCH, and the RESULT kinds (Void, Rows with paging state, Set_keyspace,
 * Prepared with pk_indexes, Schema_change), plus EVENT.
 * @packageDocumentation
 */
import type { ColumnSpec } from './bind.js';
import type { SchemaChange } from './ddl.js';
import type { CqlResult } from './execute.js';
import { invalid } from './errors.js';
import { type BodyReader, BodyWriter, ProtocolViolation, type WireValue } from './frame.js';
import { writeOption } from './types.js';
import { type CqlValue, encodeValue } from './values.js';

/** Query parameters (section 4.1.4). */
export interface QueryParams {
  readonly consistency: number;
  readonly values: readonly WireValue[];
  /** Names of the values (flag 0x40), else undefined. */
  readonly names: readonly string[] | undefined;
  readonly skipMetadata: boolean;
  /** Rows per page; -1 without. */
  readonly pageSize: number;
  readonly pagingState: Buffer | null;
  readonly serialConsistency: number | undefined;
  /** The default timestamp (flag 0x20); refused by the server if given. */
  readonly timestamp: bigint | undefined;
}

const maxValues = 65_535;

/** Reads query parameters. */
export function readQueryParams(r: BodyReader): QueryParams {
  const consistency = r.short();
  const flags = r.byte();
  const values: WireValue[] = [];
  let names: string[] | undefined;
  if (flags & 0x01) {
    const n = r.short();
    if (n > maxValues) throw new Error('too many values');
    if (flags & 0x40) names = [];
    for (let i = 0; i < n; i++) {
      if (names) names.push(r.string().toLowerCase());
      values.push(r.value());
    }
  }
  const pageSize = flags & 0x04 ? r.int() : -1;
  const pagingState = flags & 0x08 ? r.bytes() : null;
  const serialConsistency = flags & 0x10 ? r.short() : undefined;
  const timestamp = flags & 0x20 ? r.long() : undefined;
  return { consistency, values, names, skipMetadata: (flags & 0x02) !== 0, pageSize, pagingState, serialConsistency, timestamp };
}

/** One statement of a BATCH message. */
export interface BatchEntry {
  readonly query: string | undefined;
  readonly id: Buffer | undefined;
  readonly values: readonly WireValue[];
}

/** A BATCH message (section 4.1.7). */
export interface BatchMessage {
  readonly type: number;
  readonly entries: readonly BatchEntry[];
  readonly consistency: number;
  readonly timestamp: bigint | undefined;
}

/** Most statements one BATCH may hold. */
export const maxBatchStatements = 10_000;

/** Reads a BATCH body (at most {@link maxBatchStatements} statements). */
export function readBatch(r: BodyReader): BatchMessage {
  const type = r.byte();
  const n = r.short();
  if (n > maxBatchStatements)
    throw invalid(`a BATCH of ${n} statements is more than the limit of ${maxBatchStatements}: split it into smaller batches`);
  const entries: BatchEntry[] = [];
  for (let i = 0; i < n; i++) {
    const kind = r.byte();
    const query = kind === 0 ? r.longString() : undefined;
    const id = kind === 1 ? r.shortBytes() : undefined;
    if (kind !== 0 && kind !== 1) throw new ProtocolViolation(`invalid batch entry kind ${kind}`);
    const count = r.short();
    const values: WireValue[] = [];
    for (let j = 0; j < count; j++) values.push(r.value());
    entries.push({ query, id, values });
  }
  const consistency = r.short();
  const flags = r.remaining > 0 ? r.byte() : 0;
  if (flags & 0x10) r.short();
  const timestamp = flags & 0x20 ? r.long() : undefined;
  return { type, entries, consistency, timestamp };
}

/** Writes column specs: one keyspace and table for all (flag 0x0001) when they share one. */
function writeSpecs(w: BodyWriter, specs: readonly ColumnSpec[], global: boolean): void {
  if (global && specs.length) w.string(specs[0].keyspace).string(specs[0].table);
  for (const s of specs) {
    if (!global) w.string(s.keyspace).string(s.table);
    w.string(s.name);
    writeOption(w, s.type);
  }
}

function sharesTable(specs: readonly ColumnSpec[]): boolean {
  return specs.length > 0 && specs.every((s) => s.keyspace === specs[0].keyspace && s.table === specs[0].table);
}

/** Writes Rows metadata (section 4.2.5.2). */
function writeRowsMetadata(w: BodyWriter, columns: readonly ColumnSpec[], pagingState: Buffer | undefined, noMetadata: boolean): void {
  const global = sharesTable(columns);
  const flags = (global && !noMetadata ? 0x01 : 0) | (pagingState ? 0x02 : 0) | (noMetadata ? 0x04 : 0);
  w.int(flags).int(columns.length);
  if (pagingState) w.bytes(pagingState);
  if (!noMetadata) writeSpecs(w, columns, global);
}

function writeSchemaChange(w: BodyWriter, c: SchemaChange): void {
  w.string(c.change).string(c.target).string(c.keyspace);
  if (c.target === 'TABLE') w.string(c.table ?? '');
}

/** The RESULT body of a statement's result. */
export function encodeResult(result: CqlResult, skipMetadata = false): Buffer {
  const w = new BodyWriter();
  switch (result.kind) {
    case 'void':
      return w.int(1).build();
    case 'setKeyspace':
      return w.int(3).string(result.keyspace).build();
    case 'schemaChange':
      w.int(5);
      writeSchemaChange(w, result.change);
      return w.build();
    case 'rows': {
      w.int(2);
      writeRowsMetadata(w, result.columns, result.pagingState, skipMetadata);
      w.int(result.rows.length);
      for (const row of result.rows) {
        for (const [i, v] of row.entries()) w.bytes(encodeValue(result.columns[i].type, v as CqlValue));
      }
      return w.build();
    }
  }
}

/** The RESULT body of PREPARE (kind 0x0004). */
export function encodePrepared(
  id: Buffer,
  binds: readonly ColumnSpec[],
  pkIndexes: readonly number[],
  columns: readonly ColumnSpec[],
): Buffer {
  const w = new BodyWriter().int(4).shortBytes(id);
  const global = sharesTable(binds);
  w.int(global ? 0x01 : 0)
    .int(binds.length)
    .int(pkIndexes.length);
  for (const i of pkIndexes) w.short(i);
  writeSpecs(w, binds, global);
  writeRowsMetadata(w, columns, undefined, false);
  return w.build();
}

/** The body of a SCHEMA_CHANGE EVENT. */
export function encodeSchemaEvent(c: SchemaChange): Buffer {
  const w = new BodyWriter().string('SCHEMA_CHANGE');
  writeSchemaChange(w, c);
  return w.build();
}
