/**
 * The standard grpc.health.v1.Health service: SERVING while the server accepts work, NOT_SERVING
 * while it shuts down or its database is unreachable.
 * @packageDocumentation
 */
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import { type Health, HealthCheckResponse_ServingStatus as Status } from '../../gen/grpc/health/v1/health_pb.js';

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

/** Builds the Health service on `state`. */
export function createHealthService(state: HealthState): ServiceImpl<typeof Health> {
  return {
    async check(req) {
      if (!state.knows(req.service)) throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
      return { status: state.status };
    },
    async *watch(req, ctx) {
      if (!state.knows(req.service)) {
        yield { status: Status.SERVICE_UNKNOWN };
      }
      let changed: (() => void) | undefined;
      const unsubscribe = state.subscribe(() => changed?.());
      try {
        let last: Status | undefined;
        while (!ctx.signal.aborted) {
          if (state.knows(req.service) && state.status !== last) {
            last = state.status;
            yield { status: last };
          }
          if (state.isShutDown) return;
          await new Promise<void>((resolve) => {
            changed = resolve;
            ctx.signal.addEventListener('abort', () => resolve(), { once: true });
          });
        }
      } finally {
        unsubscribe();
      }
    },
  };
}
