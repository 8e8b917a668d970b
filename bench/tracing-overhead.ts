/**
 * What the client's tracing interceptor costs per call, on a call that does nothing else (no
 * network, so the interceptor's own work is all that is measured): without the interceptor, with
 * it and no tracer provider registered (the fast path every application without OpenTelemetry
 * takes), and with a provider registered that records spans.
 * Run: npx tsx bench/tracing-overhead.ts [--quick]. `npm run bench` measures the round trip with
 * tracing on beside off (its `sdk-grpc-traced` cells, bench/lib/traced.ts).
 */
import type { UnaryRequest, UnaryResponse } from '@connectrpc/connect';
import { trace } from '@opentelemetry/api';
import { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';
import { DatabaseService } from '../gen/heliosdb/v1/database_pb.js';
import { tracingInterceptor } from '../src/client/telemetry/tracing-interceptor.js';

const quick = process.argv.includes('--quick');
const calls = quick ? 200_000 : 2_000_000;

const method = DatabaseService.method.query;
const response = { stream: false } as unknown as UnaryResponse;
const next = async (_req: unknown) => response;
const traced = tracingInterceptor()(next as never) as (req: UnaryRequest) => Promise<unknown>;

function request(): UnaryRequest {
  return {
    stream: false,
    service: DatabaseService,
    method,
    url: 'http://127.0.0.1:7700/heliosdb.v1.DatabaseService/Query',
    header: new Headers(),
    message: { sql: 'SELECT $1::int AS n' },
    contextValues: undefined,
    signal: undefined,
    requestMethod: 'POST',
  } as unknown as UnaryRequest;
}

async function nsPerCall(fn: (req: UnaryRequest) => Promise<unknown>): Promise<number> {
  const reqs = Array.from({ length: 1024 }, request);
  for (let i = 0; i < 20_000; i++) await fn(reqs[i & 1023]); // warm up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await fn(reqs[i & 1023]);
  return Number(process.hrtime.bigint() - t0) / calls;
}

const base = await nsPerCall(next as never);
const off = await nsPerCall(traced);
trace.setGlobalTracerProvider(new BasicTracerProvider());
const on = await nsPerCall(traced);
trace.disable();

console.log(`tracing interceptor, ${calls} calls (ns per call, on a call that does nothing else):`);
console.log(`  no interceptor                 ${base.toFixed(0).padStart(6)} ns`);
console.log(`  no tracer provider registered  ${off.toFixed(0).padStart(6)} ns  (+${(off - base).toFixed(0)} ns)`);
console.log(`  a tracer provider recording    ${on.toFixed(0).padStart(6)} ns  (+${(on - base).toFixed(0)} ns)`);
