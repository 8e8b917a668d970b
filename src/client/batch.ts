/**
 * Batches: several statements, or one statement with many parameter sets, in one round trip
 * (ExecuteBatch); and the chunking `executeMany` uses to keep each request under the message size
 * limit. Browser-safe.
 * @packageDocumentation
 */
import type { Value } from '../../gen/heliosdb/v1/value_pb.js';
import { type HeliosDBError, QueryError } from './errors.js';
import { chunkParameterColumns, fitsColumns } from './parameter-columns.js';
import { toParams } from './protocol/params.js';
import type { QueryRunner } from './query-runner.js';
import type { CallOptions, QueryResult } from './types.js';

/** One statement of a batch. */
export interface BatchStatementInput {
  /** SQL text; parameters are `$1`, `$2`, ... */
  sql: string;
  /** Parameter values. Default none. */
  params?: readonly unknown[];
}

/** Options of `batch`. */
export interface BatchOptions extends CallOptions {
  /**
   * `true`: all statements apply or none does (one transaction; a savepoint inside an open
   * transaction); the first failure rejects with a `QueryError` whose `statementIndex` names the
   * failing statement. `false`: each statement runs on its own and `results` reports each outcome.
   * Default `true`.
   */
  atomic?: boolean;
  /** Return each statement's rows (otherwise only counts). Default `false`. */
  returnRows?: boolean;
  /** Rows as objects or arrays, with `returnRows`. Default: the client's `rowMode` (`'object'`). */
  rowMode?: 'object' | 'array';
}

/** The outcome of one statement of a batch. */
export type BatchItemResult<T = Record<string, unknown>> =
  | {
      ok: true;
      /** Rows only with `returnRows: true`; `rowCount` and `command` always. */
      result: QueryResult<T>;
      error?: undefined;
    }
  | {
      ok: false;
      result?: undefined;
      /** Why the statement failed (non-atomic batches only). */
      error: HeliosDBError;
    };

/** The outcome of a batch. */
export interface BatchResult<T = Record<string, unknown>> {
  /** One entry per statement (per parameter set for `executeMany`), in order. */
  results: BatchItemResult<T>[];
  /** Rows affected over all statements that succeeded. */
  rowCount: number;
  /** Statements that failed (always 0 for atomic batches, which throw instead). */
  failed: number;
  /** Time the server spent, ms (summed over chunks for `executeMany`). */
  executionTimeMs: number;
  /** Time from the call to the decoded result, ms. */
  roundTripMs: number;
}

/** Options of `executeMany`. */
export interface ExecuteManyOptions extends BatchOptions {
  /**
   * `true`: every parameter set applies or none does, even when the work is sent in several chunks
   * (the client then runs the chunks in one transaction, or under a savepoint inside yours).
   * Default `true`.
   */
  atomic?: boolean;
  /**
   * Largest estimated request size per round trip, bytes; larger work is split into chunks.
   * Default `4194304` (4 MiB), well under the server's message limit (16 MiB by default).
   */
  maxChunkBytes?: number;
  /** Most parameter sets per round trip. Default `10000`. */
  maxChunkSize?: number;
}

/** The outcome of `executeMany`. */
export interface ExecuteManyResult<T = Record<string, unknown>> extends BatchResult<T> {
  /** Round trips the work was split into. */
  chunks: number;
}

/** Default of `maxChunkBytes`. */
export const defaultMaxChunkBytes = 4 * 1024 * 1024;
/** Default of `maxChunkSize`. */
export const defaultMaxChunkSize = 10_000;

/** A run of parameter sets sent in one request. */
export interface ParameterChunk {
  /** Index of the chunk's first parameter set. */
  start: number;
  /** Number of parameter sets in the chunk. */
  count: number;
  /** The chunk's parameter sets, converted (empty when `columns` carries them). */
  sets: { values: Value[] }[];
  /** The chunk's parameter sets as ExecuteBatch `parameter_columns` (./parameter-columns.ts). */
  columns?: Uint8Array[];
}

/** UTF-8 length of a string, without encoding it. */
function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) n += c > 0x7ff ? 2 : 1;
  }
  return n;
}

