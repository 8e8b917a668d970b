/**
 * LISTEN / UNLISTEN / NOTIFY through heliosdb's PostgreSQL port, on both backends (PostgreSQL:
 * each client's own backend; PGlite: played per client over the one session, through the server's
 * notification hub): notifications from other pg-port clients, from gRPC calls and from the client
 * itself reach the clients that listen, as NotificationResponse, only outside a transaction
 * block; UNLISTEN and disconnecting end a client's listens; SDK listeners get pg-port NOTIFYs.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test, type TestContext } from 'node:test';
import pg from 'pg';
import { createClient, type HeliosDBClient } from '@heliosdb/client';
import { describeEachBackend, type TestBackend } from './helpers/backends.js';
import { type PgPortServer, pgPortServer, runTool } from './pgwire-fixture.js';

interface Note {
  channel: string;
  payload?: string;
}

async function connect(s: PgPortServer): Promise<{ c: pg.Client; notes: Note[] }> {
  const c = new pg.Client(s.pgConfig);
  const notes: Note[] = [];
  c.on('notification', (n) => notes.push({ channel: n.channel, payload: n.payload }));
  await c.connect();
  return { c, notes };
}

/** Waits (bounded) until `cond` holds. */
async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return;
    await sleep(25);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** A gRPC client of the server (with authentication: the fixture user's API key, over TLS). */
function grpcOf(t: TestContext, s: PgPortServer): HeliosDBClient {
  const ca = (s.pgConfig.ssl as { ca?: string } | undefined)?.ca;
  const g = createClient({
    url: s.server.grpcUrl,
    minConnections: 0,
    ...(s.auth ? { apiKey: s.keyEnv.PGPASSWORD, ssl: { ca: ca! } } : {}),
  });
  t.after(() => g.close());
  return g;
}

describeEachBackend('pg port: LISTEN and NOTIFY', (backend: TestBackend) => {
  for (const auth of [false, true]) {
    test(`a pg-port client gets the NOTIFYs of other pg-port clients, of gRPC calls and its own, ${auth ? 'with' : 'without'} authentication`, async (t) => {
      const s = await pgPortServer(t, backend, { auth });
      const grpc = grpcOf(t, s);
      const a = await connect(s);
      const b = await connect(s);
      try {
        const r = await a.c.query('LISTEN pgw_orders');
        assert.equal(r.command, 'LISTEN');
        await b.c.query("NOTIFY pgw_orders, 'from b'");
        await until(() => a.notes.length === 1, 'the notification from b');
        assert.deepEqual(a.notes[0], { channel: 'pgw_orders', payload: 'from b' });
        await grpc.execute("SELECT pg_notify('pgw_orders', 'from grpc')");
        await until(() => a.notes.length === 2, 'the notification from gRPC');
        assert.equal(a.notes[1]!.payload, 'from grpc');
        await a.c.query("NOTIFY pgw_orders, 'from a'");
        await until(() => a.notes.length === 3, 'its own notification');
        assert.equal(a.notes[2]!.payload, 'from a');
        // b does not listen: it gets nothing.
        assert.equal(b.notes.length, 0);
      } finally {
        await a.c.end();
        await b.c.end();
      }
    });
  }

  test('an SDK listener gets the NOTIFYs of pg-port clients; both get those of gRPC calls', async (t) => {
    const s = await pgPortServer(t, backend, { auth: false });
    const grpc = grpcOf(t, s);
    const got: string[] = [];
    const listener = await grpc.listen('pgw_mixed', (n) => {
      if (!n.missed) got.push(n.payload);
    });
    const a = await connect(s);
    try {
      await a.c.query('LISTEN pgw_mixed');
      await a.c.query("NOTIFY pgw_mixed, 'from pg port'");
      await grpc.execute("NOTIFY pgw_mixed, 'from grpc'");
      await until(() => got.length === 2 && a.notes.length === 2, 'both notifications on both sides');
      assert.deepEqual(got, ['from pg port', 'from grpc']);
      assert.deepEqual(
        a.notes.map((n) => n.payload),
        ['from pg port', 'from grpc'],
      );
      // The pg-port client leaving does not end the SDK's listen.
      await a.c.end();
      await grpc.execute("NOTIFY pgw_mixed, 'after'");
      await until(() => got.length === 3, 'the notification after the pg-port client left');
    } finally {
      await listener.unlisten();
    }
  });

  test('inside a transaction block notifications wait for its end', async (t) => {
    const s = await pgPortServer(t, backend, { auth: false });
    const a = await connect(s);
    try {
      await a.c.query('LISTEN pgw_tx');
      await a.c.query('BEGIN');
      await a.c.query("NOTIFY pgw_tx, 'in tx'");
      await a.c.query('SELECT 1');
      await sleep(100);
      assert.equal(a.notes.length, 0, 'nothing before COMMIT');
      await a.c.query('COMMIT');
      await until(() => a.notes.length === 1, 'the notification after COMMIT');
      // A rolled-back NOTIFY is never delivered.
      await a.c.query('BEGIN');
      await a.c.query("NOTIFY pgw_tx, 'rolled back'");
      await a.c.query('ROLLBACK');
      await a.c.query("NOTIFY pgw_tx, 'after rollback'");
      await until(() => a.notes.length === 2, 'the notification after ROLLBACK');
      assert.deepEqual(
        a.notes.map((n) => n.payload),
        ['in tx', 'after rollback'],
      );
    } finally {
      await a.c.end();
    }
  });

  test('UNLISTEN of a channel, UNLISTEN *, and leaving end the listens', async (t) => {
    const s = await pgPortServer(t, backend, { auth: false });
    const grpc = grpcOf(t, s);
    const a = await connect(s);
    try {
      await a.c.query('LISTEN pgw_one');
      await a.c.query('LISTEN pgw_two');
      assert.equal((await a.c.query('UNLISTEN pgw_one')).command, 'UNLISTEN');
      await grpc.execute("NOTIFY pgw_one, '1'; NOTIFY pgw_two, '2'");
      await until(() => a.notes.length === 1, 'the notification on pgw_two');
      assert.deepEqual(a.notes[0], { channel: 'pgw_two', payload: '2' });
      await a.c.query('UNLISTEN *');
      await a.c.query('LISTEN pgw_three');
      await grpc.execute("NOTIFY pgw_two, 'x'; NOTIFY pgw_three, '3'");
      await until(() => a.notes.length === 2, 'the notification on pgw_three');
      assert.deepEqual(a.notes[1], { channel: 'pgw_three', payload: '3' });
    } finally {
      await a.c.end();
    }
    if (backend.name === 'pglite') {
      // The one session stops listening once no one listens (on PostgreSQL the client's backend is gone).
      await until(async () => {
        const { rows } = await grpc.query<{ ch: string }>('SELECT pg_listening_channels() AS ch');
        return !rows.some((r) => r.ch.startsWith('pgw_'));
      }, 'the session to stop listening');
    }
  });

  test('psycopg gets notifications (conn.notifies())', async (t) => {
    const s = await pgPortServer(t, backend, { auth: false });
    const script = `
import psycopg
with psycopg.connect("", autocommit=True) as conn, psycopg.connect("", autocommit=True) as other:
    conn.execute("LISTEN pgw_py")
    other.execute("NOTIFY pgw_py, 'from psycopg'")
    for n in conn.notifies():
        print(n.channel, n.payload)
        break
`;
    const r = await runTool('/usr/bin/python3', ['-c', script], s.env, { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'pgw_py from psycopg');
  });

  if (backend.name === 'pglite') {
    describe('what the embedded engine refuses', () => {
      test('LISTEN inside a transaction block, among other statements, or as an extended query: 0A000', async (t) => {
        const s = await pgPortServer(t, backend, { auth: false });
        const a = await connect(s);
        try {
          await a.c.query('BEGIN');
          await assert.rejects(a.c.query('LISTEN pgw_no'), (e: { code?: string }) => e.code === '0A000');
          await a.c.query('ROLLBACK');
          await assert.rejects(a.c.query('LISTEN pgw_no; SELECT 1'), (e: { code?: string }) => e.code === '0A000');
          await assert.rejects(
            a.c.query({ text: 'LISTEN pgw_no', values: [] as unknown[], name: 'l' }),
            (e: { code?: string }) => e.code === '0A000',
          );
          assert.equal((await a.c.query('SELECT 1 AS one')).rows[0].one, 1);
        } finally {
          await a.c.end();
        }
      });
    });
  }
});
