/**
 * How long a call has left before its deadline, so a slow-down that would outlive it is answered
 * at once instead of slept through: from the handler context's `timeoutMs()` (Connect's
 * HandlerContext has one) or, failing that, from the request's timeout header (`connect-timeout-ms`,
 * or `grpc-timeout` on the HTTP listener; grpc-js strips the latter before handlers see it).
 *
 * The header is parsed here because connect's own parser is marked internal (no semver promise);
 * the formats are tiny: milliseconds, or up to 8 digits and a unit (H M S m u n).
 * @packageDocumentation
 */
import { headers } from '@heliosdb/client/wire';

/** What a deadline can be read from. */
export interface DeadlineSource {
  /** Milliseconds left, when the listener knows (Connect's HandlerContext). */
  timeoutMs?: () => number | undefined;
  /** The request headers. */
  headers?: { get(name: string): string | null };
}

const grpcUnits: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** Milliseconds left before the call's deadline; undefined when it has none (or none is known). */
export function remainingMs(source: DeadlineSource): number | undefined {
  const fromContext = source.timeoutMs?.();
  if (typeof fromContext === 'number' && Number.isFinite(fromContext)) return fromContext;
  const connect = source.headers?.get(headers.connectTimeout);
  if (connect && /^\d{1,10}$/.test(connect)) return Number(connect);
  const m = /^(\d{1,8})([HMSmun])$/.exec(source.headers?.get(headers.grpcTimeout) ?? '');
  return m ? Number(m[1]) * grpcUnits[m[2]] : undefined;
}
