/**
 * The embedded engine's pg port ends a client idle inside a transaction block after
 * --pg-idle-in-transaction-timeout-ms (FATAL 25P03, as PostgreSQL's
 * idle_in_transaction_session_timeout): its transaction is rolled back and the next client gets
 * the one session. A client idle outside a transaction block is left alone.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { createClient, type HeliosDBClient } from '@heliosdb/client';
import { type HeliosServer, startServer } from '../src/server/server.js';
import { serverOptionTable } from '../src/server/options.js';

let server: HeliosServer;
let grpc: HeliosDBClient;
before(async () => {
  server = await startServer({ port: 0, httpPort: -1, logLevel: 'silent', pgIdleInTransactionTimeoutMs: 1000 });
  grpc = createClient({ url: server.grpcUrl, minConnections: 0 });
  await grpc.execute('CREATE TABLE idle_tx (id int)');
});
after(async () => {
  await grpc?.close();
  await server?.close();
});

async function connect(): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: server.pgPort!, user: 'postgres', database: 'postgres' });
  await c.connect();
  return c;
}

test('the default is 60 s', () => {
  assert.equal(serverOptionTable.pgIdleInTransactionTimeoutMs.default, 60_000);
});

test('a client idle in a transaction block is disconnected with 25P03 and rolled back; the next client gets the session', async () => {
  const a = await connect();
  const ended = new Promise<{ code?: string; message?: string }>((resolve) =>
    a.on('error', (e) => resolve(e as { code?: string; message?: string })),
  );
  await a.query('BEGIN');
  await a.query('INSERT INTO idle_tx VALUES (1)');
  // b waits for the session a holds, until a is ended.
  const b = await connect();
  try {
    const r = await b.query('SELECT count(*)::int AS n FROM idle_tx');
    assert.equal(r.rows[0].n, 0);
    const e = await ended;
    assert.equal(e.code, '25P03');
    assert.match(e.message ?? '', /idle-in-transaction timeout/);
    await assert.rejects(a.query('SELECT 1'));
  } finally {
    await b.end();
  }
  // The rollback is the database's, not only this port's.
  assert.equal((await grpc.queryOne<{ n: number }>('SELECT count(*)::int AS n FROM idle_tx')).n, 0);
});

test('a failed transaction block counts too', async () => {
  const a = await connect();
  const ended = new Promise<{ code?: string }>((resolve) => a.on('error', (e) => resolve(e as { code?: string })));
  await a.query('BEGIN');
  await assert.rejects(a.query('SELECT 1/0'));
  assert.equal((await ended).code, '25P03');
  assert.equal((await grpc.queryOne<{ one: number }>('SELECT 1 AS one')).one, 1);
});

test('a client idle outside a transaction block is left alone', async () => {
  const a = await connect();
  let failed: unknown;
  a.on('error', (e) => (failed = e));
  try {
    await a.query('SELECT 1');
    await sleep(1500);
    assert.equal(failed, undefined);
    assert.equal((await a.query('SELECT 2 AS two')).rows[0].two, 2);
    // A transaction block that keeps working is left alone too.
    await a.query('BEGIN');
    for (let i = 0; i < 3; i++) {
      await sleep(200);
      await a.query('INSERT INTO idle_tx VALUES (2)');
    }
    await a.query('COMMIT');
  } finally {
    await a.end();
  }
  assert.equal((await grpc.queryOne<{ n: number }>('SELECT count(*)::int AS n FROM idle_tx WHERE id = 2')).n, 3);
});