/** An upper estimate of a Value's protobuf size, bytes (field tags and length prefixes included). */
export function estimateValueBytes(v: Value): number {
  const k = v.kind;
  switch (k.case) {
    case undefined:
    case 'nullValue':
    case 'bool':
      return 4;
    case 'int32':
    case 'int64':
    case 'float32':
    case 'float64':
    case 'timestamp':
    case 'timestamptz':
      return 13;
    case 'bytes':
      return k.value.byteLength + 8;
    case 'interval':
      return 32;
    case 'array': {
      let n = 16;
      for (const e of k.value.values) n += estimateValueBytes(e) + 4;
      return n;
    }
    default:
      return utf8Length(k.value) + 8;
  }
}

/** Splits parameter sets into chunks of at most `maxBytes` (estimated) and `maxCount` sets; lazily. */
export function* chunkParameterSets(
  paramSets: readonly (readonly unknown[])[],
  maxBytes: number,
  maxCount: number,
): Generator<ParameterChunk> {
  let start = 0;
  let sets: { values: Value[] }[] = [];
  let bytes = 0;
  for (let i = 0; i < paramSets.length; i++) {
    const values = toParams(paramSets[i]);
    let size = 8;
    for (const v of values) size += estimateValueBytes(v) + 4;
    if (sets.length > 0 && (bytes + size > maxBytes || sets.length >= maxCount)) {
      yield { start, count: sets.length, sets };
      start = i;
      sets = [];
      bytes = 0;
    }
    sets.push({ values });
    bytes += size;
  }
  if (sets.length > 0) yield { start, count: sets.length, sets };
}

/**
 * Resolves executeMany's chunking options; with `columnar` (the server reads
 * `parameter_columns`), sets that fit go as columns.
 */
export function chunksOf(
  paramSets: readonly (readonly unknown[])[],
  options: ExecuteManyOptions | undefined,
  columnar: boolean,
): Generator<ParameterChunk> {
  const maxBytes = options?.maxChunkBytes ?? defaultMaxChunkBytes;
  const maxSize = options?.maxChunkSize ?? defaultMaxChunkSize;
  if (!(maxBytes > 0)) throw new RangeError(`maxChunkBytes must be positive, got ${maxBytes}`);
  if (!Number.isInteger(maxSize) || maxSize < 1) throw new RangeError(`maxChunkSize must be a positive integer, got ${maxSize}`);
  if (!Array.isArray(paramSets)) throw new TypeError('executeMany needs an array of parameter arrays');
  if (columnar && fitsColumns(paramSets)) return chunkParameterColumns(paramSets, maxBytes, maxSize);
  return chunkParameterSets(paramSets, maxBytes, maxSize);
}

/** An empty executeMany result. */
export function emptyExecuteManyResult<T>(): ExecuteManyResult<T> {
  return { results: [], rowCount: 0, failed: 0, executionTimeMs: 0, roundTripMs: 0, chunks: 0 };
}

/**
 * Sends chunks one after the other through `runner` and merges their results. A failing atomic
 * chunk rejects with its `statementIndex` made global (counted from the first parameter set).
 */
export async function executeChunks<T>(
  runner: QueryRunner,
  sql: string,
  paramSets: readonly (readonly unknown[])[],
  options: ExecuteManyOptions | undefined,
  chunks: Iterable<ParameterChunk>,
): Promise<ExecuteManyResult<T>> {
  const t0 = performance.now();
  const out = emptyExecuteManyResult<T>();
  for (const chunk of chunks) {
    out.chunks++;
    let r: BatchResult<T>;
    try {
      r = await runner.batchChunk<T>(sql, chunk, paramSets, options);
    } catch (e) {
      if (e instanceof QueryError && e.statementIndex !== undefined && chunk.start > 0) {
        (e as { statementIndex: number }).statementIndex = e.statementIndex + chunk.start;
      }
      throw e;
    }
    for (const item of r.results) {
      if (!item.ok && item.error instanceof QueryError && item.error.statementIndex !== undefined && chunk.start > 0) {
        (item.error as { statementIndex: number }).statementIndex = item.error.statementIndex + chunk.start;
      }
      out.results.push(item);
    }
    out.rowCount += r.rowCount;
    out.failed += r.failed;
    out.executionTimeMs += r.executionTimeMs;
  }
  out.roundTripMs = performance.now() - t0;
  return out;
}
