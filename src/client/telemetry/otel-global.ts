/**
 * The OpenTelemetry API as the application registered it, read from the global every copy of
 * `@opentelemetry/api` 1.x shares (`Symbol.for('opentelemetry.js.api.1')`: the tracer provider,
 * meter provider, context manager and propagator that `trace.setGlobalTracerProvider` and friends
 * store there). The client imports nothing from `@opentelemetry/api` at run time (it is an
 * optional peer): with no provider registered a call costs one property read, and the package
 * need not be installed. Browser-safe.
 * @packageDocumentation
 */
import type { Context, ContextManager, MeterProvider, TextMapPropagator, TracerProvider } from '@opentelemetry/api';

/** What the API stores on its global (only the members this client reads). */
export interface OtelGlobal {
  version?: string;
  trace?: TracerProvider;
  metrics?: MeterProvider;
  context?: ContextManager;
  propagation?: TextMapPropagator;
}

const key = Symbol.for('opentelemetry.js.api.1');

/** The registered API global, or undefined when nothing was ever registered. */
export function otelGlobal(): OtelGlobal | undefined {
  return (globalThis as Record<symbol, OtelGlobal | undefined>)[key];
}

/** The registered tracer provider, or undefined (the fast path: no tracing). */
export function registeredTracerProvider(): TracerProvider | undefined {
  return (globalThis as Record<symbol, OtelGlobal | undefined>)[key]?.trace;
}

/** The context key the API keeps the active span under (`trace.setSpan`). */
export const spanKey: symbol = Symbol.for('OpenTelemetry Context Key SPAN');

/** A context as the API's own (immutable: `setValue` returns a new one). */
class ValueContext implements Context {
  constructor(private readonly values: ReadonlyMap<symbol, unknown> = new Map()) {}
  getValue(k: symbol): unknown {
    return this.values.get(k);
  }
  setValue(k: symbol, value: unknown): Context {
    const next = new Map(this.values);
    next.set(k, value);
    return new ValueContext(next);
  }
  deleteValue(k: symbol): Context {
    const next = new Map(this.values);
    next.delete(k);
    return new ValueContext(next);
  }
}

/** The empty context (the API's ROOT_CONTEXT when no context manager is registered). */
export const rootContext: Context = new ValueContext();

/** The active context: the registered context manager's, or the empty one. */
export function activeContext(g: OtelGlobal | undefined = otelGlobal()): Context {
  return g?.context?.active() ?? rootContext;
}
