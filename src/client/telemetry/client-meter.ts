/**
 * The client's metrics as OpenTelemetry metrics, through the meter provider the application
 * registered (read like the tracer provider, ./otel-global.ts; nothing is imported from
 * `@opentelemetry/api`): the database semantic conventions' operation-duration histogram,
 * counters of retries and acquisition timeouts, and observable pool gauges (connections by
 * state, pending requests, open transactions and streams, query-cache hits and misses).
 * Browser-safe.
 * @packageDocumentation
 */
import type { Attributes, BatchObservableCallback, Counter, Histogram, Meter, MeterProvider, Observable } from '@opentelemetry/api';
import type { ClientStats } from '../client-stats.js';
import type { PoolStats } from '../pool-stats.js';
import type { ClientEvents } from './client-events.js';
import { otelGlobal } from './otel-global.js';

/** The instrumentation scope of the client's metrics. */
export const meterName = '@heliosdb/client';

/** Bucket boundaries of `db.client.operation.duration`, seconds (the semantic conventions' advice). */
export const durationBuckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];

interface Instruments {
  meter: Meter;
  duration: Histogram;
  retries: Counter;
  timeouts: Counter;
}

const byProvider = new WeakMap<MeterProvider, Instruments>();

/** The instruments of the registered meter provider; undefined when none is registered. */
export function clientInstruments(): Instruments | undefined {
  const provider = otelGlobal()?.metrics;
  if (!provider) return undefined;
  let i = byProvider.get(provider);
  if (!i) {
    const meter = provider.getMeter(meterName);
    i = {
      meter,
      duration: meter.createHistogram('db.client.operation.duration', {
        description: 'Duration of database client operations: a call with all its attempts; a stream until its last row.',
        unit: 's',
        advice: { explicitBucketBoundaries: durationBuckets },
      }),
      retries: meter.createCounter('heliosdb.client.retries', {
        description: 'Calls sent again by the retry interceptor.',
        unit: '{retry}',
      }),
      timeouts: meter.createCounter('db.client.connection.timeouts', {
        description: 'Calls that gave up waiting for a connection (acquisitionTimeoutMs).',
        unit: '{timeout}',
      }),
    };
    byProvider.set(provider, i);
  }
  return i;
}

/** What the pool gauges read. */
export interface ObservedClient {
  /** `db.client.connection.pool.name` of every metric. */
  poolName: string;
  pool: { getStats(): PoolStats };
  stats(): ClientStats;
  events: ClientEvents;
}

/**
 * Observes a client's pool and counters through the registered meter provider (none: nothing is
 * done); returns the function that stops it (the client calls it on close).
 */
export function observeClient(client: ObservedClient): () => void {
  const inst = clientInstruments();
  if (!inst) return () => {};
  const { meter } = inst;
  const pool: Attributes = { 'db.client.connection.pool.name': client.poolName };
  const offRetry = client.events.on('retry', (e) => inst.retries.add(1, { ...pool, 'rpc.method': e.method }));
  const offTimeout = client.events.on('acquisitionTimeout', () => inst.timeouts.add(1, pool));
  const connections = meter.createObservableUpDownCounter('db.client.connection.count', {
    description: 'Connections of the pool now, by state (idle or used).',
    unit: '{connection}',
  });
  const pending = meter.createObservableUpDownCounter('db.client.connection.pending_requests', {
    description: 'Calls waiting for a connection or call slot.',
    unit: '{request}',
  });
  const inFlight = meter.createObservableUpDownCounter('heliosdb.client.calls.in_flight', {
    description: 'Calls in flight.',
    unit: '{call}',
  });
  const transactions = meter.createObservableUpDownCounter('heliosdb.client.transactions.open', {
    description: 'Interactive transactions open now.',
    unit: '{transaction}',
  });
  const streams = meter.createObservableUpDownCounter('heliosdb.client.streams.open', {
    description: 'Result streams open now.',
    unit: '{stream}',
  });
  const cache = meter.createObservableCounter('heliosdb.client.cache.lookups', {
    description: 'Query cache lookups, by result (hit or miss).',
    unit: '{lookup}',
  });
  const observables: Observable[] = [connections, pending, inFlight, transactions, streams, cache];
  const callback: BatchObservableCallback = (r) => {
    const p = client.pool.getStats();
    const s = client.stats();
    r.observe(connections, p.idleConnections, { ...pool, 'db.client.connection.state': 'idle' });
    r.observe(connections, p.totalConnections - p.idleConnections, { ...pool, 'db.client.connection.state': 'used' });
    r.observe(pending, p.waiting, pool);
    r.observe(inFlight, p.inFlight, pool);
    r.observe(transactions, s.openTransactions, pool);
    r.observe(streams, s.openStreams, pool);
    r.observe(cache, s.cacheHits, { ...pool, 'heliosdb.cache.result': 'hit' });
    r.observe(cache, s.cacheMisses, { ...pool, 'heliosdb.cache.result': 'miss' });
  };
  meter.addBatchObservableCallback(callback, observables);
  return () => {
    offRetry();
    offTimeout();
    meter.removeBatchObservableCallback(callback, observables);
  };
}
