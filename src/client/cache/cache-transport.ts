/**
 * Keeps the query cache honest about this client's own writes: a Transport around the client's,
 * so that every call (auto-commit, transactions, reserved sessions, batches, COPY) is seen once,
 * whatever its retries. A call that may write drops the cached reads of the tables it writes when
 * it starts and again when it ends; writes in a transaction or session drop them again when it
 * commits or is released. Browser-safe.
 * @packageDocumentation
 */
import type { DescMethod } from '@bufbuild/protobuf';
import { MethodOptions_IdempotencyLevel } from '@bufbuild/protobuf/wkt';
import type { Transport } from '@connectrpc/connect';
import type { QueryCache } from './query-cache.js';
import { type TableSet, tablesWritten } from './sql-tables.js';

const noSideEffects = MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS;

interface SqlFields {
  sql?: string;
  statements?: { sql?: string }[];
  transactionId?: string;
  sessionId?: string;
}

/** The tables a request may write: undefined for a read or a call without SQL. */
function writesOf(m: SqlFields): TableSet | undefined {
  const sqls = m.statements && m.statements.length > 0 ? m.statements.map((s) => s.sql ?? '') : m.sql ? [m.sql] : [];
  let out: Set<string> | undefined;
  for (const sql of sqls) {
    const w = tablesWritten(sql);
    if (w === undefined) continue;
    if (w === 'all') return 'all';
    out ??= new Set();
    for (const t of w) out.add(t);
  }
  return out;
}

/** What a call does to the cache when it starts and when it ends; undefined when nothing. */
function effectOf(cache: QueryCache, method: DescMethod, m: SqlFields): { start(): void; end(): void } | undefined {
  switch (method.name) {
    case 'Commit':
    case 'ReleaseSession': {
      const id = m.transactionId || m.sessionId || '';
      return { start() {}, end: () => cache.ended(id, true) };
    }
    case 'Rollback': {
      const id = m.transactionId ?? '';
      return { start() {}, end: () => cache.ended(id, false) };
    }
    case 'CopyFrom':
      // Its SQL travels in the request stream: everything may change.
      return { start: () => cache.changed('all'), end: () => cache.changed('all') };
  }
  const tables = writesOf(m);
  if (tables === undefined) return undefined;
  const id = m.transactionId;
  return {
    start: () => (id ? cache.changedIn(id, tables) : cache.changed(tables)),
    end: () => cache.changed(tables),
  };
}

/** `transport` with the client's writes reported to `cache` (see the file comment). */
export function invalidatingTransport(transport: Transport, cache: QueryCache): Transport {
  return {
    async unary(method, signal, timeoutMs, header, input, contextValues) {
      const effect = method.idempotency === noSideEffects ? undefined : effectOf(cache, method, input as SqlFields);
      if (!effect) return transport.unary(method, signal, timeoutMs, header, input, contextValues);
      effect.start();
      try {
        return await transport.unary(method, signal, timeoutMs, header, input, contextValues);
      } finally {
        effect.end();
      }
    },
    async stream(method, signal, timeoutMs, header, input, contextValues) {
      // CopyTo and Listen never write.
      if (method.name === 'CopyTo' || method.name === 'Listen')
        return transport.stream(method, signal, timeoutMs, header, input, contextValues);
      let body = input;
      let first: SqlFields = {};
      if (method.methodKind === 'server_streaming') {
        const messages: unknown[] = [];
        for await (const m of input) messages.push(m);
        first = (messages[0] ?? {}) as SqlFields;
        body = (async function* () {
          yield* messages;
        })() as typeof input;
      }
      const effect = effectOf(cache, method, first);
      if (!effect) return transport.stream(method, signal, timeoutMs, header, body, contextValues);
      effect.start();
      let res;
      try {
        res = await transport.stream(method, signal, timeoutMs, header, body, contextValues);
      } catch (e) {
        effect.end();
        throw e;
      }
      const inner = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* inner;
          } finally {
            effect.end();
          }
        })(),
      };
    },
  };
}
