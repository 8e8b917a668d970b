/**
 * The serializer of StreamQuery's responses on the gRPC listener. A batch of compact rows (about
 * 1 MiB) is by far the most common and the largest message the server sends: protobuf-es would
 * copy its bytes twice on the way (once into a nested writer, once joining it into the outer
 * message), so such a message is written here by hand, its bytes copied once, and every other
 * message goes through protobuf-es. test/raw-rows.test.ts checks both give the same bytes.
 *
 * The bytes are written into one scratch buffer that the next batch reuses: grpc-js copies a
 * serialized response into its frame at once (server-interceptors.js `serializeMessage`), and a
 * megabyte of fresh external memory per batch made V8 run a full collection every few batches
 * ("external memory pressure"). test/raw-rows.test.ts streams through the listener to check it.
 * @packageDocumentation
 */
import { toBinary } from '@bufbuild/protobuf';
import { type StreamQueryResponse, StreamQueryResponseSchema, varintSize } from '@heliosdb/client/wire';

/** Field tags: StreamQueryResponse.rows (2, length-delimited); Rows.row_count (1, varint), Rows.compact (3, bytes). */
const rowsTag = (2 << 3) | 2;
const rowCountTag = (1 << 3) | 0;
const compactTag = (3 << 3) | 2;

function writeVarint(buf: Buffer, pos: number, v: number): number {
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/** The largest scratch buffer kept between batches (a larger message gets a buffer of its own). */
const maxScratchBytes = 4 * 1024 * 1024;
let scratch = Buffer.allocUnsafe(0);

/** `n` bytes to write a message into; valid until the next call. */
function scratchOf(n: number): Buffer {
  if (n > maxScratchBytes) return Buffer.allocUnsafe(n);
  if (scratch.length < n) scratch = Buffer.allocUnsafe(Math.min(maxScratchBytes, Math.max(n, 2 * scratch.length)));
  return scratch.subarray(0, n);
}

/**
 * Encodes a StreamQueryResponse; see the file comment. The bytes of a row batch are valid only
 * until the next call: copy them before serializing another message.
 */
export function serializeStreamQueryResponse(msg: StreamQueryResponse): Buffer {
  const e = msg.event;
  if (e.case !== 'rows' || e.value.values.length > 0 || e.value.compact.length === 0) {
    const bytes = toBinary(StreamQueryResponseSchema, msg);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  const { rowCount, compact } = e.value;
  const inner = (rowCount ? 1 + varintSize(rowCount) : 0) + 1 + varintSize(compact.length) + compact.length;
  const out = scratchOf(1 + varintSize(inner) + inner);
  let pos = 0;
  out[pos++] = rowsTag;
  pos = writeVarint(out, pos, inner);
  if (rowCount) {
    out[pos++] = rowCountTag;
    pos = writeVarint(out, pos, rowCount);
  }
  out[pos++] = compactTag;
  pos = writeVarint(out, pos, compact.length);
  out.set(compact, pos);
  return out;
}
