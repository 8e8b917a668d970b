/**
 * Turns the raw text cells PgCommand delivers into heliosdb.v1 Rows, in either row format, while
 * enforcing the unary row cap and cutting stream batches at a byte target.
 * @packageDocumentation
 */
import { isUtf8 } from 'node:buffer';
import { create } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import type { FieldDef } from 'pg';
import {
  type Column,
  ColumnSchema,
  type ResultSet,
  ResultSetSchema,
  type Row,
  RowFormat,
  RowSchema,
  type Rows,
  RowsSchema,
  ErrorReason,
} from '@heliosdb/client/wire';
import { CompactWriter } from '@heliosdb/client/wire';
import { Oid } from '@heliosdb/client/wire';
import type { CommandSink } from './pg/pg-command.js';
import type { RawDataRow } from './pg/raw-rows.js';
import { serverError } from './errors.js';
import { byteaFromText, cellToValue } from './values.js';

/** A parsed command tag. */
export interface CommandTag {
  command: string;
  rowsAffected: bigint;
}

/** Splits `INSERT 0 3` into `{ command: 'INSERT', rowsAffected: 3n }`. */
export function parseCommandTag(tag: string): CommandTag {
  const parts = tag.split(' ');
  const last = parts[parts.length - 1];
  if (parts.length > 1 && /^\d+$/.test(last)) {
    const command = parts[0] === 'INSERT' ? 'INSERT' : parts.slice(0, -1).join(' ');
    return { command, rowsAffected: BigInt(last) };
  }
  return { command: tag, rowsAffected: 0n };
}

/** Encodes rows of one column layout into Rows batches. */
export class RowEncoder {
  private oids: number[] = [];
  private bytea: boolean[] = [];
  private compact: CompactWriter | undefined;
  private values: Row[] = [];
  private rows = 0;

  constructor(readonly format: RowFormat) {
    // Small at first: most results are a row or a few (a fresh 16 KiB per call was a tenth of a
    // point query's garbage); a stream's writer doubles to its batch size once and is reused.
    if (format === RowFormat.COMPACT) this.compact = new CompactWriter(256);
  }

  /** Starts a new column layout. */
  setFields(fields: FieldDef[]): void {
    this.oids = fields.map((f) => f.dataTypeID);
    this.bytea = this.oids.map((o) => o === Oid.bytea);
    this.reset();
  }

  /** Rows in the current batch. */
  get rowCount(): number {
    return this.rows;
  }

  /** Approximate encoded bytes of the current batch (exact for the compact format). */
  bytes = 0;

  /** Adds a row; returns its approximate encoded size. */
  add(cells: (string | null)[]): number {
    this.rows++;
    if (this.compact) {
      const w = this.compact;
      const before = w.length;
      for (let i = 0; i < cells.length; i++) {
        const c = cells[i];
        if (c === null) w.null();
        else if (this.bytea[i]) w.bytes(byteaFromText(c));
        else w.text(c);
      }
      const size = w.length - before;
      this.bytes += size;
      return size;
    }
    let size = 2;
    const values = new Array(cells.length);
    for (let i = 0; i < cells.length; i++) {
      const c = cells[i];
      values[i] = cellToValue(c, this.oids[i]);
      size += c === null ? 2 : c.length + 4;
    }
    this.values.push(create(RowSchema, { values }));
    this.bytes += size;
    return size;
  }

  /**
   * Adds a row still in DataRow bytes (./pg/raw-rows.ts): in the compact format its cells are
   * copied as they are when they are UTF-8 (bytea decoded from its text form); returns its
   * approximate encoded size.
   */
  addRaw(row: RawDataRow): number {
    const w = this.compact;
    if (!w) return this.add(row.fields);
    this.rows++;
    const before = w.length;
    const { bytes } = row;
    const n = bytes.readInt16BE(row.offset);
    let pos = row.offset + 2;
    for (let i = 0; i < n; i++) {
      const len = bytes.readInt32BE(pos);
      pos += 4;
      if (len === -1) w.null();
      else {
        if (this.bytea[i]) w.bytes(byteaFromText(bytes.toString('utf8', pos, pos + len)));
        else if (isUtf8(bytes.subarray(pos, pos + len))) w.copy(bytes, pos, pos + len);
        // Not UTF-8 (a caller's SET client_encoding): decoded as before, U+FFFD for what is not.
        else w.text(bytes.toString('utf8', pos, pos + len));
        pos += len;
      }
    }
    const size = w.length - before;
    this.bytes += size;
    return size;
  }

  /** Returns the current batch and starts a new one. */
  take(): Rows {
    const rows = create(RowsSchema, { rowCount: this.rows });
    if (this.compact) rows.compact = this.compact.finish();
    else rows.values = this.values;
    this.reset();
    return rows;
  }

  private reset(): void {
    this.values = [];
    this.rows = 0;
    this.bytes = 0;
    this.compact?.finish();
  }
}

/** Column metadata for a result, type names resolved through `typeName`. */
export function columnsOf(fields: FieldDef[], typeName: (oid: number) => string): Column[] {
  return fields.map((f) =>
    create(ColumnSchema, {
      name: f.name,
      typeOid: f.dataTypeID,
      typeName: typeName(f.dataTypeID),
      typeModifier: f.dataTypeModifier,
    }),
  );
}

/** Collects a whole (unary) result, failing once it exceeds `maxRows` or `maxBytes`. */
export class ResultCollector implements CommandSink {
  fields: FieldDef[] = [];
  command = '';
  rowsAffected = 0n;
  /** Set once the row cap was exceeded: the caller should cancel the statement. */
  overflow = false;
  onOverflow: (() => void) | undefined;
  private readonly encoder: RowEncoder;

  constructor(
    format: RowFormat,
    private readonly maxRows: number,
    private readonly maxBytes: number,
  ) {
    this.encoder = new RowEncoder(format);
  }

  onFields(fields: FieldDef[]): void {
    this.fields = fields;
    this.encoder.setFields(fields);
  }

  onRow(cells: (string | null)[]): void {
    this.checkRows();
    this.encoder.add(cells);
    this.checkBytes();
  }

  onRawRow(row: RawDataRow): void {
    this.checkRows();
    this.encoder.addRaw(row);
    this.checkBytes();
  }

  private checkRows(): void {
    if (this.encoder.rowCount >= this.maxRows)
      this.fail(
        `the result has more than ${this.maxRows} rows, the limit for a unary query; use streaming (StreamQuery) for large results`,
      );
  }

  private checkBytes(): void {
    if (this.encoder.bytes > this.maxBytes)
      this.fail(`the result is larger than ${this.maxBytes} bytes, the message size limit; use streaming (StreamQuery) for large results`);
  }

  private fail(message: string): never {
    if (!this.overflow) {
      this.overflow = true;
      this.onOverflow?.();
    }
    throw serverError(Code.ResourceExhausted, message, { reason: ErrorReason.ROW_LIMIT_EXCEEDED });
  }

  onComplete(tag: string): void {
    const t = parseCommandTag(tag);
    this.command = t.command;
    this.rowsAffected += t.rowsAffected;
  }

  /** The collected result (the last statement's rows for a script). */
  toResultSet(executionTimeMs: number, typeName: (oid: number) => string): ResultSet {
    return create(ResultSetSchema, {
      columns: columnsOf(this.fields, typeName),
      rows: this.encoder.take(),
      command: this.command,
      rowsAffected: this.rowsAffected,
      executionTimeMs,
    });
  }
}
