/**
 * The server's Prometheus metrics, in a registry of its own (never prom-client's global one, so
 * that several servers in one process and the application's own metrics stay apart): calls and
 * their latency by service and method, errors by `ErrorReason` name, the database pool, open
 * transactions and open streams, and Node's process metrics. Served as `/metrics` by the HTTP
 * listener (./metrics-endpoint.ts).
 * @packageDocumentation
 */
import type { DescService } from '@bufbuild/protobuf';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { ErrorDetailSchema, ErrorReason } from '@heliosdb/client/wire';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** What the metrics read when scraped. */
export interface ServerMetricsSources {
  /** The database pool's counters. */
  pool(): { total: number; idle: number; waiting: number };
  /** Interactive transactions and reserved sessions open now. */
  openTransactions(): number;
}

/** Latency buckets, seconds: 0.5 ms to 30 s. */
const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The gRPC status name of a code (`OK`, `INVALID_ARGUMENT`, ...). */
function codeName(code: Code | 0): string {
  if (code === 0) return 'OK';
  return (Code[code] ?? String(code)).replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
}

/** The ErrorReason name of a failure (`UNSPECIFIED` for database errors and those without a reason). */
function reasonOf(ce: ConnectError): string {
  const reason = ce.findDetails(ErrorDetailSchema)[0]?.reason ?? ErrorReason.UNSPECIFIED;
  return ErrorReason[reason] ?? 'UNSPECIFIED';
}

/** See the file comment. */
export class ServerMetrics {
  /** The registry `/metrics` serves. */
  readonly registry = new Registry();
  private readonly calls: Counter<'service' | 'method' | 'code'>;
  private readonly duration: Histogram<'service' | 'method'>;
  private readonly errors: Counter<'service' | 'method' | 'code' | 'reason'>;
  private readonly streams: Gauge<'service' | 'method'>;

  constructor(sources: ServerMetricsSources) {
    const registers = [this.registry];
    this.calls = new Counter({
      name: 'heliosdb_calls_total',
      help: 'Calls answered, by service, method and gRPC status code.',
      labelNames: ['service', 'method', 'code'],
      registers,
    });
    this.duration = new Histogram({
      name: 'heliosdb_call_duration_seconds',
      help: 'Call latency in the server, from the handler starting to its answer (streams: to their last message), by method.',
      labelNames: ['service', 'method'],
      buckets: latencyBuckets,
      registers,
    });
    this.errors = new Counter({
      name: 'heliosdb_errors_total',
      help: 'Failed calls by method, gRPC status code and ErrorReason name (UNSPECIFIED: a database error, see its SQLSTATE).',
      labelNames: ['service', 'method', 'code', 'reason'],
      registers,
    });
    this.streams = new Gauge({
      name: 'heliosdb_open_streams',
      help: 'Server-streaming calls open now (StreamQuery, CopyTo, Listen), by method.',
      labelNames: ['service', 'method'],
      registers,
    });
    new Gauge({
      name: 'heliosdb_open_transactions',
      help: 'Interactive transactions and reserved sessions open now.',
      registers,
      collect() {
        this.set(sources.openTransactions());
      },
    });
    new Gauge({
      name: 'heliosdb_db_pool_connections',
      help: 'Database connections of the pool, by state (total: open, idle: open and not in use).',
      labelNames: ['state'],
      registers,
      collect() {
        const s = sources.pool();
        this.set({ state: 'total' }, s.total);
        this.set({ state: 'idle' }, s.idle);
      },
    });
    new Gauge({
      name: 'heliosdb_db_pool_waiting',
      help: 'Calls waiting for a database connection.',
      registers,
      collect() {
        this.set(sources.pool().waiting);
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** Records a call that ended: `error` undefined for a success. */
  record(service: string, method: string, seconds: number, error: unknown): void {
    this.duration.observe({ service, method }, seconds);
    if (error === undefined) {
      this.calls.inc({ service, method, code: 'OK' });
      return;
    }
    const ce = ConnectError.from(error);
    const code = codeName(ce.code);
    this.calls.inc({ service, method, code });
    this.errors.inc({ service, method, code, reason: reasonOf(ce) });
  }

  /** Records a call refused before its handler ran (authentication). */
  refused(service: string, method: string, error: unknown): void {
    const ce = ConnectError.from(error);
    const code = codeName(ce.code);
    this.calls.inc({ service, method, code });
    this.errors.inc({ service, method, code, reason: reasonOf(ce) });
  }

  /** `impl` with every call of `service` counted and timed. */
  instrument<S extends DescService>(service: S, impl: ServiceImpl<S>): ServiceImpl<S> {
    type Handler = (req: unknown, ctx: unknown) => unknown;
    const out: Record<string, Handler> = { ...(impl as unknown as Record<string, Handler>) };
    const name = service.typeName;
    for (const method of service.methods) {
      const handler = out[method.localName];
      if (typeof handler !== 'function') continue;
      if (method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming') {
        const self = this;
        out[method.localName] = (req, ctx) =>
          (async function* () {
            const t0 = performance.now();
            self.streams.inc({ service: name, method: method.name });
            let error: unknown;
            try {
              yield* handler.call(impl, req, ctx) as AsyncIterable<unknown>;
            } catch (e) {
              error = e ?? new Error('failed');
              throw e;
            } finally {
              self.streams.dec({ service: name, method: method.name });
              self.record(name, method.name, (performance.now() - t0) / 1000, error);
            }
          })();
      } else {
        out[method.localName] = async (req, ctx) => {
          const t0 = performance.now();
          try {
            const res = await handler.call(impl, req, ctx);
            this.record(name, method.name, (performance.now() - t0) / 1000, undefined);
            return res;
          } catch (e) {
            this.record(name, method.name, (performance.now() - t0) / 1000, e ?? new Error('failed'));
            throw e;
          }
        };
      }
    }
    return out as unknown as ServiceImpl<S>;
  }
}
