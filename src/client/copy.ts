/**
 * COPY for the client: the sources `copyFrom` takes (bytes or text, all at once or as any sync or
 * async iterable, a Node Readable, a web ReadableStream), cut into messages of a steady size, and
 * the stream `copyTo` returns. Browser-safe.
 * @packageDocumentation
 */
import { ParameterError } from './errors.js';

/** What `copyFrom` reads its data from: PostgreSQL COPY format (text, csv or binary, as the statement says). */
export type CopySource =
  | Uint8Array
  | string
  | Iterable<Uint8Array | string>
  | AsyncIterable<Uint8Array | string>
  | { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array | string }>; releaseLock(): void } };

/** The outcome of a COPY. */
export interface CopyResult {
  /** Rows copied. */
  rowCount: number;
  /** Measured on the server, ms. */
  executionTimeMs: number;
}

/** Bytes per CopyFrom message: big enough to amortise framing, small enough to stream. */
export const copyChunkBytes = 256 * 1024;

const encoder = new TextEncoder();

function bytesOf(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') return encoder.encode(chunk);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  throw new ParameterError(
    `copyFrom's source yielded ${chunk === null ? 'null' : typeof chunk}: it must yield Uint8Array or string chunks`,
    'INVALID_PARAMETER',
  );
}

/** Whether a source can be read again from the start (to send it once more after a definite failure). */
export function isReplayable(source: CopySource): boolean {
  return source instanceof Uint8Array || typeof source === 'string' || Array.isArray(source);
}

/** The chunks of a source as it gives them. */
async function* chunksOf(source: CopySource): AsyncGenerator<Uint8Array> {
  if (source instanceof Uint8Array || typeof source === 'string') {
    yield bytesOf(source);
    return;
  }
  if (source && typeof (source as { getReader?: unknown }).getReader === 'function') {
    const reader = (source as Extract<CopySource, { getReader(): unknown }>).getReader();
    try {
      for (;;) {
        const r = await reader.read();
        if (r.done) return;
        if (r.value !== undefined) yield bytesOf(r.value);
      }
    } finally {
      reader.releaseLock();
    }
  }
  if (source && (Symbol.asyncIterator in (source as object) || Symbol.iterator in (source as object))) {
    for await (const c of source as AsyncIterable<unknown>) yield bytesOf(c);
    return;
  }
  throw new ParameterError(
    'copyFrom needs a source: a Uint8Array, a string, an iterable or async iterable of them, a Node Readable or a ReadableStream',
    'INVALID_PARAMETER',
  );
}

/** The source cut into messages of about `size` bytes (small chunks joined, large ones split). */
export async function* copyMessages(source: CopySource, size = copyChunkBytes): AsyncGenerator<Uint8Array> {
  let parts: Uint8Array[] = [];
  let bytes = 0;
  const take = (): Uint8Array => {
    const out = new Uint8Array(bytes);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    parts = [];
    bytes = 0;
    return out;
  };
  for await (const chunk of chunksOf(source)) {
    let c = chunk;
    while (c.length > 0) {
      const room = size - bytes;
      const piece = c.length <= room ? c : c.subarray(0, room);
      parts.push(piece);
      bytes += piece.length;
      c = c.subarray(piece.length);
      if (bytes >= size) yield take();
    }
  }
  if (bytes > 0) yield take();
}

/**
 * The data of a COPY ... TO STDOUT as it arrives, with backpressure: the server reads on only as
 * this is consumed. Leaving the loop early (break, throw) cancels the COPY on the server.
 * `result` holds the row count once the data has been read to its end.
 */
export interface CopyToStream extends AsyncIterable<Uint8Array> {
  /** Set once read to the end. */
  readonly result: CopyResult | undefined;
  /** Cancels the COPY (the loop ends). */
  cancel(): void;
}
