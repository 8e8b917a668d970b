/**
 * The `sdk-grpc-traced` stack: an OpenTelemetry tracer provider registered in the client process
 * (as an application with tracing has it), its spans batched to an exporter that drops them, so
 * the cell measures what recording a span per call costs beside `sdk-grpc` (no provider).
 * @packageDocumentation
 */
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { createClient, type HeliosDBClient } from '@heliosdb/client';

/** An exporter that takes every batch and keeps nothing. */
const dropping: SpanExporter = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: async () => {},
};

/** Registers the tracer provider (once per process) and opens a client of `grpcUrl`. */
export function tracedClient(grpcUrl: string): HeliosDBClient {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(dropping)] }));
  return createClient({ url: grpcUrl });
}
