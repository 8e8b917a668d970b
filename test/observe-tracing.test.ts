/**
 * OpenTelemetry tracing end to end: an in-memory span exporter and the AsyncLocalStorage context
 * manager registered in this process, a real server started in it, and the client over native
 * gRPC and over Connect. A query, a transaction and a stream under one root span give one trace:
 * client span → server call span → statement span. Errors carry the SQLSTATE, retries are span
 * events, a stream's span ends at its last row, an application's own propagator is used on both
 * sides, and with no tracer provider nothing is traced or sent.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import {
  type Context,
  context,
  propagation,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type TextMapPropagator,
  trace,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Interceptor } from '@connectrpc/connect';
import { createClient, type HeliosDBClient, UniqueViolationError } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { startTestServer, type TestServer, uniqueName } from './helpers/server.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager().enable();
trace.setGlobalTracerProvider(provider);
context.setGlobalContextManager(contextManager);
const tracer = trace.getTracer('observe-test');

/** Headers each call left the client with (seen by an interceptor outside the client's own). */
const sentHeaders: Headers[] = [];
const recordHeaders: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } finally {
    sentHeaders.push(req.header);
  }
};

const spansOf = (traceId: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;
const childrenOf = (spans: ReadableSpan[], parent: ReadableSpan): ReadableSpan[] =>
  spans.filter((s) => parentOf(s) === parent.spanContext().spanId);

/** Runs `fn` under a fresh root span; returns the trace id. */
async function underRoot(fn: () => Promise<void>): Promise<{ traceId: string; root: ReadableSpan }> {
  let traceId = '';
  let spanId = '';
  await tracer.startActiveSpan('root', async (root) => {
    traceId = root.spanContext().traceId;
    spanId = root.spanContext().spanId;
    try {
      await fn();
    } finally {
      root.end();
    }
  });
  const root = exporter.getFinishedSpans().find((s) => s.spanContext().spanId === spanId);
  assert.ok(root, 'the root span was exported');
  return { traceId, root };
}

/** The client span for `operation` under `parent`, its server call span and that call's statement spans. */
function chain(spans: ReadableSpan[], parent: ReadableSpan, operation: string, rpc: string) {
  const client = childrenOf(spans, parent).filter((s) => s.kind === SpanKind.CLIENT && s.attributes['rpc.method'] === rpc);
  const matching = client.filter((s) => s.attributes['db.operation.name'] === operation);
  assert.equal(matching.length, 1, `one ${operation} client span for ${rpc}: ${client.map((s) => s.name).join(', ')}`);
  const c = matching[0];
  const calls = childrenOf(spans, c);
  assert.equal(calls.length, 1, `one server span under the ${rpc} client span`);
  const call = calls[0];
  assert.equal(call.kind, SpanKind.SERVER);
  assert.equal(call.name, `heliosdb.v1.DatabaseService/${rpc}`);
  const statements = childrenOf(spans, call);
  return { client: c, call, statements };
}

describeEachBackend('tracing', (backend) => {
  let ts: TestServer;
  const clients: Record<string, HeliosDBClient> = {};
  const table = uniqueName('observe_tr');

  before(async () => {
    ts = await startTestServer(backend);
    clients.grpc = createClient({ url: ts.server.grpcUrl, minConnections: 1, interceptors: [recordHeaders] });
    clients.connect = createClient({ url: ts.server.httpUrl!, interceptors: [recordHeaders] });
    await clients.grpc.execute(`CREATE TABLE ${table} (id int PRIMARY KEY, name text)`);
    await clients.grpc.execute(`INSERT INTO ${table} SELECT g, 'n' || g FROM generate_series(1, 50) g`);
  });

  after(async () => {
    await clients.grpc?.execute(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
    await Promise.all(Object.values(clients).map((c) => c.close()));
    await ts?.close();
  });

  for (const kind of ['grpc', 'connect'] as const) {
    test(`a query, a transaction and a stream form one trace: client → server call → statement (${kind})`, async () => {
      const client = clients[kind];
      const sql = `SELECT name FROM ${table} WHERE id = $1`;
      const { traceId, root } = await underRoot(async () => {
        const r = await client.query(sql, [7]);
        assert.deepEqual(r.rows, [{ name: 'n7' }]);
        await client.transaction(async (tx) => {
          await tx.execute(`UPDATE ${table} SET name = $1 WHERE id = $2`, ['secret-value', 8]);
        });
        let rows = 0;
        for await (const _ of client.stream(`SELECT id FROM ${table} ORDER BY id`)) rows++;
        assert.equal(rows, 50);
      });
      const spans = spansOf(traceId);

      const q = chain(spans, root, 'SELECT', 'Query');
      assert.equal(q.client.name, 'SELECT');
      assert.equal(q.client.attributes['db.system.name'], 'postgresql');
      assert.equal(q.client.attributes['db.query.text'], sql);
      assert.equal(q.client.attributes['server.address'], '127.0.0.1');
      assert.equal(q.client.attributes['server.port'], Number(new URL(kind === 'grpc' ? ts.server.grpcUrl : ts.server.httpUrl!).port));
      assert.equal(q.client.status.code, SpanStatusCode.UNSET);
      assert.equal(q.call.attributes['rpc.system'], kind === 'grpc' ? 'grpc' : 'connect_rpc');
      assert.equal(q.statements.length, 1, 'one statement span under the Query call');
      assert.equal(q.statements[0].attributes['db.query.text'], sql);
      assert.equal(q.statements[0].attributes['db.operation.name'], 'SELECT');

      // The transaction: BEGIN, the statement and COMMIT, each a client span of the same trace.
      chain(spans, root, 'BEGIN', 'BeginTransaction');
      const u = chain(spans, root, 'UPDATE', 'Execute');
      assert.equal(u.statements.length, 1);
      assert.equal(u.statements[0].attributes['db.operation.name'], 'UPDATE');
      chain(spans, root, 'COMMIT', 'Commit');
      // Parameter values never reach a span.
      for (const s of spans) assert.ok(!JSON.stringify(s.attributes).includes('secret-value'), `${s.name} holds no parameter value`);

      const st = chain(spans, root, 'SELECT', 'StreamQuery');
      assert.equal(st.statements.length, 1);
      assert.ok(spans.every((s) => s.spanContext().traceId === traceId));
    });
  }

  test("a stream's span ends at its last row; one left early is marked cancelled, not failed", async () => {
    const { traceId } = await underRoot(async () => {
      const stream = clients.grpc.stream<{ id: number }>(`SELECT id FROM ${table} ORDER BY id`, [], { batchRows: 1 });
      let n = 0;
      for await (const _ of stream) {
        n++;
        if (n === 1) {
          const open = exporter
            .getFinishedSpans()
            .filter((s) => s.attributes['rpc.method'] === 'StreamQuery' && s.kind === SpanKind.CLIENT);
          assert.ok(!open.some((s) => s.spanContext().traceId === currentTraceId()), 'the stream span is still open after the first row');
        }
      }
      assert.equal(n, 50);
      for await (const _ of clients.grpc.stream(`SELECT id FROM ${table}`, [], { batchRows: 1 })) break;
    });
    const streams = spansOf(traceId).filter((s) => s.kind === SpanKind.CLIENT && s.attributes['rpc.method'] === 'StreamQuery');
    assert.equal(streams.length, 2);
    const [whole, left] = streams;
    assert.equal(whole.attributes['heliosdb.cancelled'], undefined);
    assert.equal(left.attributes['heliosdb.cancelled'], true);
    assert.equal(left.status.code, SpanStatusCode.UNSET);
  });

  test('a failed statement carries its SQLSTATE on the client, server call and statement spans', async () => {
    const { traceId, root } = await underRoot(async () => {
      await assert.rejects(clients.grpc.execute(`INSERT INTO ${table} (id, name) VALUES ($1, $2)`, [1, 'dup']), UniqueViolationError);
    });
    const spans = spansOf(traceId);
    const e = chain(spans, root, 'INSERT', 'Execute');
    for (const s of [e.client, e.call, e.statements[0]]) {
      assert.equal(s.attributes['db.response.status_code'], '23505', s.name);
      assert.equal(s.attributes['error.type'], '23505', s.name);
      assert.equal(s.status.code, SpanStatusCode.ERROR, s.name);
    }
  });

  test('an application propagator carries the context when one is registered, on both sides', async () => {
    const fieldName = 'x-observe-trace';
    const key = Symbol.for('observe-test remote');
    const custom: TextMapPropagator = {
      inject(ctx: Context, carrier, setter) {
        const sc = trace.getSpanContext(ctx);
        if (sc) setter.set(carrier, fieldName, `${sc.traceId}.${sc.spanId}`);
      },
      extract(ctx: Context, carrier, getter) {
        const v = getter.get(carrier, fieldName);
        const [traceId, spanId] = (typeof v === 'string' ? v : '').split('.');
        if (!traceId || !spanId) return ctx;
        const sc: SpanContext = { traceId, spanId, traceFlags: 1, isRemote: true };
        return trace.setSpanContext(ctx, sc).setValue(key, true);
      },
      fields: () => [fieldName],
    };
    propagation.setGlobalPropagator(custom);
    sentHeaders.length = 0;
    try {
      const { traceId, root } = await underRoot(async () => {
        await clients.connect.query('SELECT 1 AS one');
      });
      const q = chain(spansOf(traceId), root, 'SELECT', 'Query');
      assert.equal(q.statements.length, 1);
      const h = sentHeaders.at(-1)!;
      assert.equal(h.get(fieldName), `${traceId}.${q.client.spanContext().spanId}`);
      assert.equal(h.get('traceparent'), null, 'the registered propagator decides what is sent');
    } finally {
      propagation.disable();
    }
  });

  test('without a propagator the client sends a W3C traceparent naming its span', async () => {
    sentHeaders.length = 0;
    const { traceId, root } = await underRoot(async () => {
      await clients.grpc.query('SELECT 2 AS two');
    });
    const q = chain(spansOf(traceId), root, 'SELECT', 'Query');
    assert.equal(sentHeaders.at(-1)!.get('traceparent'), `00-${traceId}-${q.client.spanContext().spanId}-01`);
  });

  test('retries are events on the one client span of a call', async () => {
    const port = await closedPort();
    const client = createClient({
      url: `grpc://127.0.0.1:${port}`,
      minConnections: 0,
      connectTimeoutMs: 2000,
      retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
    });
    try {
      const { traceId, root } = await underRoot(async () => {
        await assert.rejects(client.query('SELECT 1'));
      });
      const spans = childrenOf(spansOf(traceId), root);
      assert.equal(spans.length, 1, 'one span for the call, whatever its attempts');
      const retries = spans[0].events.filter((e) => e.name === 'retry');
      assert.deepEqual(
        retries.map((e) => e.attributes?.['heliosdb.retry.attempt']),
        [2, 3],
      );
      assert.equal(spans[0].status.code, SpanStatusCode.ERROR);
      assert.equal(typeof spans[0].attributes['error.type'], 'string');
    } finally {
      await client.close();
    }
  });

  test('queryText: false leaves the SQL out of client spans; tracing: false turns client spans off', async () => {
    const quiet = createClient({ url: ts.server.grpcUrl, minConnections: 0, tracing: { queryText: false } });
    const off = createClient({ url: ts.server.grpcUrl, minConnections: 0, tracing: false, interceptors: [recordHeaders] });
    try {
      sentHeaders.length = 0;
      const { traceId, root } = await underRoot(async () => {
        await quiet.query('SELECT 4 AS four');
        await off.query('SELECT 5 AS five');
      });
      const spans = spansOf(traceId);
      const clientSpans = childrenOf(spans, root);
      assert.equal(clientSpans.length, 1, 'only the client with tracing on has a span');
      assert.equal(clientSpans[0].attributes['db.query.text'], undefined);
      assert.equal(clientSpans[0].attributes['db.operation.name'], 'SELECT');
      assert.equal(sentHeaders.at(-1)!.get('traceparent'), null, 'tracing: false sends no trace context');
    } finally {
      await quiet.close();
      await off.close();
    }
  });

  test('with no tracer provider registered nothing is traced and no trace header is sent', async () => {
    trace.disable();
    try {
      const before = exporter.getFinishedSpans().length;
      sentHeaders.length = 0;
      await clients.grpc.query('SELECT 3 AS three');
      await clients.connect.query('SELECT 3 AS three');
      assert.equal(exporter.getFinishedSpans().length, before);
      assert.equal(sentHeaders.length, 2);
      for (const h of sentHeaders) assert.equal(h.get('traceparent'), null);
    } finally {
      trace.setGlobalTracerProvider(provider);
    }
  });
});

function currentTraceId(): string | undefined {
  return trace.getActiveSpan()?.spanContext().traceId;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
