/**
 * executeMany's parameter sets as ExecuteBatch `parameter_columns`, toward a HeliosDB server: one
 * compact column per parameter, each parameter in the PostgreSQL text form the server would have
 * made of its Value (protocol/param-text.ts), so that neither side builds or parses a protobuf
 * Value per parameter. The `postgres://` and `cql://` transports read `parameter_sets` (they run
 * the statements themselves), and so do calls whose sets differ in length or have no parameters.
 * Browser-safe.
 * @packageDocumentation
 */
import { ConnectError } from '@connectrpc/connect';
import type { ParameterChunk } from './batch.js';
import type { ResolvedConnectionConfig } from './config.js';
import { ParameterError, toHeliosError } from './errors.js';
import { CompactWriter } from './protocol/compact.js';
import { paramToText, scalarParamText } from './protocol/param-text.js';
import { maxParameters, toParam } from './protocol/params.js';

/** Whether the client's server reads `parameter_columns`: a HeliosDB server, not `postgres://` or `cql://`. */
export function readsParameterColumns(config: Pick<ResolvedConnectionConfig, 'url'> & { urls?: readonly string[] }): boolean {
  const url = config.urls?.[0] ?? config.url;
  return !/^(postgres|postgresql|cql):/i.test(url);
}

/** Whether `paramSets` can travel as columns: every set an array of the same length, 1 to 65535. */
export function fitsColumns(paramSets: readonly (readonly unknown[])[]): boolean {
  const k = Array.isArray(paramSets[0]) ? paramSets[0].length : 0;
  if (k === 0 || k > maxParameters) return false;
  for (const s of paramSets) if (!Array.isArray(s) || s.length !== k) return false;
  return true;
}

/** Upper bound of the compact size of a text cell: its UTF-8 bytes and a varint header. */
function cellBytes(text: string | null): number {
  return text === null ? 1 : text.length * 3 + 5;
}

/** A UTF-16 surrogate without its pair (in a `u` expression a pair is one code point, not `Cs`). */
const loneSurrogate = /\p{Cs}/u;

/** The texts of one parameter set, as the server would make them; errors as the server gives them. */
function textsOf(set: readonly unknown[]): (string | null)[] {
  const out = new Array<string | null>(set.length);
  try {
    for (let i = 0; i < set.length; i++) {
      const v = set[i];
      const s = scalarParamText(v, i);
      const t = s !== undefined ? s : paramToText(toParam(v, i), i);
      // UTF-8 cannot carry it: refused, rather than stored as U+FFFD.
      if (t !== null && loneSurrogate.test(t)) {
        throw new ParameterError(
          `parameter $${i + 1} holds a lone UTF-16 surrogate, which is not Unicode text and cannot be stored`,
          'INVALID_PARAMETER',
        );
      }
      out[i] = t;
    }
  } catch (e) {
    throw e instanceof ConnectError ? toHeliosError(e) : e;
  }
  return out;
}

/** Most parameter sets a server takes as columns in one request. */
const maxColumnSets = 100_000;

/**
 * Splits `paramSets` (which {@link fitsColumns}) into chunks of at most `maxBytes` (estimated) and
 * `maxCount` sets (and never more than the 100,000 a server takes as columns), each carried as
 * columns; lazily.
 */
export function* chunkParameterColumns(
  paramSets: readonly (readonly unknown[])[],
  maxBytes: number,
  maxSets: number,
): Generator<ParameterChunk> {
  const maxCount = Math.min(maxSets, maxColumnSets);
  const k = paramSets[0].length;
  let writers = Array.from({ length: k }, () => new CompactWriter(1024));
  let start = 0;
  let count = 0;
  let bytes = 0;
  const take = (): ParameterChunk => {
    const chunk = { start, count, sets: [], columns: writers.map((w) => w.finish()) };
    writers = Array.from({ length: k }, () => new CompactWriter(1024));
    return chunk;
  };
  for (let i = 0; i < paramSets.length; i++) {
    const texts = textsOf(paramSets[i]);
    let size = 0;
    for (const t of texts) size += cellBytes(t);
    if (count > 0 && (bytes + size > maxBytes || count >= maxCount)) {
      yield take();
      start = i;
      count = 0;
      bytes = 0;
    }
    for (let p = 0; p < k; p++) {
      const t = texts[p];
      if (t === null) writers[p].null();
      else writers[p].text(t);
    }
    count++;
    bytes += size;
  }
  if (count > 0) yield take();
}
