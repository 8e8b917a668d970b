/**
 * SessionService against a real server on both backends: many operations in one message, each
 * answered by id, a failed one not ending the stream, the server's announced in-flight limit,
 * cancel ops and deadlines (PostgreSQL, whose statements can be cancelled), and a lost stream
 * rolling back the transactions begun on it (rows counted in the database). Then the client's
 * `sessions: true`: the same results and typed errors as unary calls, a transaction left open
 * by a closed client rolled back at once; and a server without SessionService answering
 * UNIMPLEMENTED, which the client's session marks unsupported so that calls go unary.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { AuthenticationError, CancelledError, createClient, QueryError, TimeoutError } from '@heliosdb/client';
import { makeTestCerts } from './helpers/certs.js';
import { makeUser, type SecurityFixture, startSecureServer } from './helpers/security.js';
import { ExecuteRequestSchema, QueryRequestSchema } from '../gen/heliosdb/v1/database_pb.js';
import {
  type SessionOp,
  SessionOpSchema,
  type SessionRequest,
  SessionRequestSchema,
  type SessionResponse,
  type SessionResult,
} from '../gen/heliosdb/v1/session_pb.js';
import { RowFormat } from '../gen/heliosdb/v1/value_pb.js';
import { GrpcSession, SessionUnsupported } from '../src/client/transport/grpc-session.js';
import { GrpcSessions } from '../src/client/transport/grpc-sessions.js';
import { DatabaseService } from '../gen/heliosdb/v1/database_pb.js';
import { Endpoint, PooledChannel } from '../src/client/transport/pooled-channel.js';
import { CircuitBreaker } from '../src/client/circuit-breaker.js';
import { describeEachBackend } from './helpers/backends.js';
import { rejects } from './helpers/assert-error.js';
import { startTestServer, type TestServer, uniqueName, waitFor } from './helpers/server.js';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { SessionResponseSchema } from '../gen/heliosdb/v1/session_pb.js';

const path = '/heliosdb.v1.SessionService/Session';
const ser = (m: SessionRequest) => Buffer.from(toBinary(SessionRequestSchema, m));
const de = (b: Buffer) => fromBinary(SessionResponseSchema, b);

/** A raw Session stream: send ops, wait for results by id. */
function openRaw(url: string) {
  const client = new grpc.Client(url.replace('grpc://', ''), grpc.credentials.createInsecure());
  const call = client.makeBidiStreamRequest(path, ser, de, new grpc.Metadata());
  const results = new Map<number, SessionResult>();
  const messages: SessionResponse[] = [];
  let ended: unknown;
  call.on('data', (m: SessionResponse) => {
    messages.push(m);
    for (const r of m.results) results.set(r.id, r);
  });
  call.on('error', (e) => (ended = e));
  call.on('end', () => (ended ??= 'end'));
  return {
    messages,
    send: (ops: Partial<SessionOp>[]) =>
      call.write(create(SessionRequestSchema, { ops: ops.map((o) => create(SessionOpSchema, o as never)) })),
    result: async (id: number, timeoutMs = 20_000) => {
      assert.ok(await waitFor(() => results.has(id) || ended !== undefined, timeoutMs), `result ${id} within ${timeoutMs} ms`);
      const r = results.get(id);
      assert.ok(r, `result ${id} (stream ended: ${String(ended)})`);
      return r;
    },
    get ended() {
      return ended;
    },
    cancel: () => call.cancel(),
    close: () => client.close(),
  };
}

const q = (sql: string) => ({ case: 'query' as const, value: create(QueryRequestSchema, { sql, rowFormat: RowFormat.VALUES }) });
const x = (sql: string, transactionId = '') => ({ case: 'execute' as const, value: create(ExecuteRequestSchema, { sql, transactionId }) });

