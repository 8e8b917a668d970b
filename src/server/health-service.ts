/**
 * The standard grpc.health.v1.Health service: SERVING while the server accepts work, NOT_SERVING
 * while it shuts down or its database is unreachable. Health calls need no credentials, and a Watch
 * stays open for as long as its client likes, so Watch streams are capped per server
 * ({@link maxWatchStreams}); per connection, the listeners' stream limit caps them.
 * @packageDocumentation
 */
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { type Health, HealthCheckResponse_ServingStatus as Status } from '@heliosdb/client/wire';

/** Health of the server, shared by both listeners. */
export class HealthState {
  private current = Status.SERVING;
  private final = false;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly services: ReadonlySet<string>) {}

  get status(): Status {
    return this.current;
  }

  set(status: Status): void {
    if (status === this.current || this.final) return;
    this.current = status;
    for (const l of this.listeners) l();
  }

  /** True once {@link shutDown} was called: the status will not change again. */
  get isShutDown(): boolean {
    return this.final;
  }

  /**
   * The server is going away: NOT_SERVING for good. Watch streams send it and end, so that a
   * graceful shutdown does not wait on them.
   */
  shutDown(): void {
    if (this.final) return;
    this.final = true;
    this.current = Status.NOT_SERVING;
    for (const l of this.listeners) l();
  }

  knows(service: string): boolean {
    return service === '' || this.services.has(service);
  }

  /** Calls `fn` on every change until the returned function is called. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

/**
 * Most Watch streams open at once on one server (both listeners together); one more is answered
 * RESOURCE_EXHAUSTED at once. A fixed number, not derived from the connection and stream limits
 * (whose product is 100,000 by default): a Watch costs the server about 10 KiB of heap on the
 * gRPC listener and about 36 KiB of heap (some 90 KiB of RSS) through connect-node on the HTTP
 * listener (test/security-limits.test.ts), so 1000 of them stay under about 90 MiB, while a load
 * balancer, orchestrator or client-side health check needs one per connection.
 */
export const maxWatchStreams = 1000;

/** Options of {@link createHealthService}. */
export interface HealthServiceOptions {
  /** Most Watch streams open at once. Default {@link maxWatchStreams}. */
  maxWatches?: number;
}

/** Builds the Health service on `state`. */
export function createHealthService(state: HealthState, options: HealthServiceOptions = {}): ServiceImpl<typeof Health> {
  const maxWatches = options.maxWatches ?? maxWatchStreams;
  let watches = 0;
  return {
    async check(req) {
      if (!state.knows(req.service)) throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
      return { status: state.status };
    },
    async *watch(req, ctx) {
      if (watches >= maxWatches) {
        throw new ConnectError(
          `too many health Watch streams (at most ${maxWatches} per server); use Check or retry later`,
          Code.ResourceExhausted,
        );
      }
      watches++;
      let changed: (() => void) | undefined;
      const unsubscribe = state.subscribe(() => changed?.());
      // One abort listener for the whole stream (one per wait would pile up on the signal).
      const onAbort = () => changed?.();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      try {
        if (!state.knows(req.service)) {
          yield { status: Status.SERVICE_UNKNOWN };
        }
        let last: Status | undefined;
        while (!ctx.signal.aborted) {
          if (state.knows(req.service) && state.status !== last) {
            last = state.status;
            yield { status: last };
          }
          if (state.isShutDown) return;
          await new Promise<void>((resolve) => {
            changed = resolve;
          });
          changed = undefined;
        }
      } finally {
        ctx.signal.removeEventListener('abort', onAbort);
        unsubscribe();
        watches--;
      }
    },
  };
}
