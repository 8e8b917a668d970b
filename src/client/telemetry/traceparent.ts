/**
 * W3C Trace Context's `traceparent` header (version 00): written by the client when the
 * application registered no propagator of its own, and read by the server the same way.
 * Browser-safe.
 * @packageDocumentation
 */
import type { SpanContext } from '@opentelemetry/api';

/** The header's name. */
export const traceparentHeader = 'traceparent';

const pattern = /^([\da-f]{2})-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})(?:-.*)?$/;
const zeroTrace = '0'.repeat(32);
const zeroSpan = '0'.repeat(16);

/** `00-<trace id>-<span id>-<flags>` of a span context. */
export function formatTraceparent(sc: Pick<SpanContext, 'traceId' | 'spanId' | 'traceFlags'>): string {
  return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/**
 * The remote span context a `traceparent` value names, or undefined when it is missing or
 * malformed (version ff, all-zero ids, a version 00 header with extra fields).
 */
export function parseTraceparent(value: string | null | undefined): SpanContext | undefined {
  const m = value ? pattern.exec(value.trim().toLowerCase()) : null;
  if (!m) return undefined;
  const [, version, traceId, spanId, flags] = m;
  if (version === 'ff' || traceId === zeroTrace || spanId === zeroSpan) return undefined;
  if (version === '00' && value!.trim().length !== 55) return undefined;
  return { traceId, spanId, traceFlags: Number.parseInt(flags, 16), isRemote: true };
}