describeEachBackend('sessions', (backend) => {
  let ts: TestServer;
  const t = uniqueName('sessions_t');

  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
    const c = createClient({ url: ts.server.grpcUrl });
    await c.execute(`CREATE TABLE ${t} (id int PRIMARY KEY)`);
    await c.close();
  });
  after(async () => {
    const c = createClient({ url: ts.server.grpcUrl });
    await c.execute(`DROP TABLE IF EXISTS ${t}`).catch(() => {});
    await c.close();
    await ts?.close();
  });

  const count = async () => {
    const c = createClient({ url: ts.server.grpcUrl });
    try {
      return Number((await c.query<{ n: bigint }>(`SELECT count(*) AS n FROM ${t}`)).rows[0].n);
    } finally {
      await c.close();
    }
  };

  test('ops of one message answered by id; a failed op does not end the stream', async () => {
    const s = openRaw(ts.server.grpcUrl);
    try {
      s.send([
        { id: 1, op: q('SELECT 41 + 1 AS n') },
        { id: 2, op: q('SELECT 1/0') },
        { id: 3, op: x(`INSERT INTO ${t} VALUES (1), (2)`) },
      ]);
      const one = await s.result(1);
      assert.equal(one.result.case, 'query');
      const two = await s.result(2);
      assert.equal(two.result.case, 'error');
      assert.equal(two.result.case === 'error' && two.result.value.detail?.sqlstate, '22012');
      const three = await s.result(3);
      assert.equal(three.result.case === 'execute' && three.result.value.rowsAffected, 2n);
      assert.equal(s.messages[0].opened?.maxInFlight, 256, 'the first message announces the in-flight limit');
      s.send([{ id: 4, op: x(`DELETE FROM ${t}`) }]);
      assert.equal((await s.result(4)).result.case, 'execute');
      assert.equal(s.ended, undefined);
      s.send([{ id: 5, op: { case: undefined } } as never]);
      const five = await s.result(5);
      assert.equal(five.result.case === 'error' && five.result.value.code, grpc.status.INVALID_ARGUMENT);
    } finally {
      s.cancel();
      s.close();
    }
    assert.equal(await count(), 0);
  });

  test('a lost stream rolls back the transactions begun on it', async () => {
    const s = openRaw(ts.server.grpcUrl);
    s.send([{ id: 1, op: { case: 'beginTransaction', value: {} as never } }]);
    const begun = await s.result(1);
    assert.equal(begun.result.case, 'beginTransaction');
    const txId = begun.result.case === 'beginTransaction' ? begun.result.value.transactionId : '';
    s.send([{ id: 2, op: x(`INSERT INTO ${t} VALUES (7)`, txId) }]);
    assert.equal((await s.result(2)).result.case, 'execute');
    assert.equal(ts.server.openTransactions(), 1);
    s.cancel();
    s.close();
    assert.ok(await waitFor(() => ts.server.openTransactions() === 0, 10_000), 'rolled back when the stream ended');
    assert.equal(await count(), 0);
  });

  test('a transaction used on another stream (a renewed token) moves to it', async () => {
    const a = openRaw(ts.server.grpcUrl);
    const b = openRaw(ts.server.grpcUrl);
    try {
      a.send([{ id: 1, op: { case: 'beginTransaction', value: {} as never } }]);
      const begun = await a.result(1);
      const txId = begun.result.case === 'beginTransaction' ? begun.result.value.transactionId : '';
      b.send([{ id: 1, op: x(`INSERT INTO ${t} VALUES (8)`, txId) }]);
      assert.equal((await b.result(1)).result.case, 'execute');
      a.cancel();
      a.close();
      // The first stream is gone; the transaction lives on with the second.
      b.send([{ id: 2, op: x('SELECT 1', txId) }]);
      assert.equal((await b.result(2)).result.case, 'execute');
      assert.equal(ts.server.openTransactions(), 1);
      b.send([{ id: 3, op: { case: 'commit', value: { transactionId: txId } as never } }]);
      assert.equal((await b.result(3)).result.case, 'commit');
      assert.equal(await count(), 1);
      const c = createClient({ url: ts.server.grpcUrl });
      await c.execute(`DELETE FROM ${t}`);
      await c.close();
    } finally {
      b.cancel();
      b.close();
    }
  });

  test('cancel op and deadline stop a running statement', {
    skip: backend.name === 'pglite' && 'PGlite cannot cancel a running statement',
  }, async () => {
    const s = openRaw(ts.server.grpcUrl);
    try {
      s.send([
        { id: 1, op: q('SELECT pg_sleep(30)') },
        { id: 2, timeoutMs: 300, op: q('SELECT pg_sleep(30)') },
        { id: 3, op: q('SELECT 1') },
      ]);
      assert.equal((await s.result(3)).result.case, 'query', 'other ops go on while two sleep');
      s.send([{ id: 0, op: { case: 'cancel', value: { id: 1 } as never } }]);
      const one = await s.result(1, 10_000);
      assert.equal(one.result.case === 'error' && one.result.value.code, grpc.status.CANCELLED);
      const two = await s.result(2, 10_000);
      assert.equal(two.result.case === 'error' && two.result.value.code, grpc.status.DEADLINE_EXCEEDED);
    } finally {
      s.cancel();
      s.close();
    }
  });

  test('an idle stream is ended by the client, cleanly', async () => {
    const client = new grpc.Client(ts.server.grpcUrl.replace('grpc://', ''), grpc.credentials.createInsecure());
    try {
      const s = new GrpcSession(client, new grpc.Metadata(), ts.server.grpcUrl, 200);
      const r = (await s.run('query', create(QueryRequestSchema, { sql: 'SELECT 1' }), undefined, undefined)) as { result?: unknown };
      assert.ok(r.result);
      assert.ok(await waitFor(() => s.closed, 10_000), 'ended after 200 ms without operations');
      assert.equal(s.unsupported, false);
      await assert.rejects(s.run('query', create(QueryRequestSchema, { sql: 'SELECT 1' }), undefined, undefined), /is closed/);
    } finally {
      client.close();
    }
  });

  test('the client over sessions: a deadline and an abort stop the statement', {
    skip: backend.name === 'pglite' && 'PGlite cannot cancel a running statement',
  }, async () => {
    const c = createClient({ url: ts.server.grpcUrl, sessions: true, minConnections: 1 });
    try {
      await rejects(c.query('SELECT pg_sleep(30)', [], { timeoutMs: 300 }), TimeoutError);
      const ac = new AbortController();
      const p = c.query('SELECT pg_sleep(30)', [], { signal: ac.signal });
      setTimeout(() => ac.abort(), 200);
      await rejects(p, CancelledError);
      assert.equal((await c.query<{ n: number }>('SELECT 1 AS n')).rows[0].n, 1, 'the session goes on');
      assert.ok(
        await waitFor(async () => {
          const r = await ts.admin!.query(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'",
          );
          return r.rows[0].n === 0;
        }, 10_000),
        'both statements were cancelled in the database',
      );
    } finally {
      await c.close();
    }
  });

  test('the client with sessions: true; a closed client rolls back its open transaction at once', async () => {
    const c = createClient({ url: ts.server.grpcUrl, sessions: true, minConnections: 1 });
    const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => c.query<{ n: number }>('SELECT $1::int AS n', [i])));
    assert.deepEqual(
      rs.map((r) => r.rows[0].n),
      Array.from({ length: 50 }, (_, i) => i),
    );
    const e = await rejects(c.query('SELECT 1/0'), QueryError);
    assert.equal(e.sqlstate, '22012');
    await c.transaction(async (tx) => {
      await tx.execute(`INSERT INTO ${t} VALUES ($1)`, [10]);
    });
    assert.equal(await count(), 1);
    const tx = await c.begin();
    await tx.execute(`INSERT INTO ${t} VALUES (11)`);
    assert.equal(ts.server.openTransactions(), 1);
    await c.close();
    assert.ok(await waitFor(() => ts.server.openTransactions() === 0, 10_000), 'the session ended with the client: rolled back');
    assert.equal(await count(), 1);
  });
});

