/**
 * Limits of the PostgreSQL port against hostile clients:
 *
 * - PostgreSQL backend: the relay's backends are counted per login against
 *   `--max-connections-per-principal` and all together against `--pg-port-max-backends`; beyond a
 *   cap a client is refused with 53300, and the count is given back when the client leaves, when
 *   its backend is ended, and when the backend could not be opened (counted in pg_stat_activity).
 *   Without authentication every client is the same principal (the server's login).
 * - PostgreSQL backend: a session idle outside a transaction for `--idle-connection-timeout-ms`
 *   is ended with FATAL 57P05 (and its backend with it); one in a transaction block or running a
 *   statement is not.
 * - Both backends (the start-up is shared): a second SSLRequest or GSSENCRequest is FATAL 08P01.
 *
 * The PostgreSQL tests run in a database of their own with a CONNECTION LIMIT, so they never take
 * the shared cluster's connections.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createClient } from '@heliosdb/client';
import { type HeliosServer, startServer } from '../src/server/server.js';
import { postgresSkipReason, postgresUrlEnv } from './helpers/backends.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';
import { type SecurityFixture, startSecureServer } from './helpers/security.js';

const adminUrl = process.env[postgresUrlEnv]?.trim();

async function connect(config: pg.ClientConfig): Promise<pg.Client> {
  const c = new pg.Client({ connectionTimeoutMillis: 10_000, ...config });
  c.on('error', () => {});
  await c.connect();
  return c;
}

const refused = (code: string, pattern?: RegExp) => (e: { code?: string; message?: string }) =>
  e.code === code && (!pattern || pattern.test(e.message ?? ''));

/** Polls `check` every 100 ms until it is true, for at most `ms`. */
async function until(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('pg port limits [postgresql]', { skip: postgresSkipReason }, () => {
  let certs: TestCerts;
  let admin: pg.Client;
  const db = `pglim_${process.pid}_${randomBytes(3).toString('hex')}`;
  let dbUrl: string;
  before(async () => {
    certs = makeTestCerts();
    admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${db} CONNECTION LIMIT 40`);
    const u = new URL(adminUrl!);
    u.pathname = `/${db}`;
    dbUrl = u.toString();
  });
  after(async () => {
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.end();
    certs.cleanup();
  });

  /** Backends in the test database, by login. */
  const backendsOf = async (login: string): Promise<number> =>
    Number(
      (await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND usename = $2', [db, login])).rows[0].n,
    );

  describe('backends per login and in all', () => {
    let fx: SecurityFixture;
    let alice: string;
    let aliceOtherKey: string;
    let bob: string;
    let bobKey: string;
    let aliceLogin: string;
    const open: pg.Client[] = [];
    before(async () => {
      fx = await startSecureServer({ name: 'postgresql', databaseUrl: dbUrl }, certs, {
        httpPort: -1,
        poolSize: 4,
        maxConnectionsPerPrincipal: 2,
        pgPortMaxBackends: 3,
      });
      for (const name of ['alice', 'bob']) await fx.auth.createUser({ name: `${name}_${fx.id}`, role: fx.writerRole });
      alice = (await fx.auth.createApiKey({ user: `alice_${fx.id}` })).key;
      aliceOtherKey = (await fx.auth.createApiKey({ user: `alice_${fx.id}` })).key;
      bobKey = (await fx.auth.createApiKey({ user: `bob_${fx.id}` })).key;
      bob = bobKey;
      const c = await as(alice);
      aliceLogin = (await c.query('SELECT session_user AS u')).rows[0].u;
      await c.end();
      assert.ok(await until(async () => (await backendsOf(aliceLogin)) === 0, 5000));
    });
    after(async () => {
      for (const c of open) await c.end().catch(() => {});
      await fx?.close();
    });
    const as = async (key: string): Promise<pg.Client> => {
      const c = await connect({
        host: 'localhost',
        port: fx.server.pgPort!,
        user: 'apikey',
        password: key,
        database: 'postgres',
        ssl: { ca: certs.ca.cert },
      });
      open.push(c);
      return c;
    };
    const closeAll = async (): Promise<void> => {
      for (const c of open.splice(0)) await c.end().catch(() => {});
    };

    test('one user (its keys together) holds at most --max-connections-per-principal backends, all users at most --pg-port-max-backends; beyond: 53300', async () => {
      const a1 = await as(alice);
      const a2 = await as(aliceOtherKey);
      await assert.rejects(as(alice), refused('53300', /--max-connections-per-principal/));
      await assert.rejects(as(aliceOtherKey), refused('53300', /--max-connections-per-principal/));
      assert.equal(await backendsOf(aliceLogin), 2);
      const b1 = await as(bob);
      await assert.rejects(as(bob), refused('53300', /--pg-port-max-backends/));
      for (const c of [a1, a2, b1]) assert.equal((await c.query('SELECT 1 AS x')).rows[0].x, 1);
      // The pool is not theirs: bob's gRPC calls are served.
      const rpc = createClient({ url: fx.server.grpcUrl, apiKey: bobKey, minConnections: 0, ...fx.tlsOptions() });
      try {
        assert.equal((await rpc.query('SELECT 2 AS x')).rows[0]!.x, 2);
      } finally {
        await rpc.close();
      }
      // A client that leaves gives its backend back.
      await a1.end();
      assert.ok(await until(async () => (await backendsOf(aliceLogin)) === 1, 5000));
      const a3 = await as(alice);
      assert.equal((await a3.query('SELECT 3 AS x')).rows[0].x, 3);
      assert.equal(await backendsOf(aliceLogin), 2);
      await closeAll();
    });

    test('a backend ended from the database side, and a backend that could not be opened, give their count back', async () => {
      const a1 = await as(alice);
      const pid = (await a1.query('SELECT pg_backend_pid() AS p')).rows[0].p;
      const gone = new Promise((resolve) => a1.once('end', resolve));
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await gone;
      await admin.query(`ALTER ROLE ${aliceLogin} NOLOGIN`);
      try {
        for (let i = 0; i < 3; i++) await assert.rejects(as(alice), refused('28000', /not permitted to log in/));
      } finally {
        await admin.query(`ALTER ROLE ${aliceLogin} LOGIN`);
      }
      const a2 = await as(alice);
      const a3 = await as(alice);
      assert.equal(await backendsOf(aliceLogin), 2);
      for (const c of [a2, a3]) assert.equal((await c.query('SELECT 1 AS x')).rows[0].x, 1);
      await closeAll();
    });
  });

  test('without --auth required every client is the same principal: the server login holds at most --max-connections-per-principal backends', async () => {
    const server = await startServer({ port: 0, httpPort: -1, cqlPort: -1, logLevel: 'silent', databaseUrl: dbUrl, poolSize: 4 });
    const open: pg.Client[] = [];
    try {
      const config = { host: '127.0.0.1', port: server.pgPort!, user: 'postgres', database: 'postgres' };
      for (let i = 0; i < 2; i++) open.push(await connect(config));
      await assert.rejects(connect(config), refused('53300', /at most 2 at once \(--max-connections-per-principal\)/));
      for (const c of open) assert.equal((await c.query('SELECT 1 AS x')).rows[0].x, 1);
    } finally {
      for (const c of open) await c.end().catch(() => {});
      await server.close();
    }
  });

  describe('idle sessions', () => {
    let fx: SecurityFixture;
    let key: string;
    before(async () => {
      fx = await startSecureServer({ name: 'postgresql', databaseUrl: dbUrl }, certs, { httpPort: -1, idleConnectionTimeoutMs: 1500 });
      await fx.auth.createUser({ name: `idle_${fx.id}`, role: fx.writerRole });
      key = (await fx.auth.createApiKey({ user: `idle_${fx.id}` })).key;
    });
    after(async () => fx?.close());

    test('idle outside a transaction for --idle-connection-timeout-ms: FATAL 57P05 and the backend ends; in a transaction or running a statement: kept', async () => {
      const config = {
        host: 'localhost',
        port: fx.server.pgPort!,
        user: 'apikey',
        password: key,
        database: 'postgres',
        ssl: { ca: certs.ca.cert },
      };
      const idle = await connect(config);
      const inTx = await connect(config);
      const busy = await connect(config);
      try {
        const idleError = new Promise<{ code?: string; message?: string }>((resolve) => idle.once('error', resolve));
        const idlePid = (await idle.query('SELECT pg_backend_pid() AS p')).rows[0].p;
        await inTx.query('BEGIN');
        await inTx.query(`INSERT INTO ${fx.table} VALUES (57, 'idle in transaction')`);
        const sleeping = busy.query('SELECT pg_sleep(3.5) AS s');
        const err = await Promise.race([idleError, new Promise<undefined>((r) => setTimeout(r, 8000))]);
        assert.ok(err, 'the idle session was not ended');
        assert.equal(err.code, '57P05');
        assert.match(err.message ?? '', /idle-session timeout/);
        assert.ok(
          await until(async () => (await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [idlePid])).rowCount === 0, 5000),
          'the idle session kept its backend',
        );
        await sleeping;
        assert.equal((await busy.query('SELECT 1 AS x')).rows[0].x, 1);
        await inTx.query('COMMIT');
        const n = await fx.adminSql(`SELECT count(*)::int AS n FROM ${fx.table} WHERE id = 57`);
        assert.equal(n[0]!.n, 1);
      } finally {
        for (const c of [idle, inTx, busy]) await c.end().catch(() => {});
      }
    });
  });
});

describe('pg port start-up', () => {
  let server: HeliosServer;
  before(async () => {
    server = await startServer({ port: 0, httpPort: -1, cqlPort: -1, logLevel: 'silent' });
  });
  after(async () => server?.close());

  const sslRequest = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
  const gssRequest = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);
  const startup = (() => {
    const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from('user\0postgres\0database\0postgres\0\0')]);
    const len = Buffer.alloc(4);
    len.writeInt32BE(body.length + 4);
    return Buffer.concat([len, body]);
  })();

  /** Sends each write after the previous answer's first bytes; everything the server sent until it closed or 5 s passed. */
  const exchange = (writes: Buffer[]): Promise<Buffer> =>
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      const s = net.connect({ host: '127.0.0.1', port: server.pgPort! }, () => s.write(writes.shift()!));
      const timer = setTimeout(() => s.destroy(), 5000);
      s.on('data', (d) => {
        chunks.push(d);
        const next = writes.shift();
        if (next) s.write(next);
        else if (d.includes(Buffer.from('Z'))) s.end();
      });
      s.on('error', () => {});
      s.on('close', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks));
      });
    });
  const sqlstateOf = (b: Buffer): string | undefined => /C(\w{5})\0/.exec(b.toString('latin1'))?.[1];

  test('a second SSLRequest or GSSENCRequest is FATAL 08P01; one of each, then a start-up, logs in', async () => {
    const ssl = await exchange([sslRequest, sslRequest]);
    assert.equal(ssl.subarray(0, 1).toString(), 'N');
    assert.equal(sqlstateOf(ssl), '08P01');
    assert.match(ssl.toString('latin1'), /a second SSLRequest/);
    const gss = await exchange([gssRequest, gssRequest]);
    assert.equal(gss.subarray(0, 1).toString(), 'N');
    assert.equal(sqlstateOf(gss), '08P01');
    assert.match(gss.toString('latin1'), /a second GSSENCRequest/);
    const ok = await exchange([gssRequest, sslRequest, startup]);
    assert.equal(ok.subarray(0, 2).toString(), 'NN');
    assert.equal(ok[2], 0x52, 'AuthenticationOk');
    assert.equal(sqlstateOf(ok), undefined);
  });

  test('one address has at most 32 connections in start-up or authentication; beyond: 53300; authenticated ones do not count', async () => {
    const silent: net.Socket[] = [];
    const openSilent = (): Promise<{ socket: net.Socket; answer: Promise<Buffer> }> =>
      new Promise((resolve) => {
        const chunks: Buffer[] = [];
        const socket = net.connect({ host: '127.0.0.1', port: server.pgPort! });
        socket.on('error', () => {});
        socket.on('data', (d) => chunks.push(d));
        const answer = new Promise<Buffer>((r) => socket.on('close', () => r(Buffer.concat(chunks))));
        silent.push(socket);
        socket.on('connect', () => resolve({ socket, answer }));
      });
    const client = new pg.Client({ host: '127.0.0.1', port: server.pgPort!, user: 'postgres', database: 'postgres' });
    client.on('error', () => {});
    try {
      for (let i = 0; i < 31; i++) await openSilent();
      await new Promise((r) => setTimeout(r, 300));
      await client.connect();
      assert.equal((await client.query('SELECT 1 AS x')).rows[0].x, 1);
      const last = await openSilent();
      const beyond = await openSilent();
      const refusedAnswer = await Promise.race([beyond.answer, new Promise<undefined>((r) => setTimeout(r, 5000))]);
      assert.ok(refusedAnswer, 'the connection beyond the cap was not closed');
      assert.equal(sqlstateOf(refusedAnswer), '53300');
      assert.match(refusedAnswer.toString('latin1'), /too many connections from this address still starting up/);
      assert.equal(last.socket.destroyed, false);
      for (const s of silent) s.destroy();
      await new Promise((r) => setTimeout(r, 300));
      const again = await exchange([startup]);
      assert.equal(again[0], 0x52, 'AuthenticationOk once the silent connections are gone');
      assert.equal((await client.query('SELECT 2 AS x')).rows[0].x, 2);
    } finally {
      for (const s of silent) s.destroy();
      await client.end().catch(() => {});
    }
  });
});
