/**
 * Server spans: a span (kind SERVER) per call of a service, continuing the trace the caller sent
 * in its `traceparent` (through the application's propagator when it registered one), and the
 * call's context kept by its AbortSignal, so that the statements it runs become its child spans
 * (./statement-span.ts). With no tracer provider registered the handlers are called as they are.
 * @packageDocumentation
 */
import type { DescService } from '@bufbuild/protobuf';
import { Code, ConnectError, type ServiceImpl } from '@connectrpc/connect';
import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from '@opentelemetry/api';
import { ErrorDetailSchema, parseTraceparent, registeredTracerProvider, traceparentHeader } from '@heliosdb/client/wire';
import type { CallContext } from '../call-context.js';
import { VERSION } from '../version.js';

/** The instrumentation scope of the server's spans. */
export const serverInstrumentationName = '@heliosdb/server';

const callContexts = new WeakMap<AbortSignal, Context>();

/** The trace context of the call whose signal is `signal`, when the call is traced. */
export function traceContextOf(signal: AbortSignal): Context | undefined {
  return callContexts.get(signal);
}

const getter: TextMapGetter<CallContext['requestHeader']> = {
  get: (carrier, key) => carrier.get(key) ?? undefined,
  keys: () => [],
};

/** The caller's context: what its `traceparent` (or the registered propagator's fields) name. */
function remoteParent(ctx: CallContext): Context {
  if (propagation.fields().length > 0) return propagation.extract(ROOT_CONTEXT, ctx.requestHeader, getter);
  const sc = parseTraceparent(ctx.requestHeader.get(traceparentHeader));
  return sc ? trace.setSpanContext(ROOT_CONTEXT, sc) : ROOT_CONTEXT;
}

/** Ends a call's span with its outcome. */
function endCall(span: Span, error: unknown): void {
  if (error === undefined) {
    span.setAttribute('rpc.grpc.status_code', 0);
    span.end();
    return;
  }
  const ce = ConnectError.from(error);
  const sqlstate = ce.findDetails(ErrorDetailSchema)[0]?.sqlstate || undefined;
  span.setAttribute('rpc.grpc.status_code', ce.code);
  if (sqlstate) span.setAttribute('db.response.status_code', sqlstate);
  span.setAttribute('error.type', sqlstate ?? Code[ce.code] ?? String(ce.code));
  span.setStatus({ code: SpanStatusCode.ERROR, message: ce.rawMessage });
  span.end();
}

function startCall(service: DescService, method: string, ctx: CallContext): { span: Span; callContext: Context } {
  const parent = remoteParent(ctx);
  const span = trace.getTracer(serverInstrumentationName, VERSION).startSpan(
    `${service.typeName}/${method}`,
    {
      kind: SpanKind.SERVER,
      attributes: {
        'rpc.system': ctx.values ? 'connect_rpc' : 'grpc',
        'rpc.service': service.typeName,
        'rpc.method': method,
      },
    },
    parent,
  );
  const callContext = trace.setSpan(parent, span);
  callContexts.set(ctx.signal, callContext);
  return { span, callContext };
}

type Handler = (req: unknown, ctx: CallContext) => unknown;

/** `impl` with a span around every call of `service` (see the file comment). */
export function traceService<S extends DescService>(service: S, impl: ServiceImpl<S>): ServiceImpl<S> {
  const out: Record<string, Handler> = { ...(impl as unknown as Record<string, Handler>) };
  for (const method of service.methods) {
    const handler = out[method.localName];
    if (typeof handler !== 'function') continue;
    if (method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming') {
      out[method.localName] = (req, ctx) => {
        if (!registeredTracerProvider()) return handler.call(impl, req, ctx);
        return (async function* () {
          const { span, callContext } = startCall(service, method.name, ctx);
          let error: unknown;
          try {
            const source = context.with(callContext, () => handler.call(impl, req, ctx)) as AsyncIterable<unknown>;
            yield* source;
          } catch (e) {
            error = e ?? new Error('failed');
            throw e;
          } finally {
            endCall(span, error);
          }
        })();
      };
    } else {
      out[method.localName] = (req, ctx) => {
        if (!registeredTracerProvider()) return handler.call(impl, req, ctx);
        const { span, callContext } = startCall(service, method.name, ctx);
        return context.with(callContext, async () => {
          try {
            const res = await handler.call(impl, req, ctx);
            endCall(span, undefined);
            return res;
          } catch (e) {
            endCall(span, e ?? new Error('failed'));
            throw e;
          }
        });
      };
    }
  }
  return out as unknown as ServiceImpl<S>;
}
