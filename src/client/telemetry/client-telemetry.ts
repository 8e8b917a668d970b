/**
 * The client's telemetry interceptors for a resolved config, for every transport's parts.
 * Browser-safe.
 * @packageDocumentation
 */
import type { Interceptor } from '@connectrpc/connect';
import type { ResolvedConnectionConfig } from '../config.js';
import { tracingInterceptor } from './tracing-interceptor.js';

/** The interceptors placed outside the retry interceptor: tracing, unless `tracing: false`. */
export function tracingInterceptors(config: Pick<ResolvedConnectionConfig, 'tracing'>): Interceptor[] {
  return config.tracing === false ? [] : [tracingInterceptor(config.tracing)];
}