test('a server without SessionService: the session is unsupported, the caller goes unary', async () => {
  const server = new grpc.Server();
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const s = new GrpcSession(client, new grpc.Metadata(), `grpc://127.0.0.1:${port}`);
    await assert.rejects(s.run('query', create(QueryRequestSchema, { sql: 'SELECT 1' }), undefined, undefined), SessionUnsupported);
    assert.equal(s.unsupported, true);
    assert.equal(s.closed, true);
  } finally {
    client.close();
    server.forceShutdown();
  }
});

test('one stream per channel and identity: other credentials (a renewed token) open another', () => {
  const client = new grpc.Client('127.0.0.1:1', grpc.credentials.createInsecure());
  const ep = new Endpoint({ url: 'grpc://127.0.0.1:1', target: '127.0.0.1:1' }, new CircuitBreaker({}));
  const ch = new PooledChannel(1, client, ep);
  const sessions = new GrpcSessions();
  const method = DatabaseService.method.query;
  const md = (token: string) => {
    const m = new grpc.Metadata();
    m.set('authorization', `Bearer ${token}`);
    return m;
  };
  try {
    const a = sessions.sessionFor(ch, method, md('one'));
    assert.ok(a);
    assert.equal(sessions.sessionFor(ch, method, md('one')), a, 'the same identity shares the stream');
    const b = sessions.sessionFor(ch, method, md('two'));
    assert.ok(b && b !== a, 'a renewed token gets a stream of its own');
    assert.equal(sessions.sessionFor(ch, DatabaseService.method.streamQuery, md('two')), undefined, 'streams are not session operations');
    b.close();
    const again = sessions.sessionFor(ch, method, md('two'));
    assert.ok(again && again !== b && !again.closed, 'an ended stream is opened again by the next call');
  } finally {
    sessions.close();
    client.close();
  }
});

describeEachBackend('sessions and credentials', (backend) => {
  let f: SecurityFixture;
  before(async () => {
    f = await startSecureServer(backend, makeTestCerts(), { authCacheMs: 100, authFailureLimit: 1000 });
  });
  after(async () => {
    await f?.close();
  });

  test('a key revoked while its session is open stops working on that session', async () => {
    const user = await makeUser(f, 'sess', f.writerRole);
    const { id, key } = await f.auth.createApiKey({ user });
    const c = createClient({ url: f.server.grpcUrl, ...f.tlsOptions(), apiKey: key, sessions: true, minConnections: 1 });
    try {
      assert.equal((await c.query<{ n: number }>('SELECT 1 AS n')).rows[0].n, 1);
      assert.equal(await f.auth.revokeApiKey(id), true);
      const refused = await waitFor(async () => {
        try {
          await c.query('SELECT 1');
          return false;
        } catch (e) {
          return e instanceof AuthenticationError;
        }
      }, 15_000);
      assert.ok(refused, 'the open session checks its credentials again and refuses the revoked key');
    } finally {
      await c.close();
    }
  });
});
