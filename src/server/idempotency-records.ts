/**
 * The idempotency records' pieces that hold no state: the stored row and its bytea cells, a
 * request's fingerprint, the pipeline runner, and the answer a recorded key gets.
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import { type DescMessage, fromBinary, type Message, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { ErrorDetailSchema, ErrorReason } from '@heliosdb/client/wire';
import type { Backend, BackendConnection } from './backend.js';
import { abortError } from './call-context.js';
import { serverError, toConnectError } from './errors.js';
import type { CommandSink } from './pg/pg-command.js';
import { PgPipeline, type PipelineStatement } from './pg/pg-pipeline.js';
import type { Principal } from './auth/principal.js';

/** One keyed call. */
export interface KeyedCall {
  /** The key the client sent. */
  key: string;
  /** Who sent it (records are per principal). */
  principal: Principal;
  /** The RPC and its request, to tell a repeated request from a different one with the same key. */
  method: string;
  request: Message;
  requestSchema: DescMessage;
  /** The response type, to store and replay it. */
  responseSchema: DescMessage;
  /** The handler failed in a way that is worth one more go from the start (a stale prepared plan). */
  retryIf?: (e: unknown) => boolean;
}

/** A stored record: its state, the request's fingerprint, the serialized response. */
export interface Row {
  state: string;
  fingerprint: string;
  response: Uint8Array | undefined;
}

/** Collects the text cells of a pipeline statement's rows. */
export class Rows implements CommandSink {
  readonly rows: (string | null)[][] = [];
  onFields(): void {}
  onRow(cells: (string | null)[]): void {
    this.rows.push(cells);
  }
  onComplete(): void {}
}

function bytea(hex: string | null): Uint8Array | undefined {
  if (hex === null || !hex.startsWith('\\x')) return undefined;
  return Buffer.from(hex.slice(2), 'hex');
}

/** bytea input text for `bytes`. */
export function byteaText(bytes: Uint8Array): string {
  return '\\x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** The record in a lookup's first row, if any. */
export function rowOf(cells: (string | null)[] | undefined): Row | undefined {
  if (!cells) return undefined;
  return { state: cells[0] ?? '', fingerprint: cells[1] ?? '', response: bytea(cells[2]) };
}

/** Whether `e` is PostgreSQL's "cannot run inside a transaction block" (25001). */
export function cannotRunInBlock(e: unknown): boolean {
  return e instanceof ConnectError && e.findDetails(ErrorDetailSchema)[0]?.sqlstate === '25001';
}

/** A digest of the RPC and its request (the key itself left out), to tell a repeat from a different request. */
export function fingerprintOf(call: Pick<KeyedCall, 'method' | 'request' | 'requestSchema'>): string {
  const copy = { ...call.request, idempotencyKey: '' } as Message;
  return createHash('sha256').update(call.method).update('\0').update(toBinary(call.requestSchema, copy)).digest('hex');
}

/** Runs a pipeline; throws the first failure as a ConnectError. */
export async function runPipeline(
  backend: Backend,
  conn: BackendConnection,
  statements: PipelineStatement[],
  sinks: Record<number, CommandSink>,
  signal?: AbortSignal,
): Promise<void> {
  if (signal?.aborted) throw abortError(signal);
  const p = new PgPipeline(statements, (i) => sinks[i]);
  const onAbort = () => void backend.cancel(conn);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    conn.query(p as never);
    const outcomes = await p.done;
    const failed = outcomes.find((o) => !o.ok);
    if (failed) throw toConnectError('error' in failed ? failed.error : new Error('statement skipped'));
  } catch (e) {
    throw toConnectError(e);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** The answer for a key that is already recorded: its stored response, or an error. */
export function replay(row: Row, fingerprint: string, schema: DescMessage, what: string, windowMs: number): Message {
  if (row.fingerprint !== fingerprint) {
    throw serverError(
      Code.InvalidArgument,
      `the idempotency key was already used for a different request (within the server's ${windowMs} ms window); use a new key for each request`,
      {
        reason: ErrorReason.IDEMPOTENCY_KEY_REUSED,
      },
    );
  }
  if (row.state === 'done' && row.response) return fromBinary(schema, row.response);
  if (row.state === 'abandoned') {
    throw serverError(
      Code.NotFound,
      `${what} was not committed: a retry of its Commit found it no longer open and recorded that it never committed`,
      {
        reason: ErrorReason.TRANSACTION_NOT_FOUND,
      },
    );
  }
  throw serverError(Code.Aborted, `an earlier request with this idempotency key is in an unknown state; retry later`, {
    reason: ErrorReason.IDEMPOTENCY_UNAVAILABLE,
    retryable: true,
    retryAfterMs: 1000,
  });
}
