/**
 * Attack report row 19 (targeted lockout): concurrent wrong-password Logins for a user from another
 * address slow that user's own Login down but never refuse it at once (issue 11: "never refuse a
 * valid credential because others failed"). First the throttle alone with a fake clock, then a
 * real server on each backend attacked from 127.0.0.2 while the user logs in from 127.0.0.1.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { AuthService } from '../gen/heliosdb/v1/auth_pb.js';
import { DatabaseService } from '../gen/heliosdb/v1/database_pb.js';
import { ErrorDetailSchema, ErrorReason } from '../gen/heliosdb/v1/error_pb.js';
import { AuthThrottle } from '../src/server/auth/throttle.js';
import type { HeliosServer } from '../src/server/server.js';
import { describeEachBackend } from './helpers/backends.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';
import { makeUser, type SecurityFixture, startSecureServer } from './helpers/security.js';

const certs: TestCerts = makeTestCerts();
after(() => certs.cleanup());

function isRateLimited(e: unknown): boolean {
  const c = ConnectError.from(e);
  return c.code === Code.ResourceExhausted && c.findDetails(ErrorDetailSchema)[0]?.reason === ErrorReason.AUTH_RATE_LIMITED;
}

/** Sleeps that end when the test releases them. */
function manualSleep() {
  const sleepers: (() => void)[] = [];
  return {
    sleep: (_ms: number, signal?: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        sleepers.push(resolve);
        signal?.addEventListener('abort', () => reject(signal.reason));
      }),
    async releaseAll() {
      for (const s of sleepers.splice(0)) s();
      for (let i = 0; i < 20; i++) await Promise.resolve();
    },
  };
}

describe('AuthThrottle: guesses from another address', () => {
  test('fill every bound of the attacking address, yet the user is admitted from its own address (slowed, not refused)', async () => {
    const s = manualSleep();
    const th = new AuthThrottle({ freeFailures: 3, maxDelayMs: 4000, sleep: s.sleep, checkConcurrency: 2 });
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    // The attacker's checks hang until the gate opens: all its admitted attempts stay in flight.
    const attack = Array.from({ length: 12 }, () =>
      th
        .checkPassword({ address: '198.51.100.7', user: 'alice' }, () => gate.then(() => false))
        .then(
          () => 'wrong',
          (e: unknown) => (isRateLimited(e) ? 'limited' : String(e)),
        ),
    );
    for (let i = 0; i < 20; i++) await Promise.resolve();
    assert.equal(th.stats().pending, 8, 'the attack fills the per-address bound');
    let checked = 0;
    let state = 'pending';
    const own = th.checkPassword({ address: '203.0.113.1', user: 'alice' }, async () => {
      checked++;
      return true;
    });
    own.then(
      () => (state = 'accepted'),
      (e: unknown) => (state = `refused: ${e}`),
    );
    for (let i = 0; i < 20; i++) await Promise.resolve();
    assert.equal(state, 'pending', "alice's attempt from her address is not refused at once: it waits");
    open();
    for (let i = 0; i < 10 && checked === 0; i++) await s.releaseAll();
    assert.equal(await own, true, 'her right password is checked and accepted');
    assert.equal(checked, 1);
    await s.releaseAll();
    const out = await Promise.all(attack);
    assert.equal(out.filter((r) => r === 'limited').length, 4, 'the attacker is still bounded per address (8)');
    assert.equal(out.filter((r) => r === 'wrong').length, 8);
  });

  test('1024 attempts in the pipeline in all: the next is refused at once, from any address', async () => {
    const s = manualSleep();
    const th = new AuthThrottle({ sleep: s.sleep });
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const held = Array.from({ length: 1024 }, (_, i) =>
      th
        .checkPassword({ address: `10.0.${i >> 8}.${i & 255}`, user: `u${i}` }, () => gate.then(() => false))
        .catch((e: unknown) => String(e)),
    );
    assert.equal(th.stats().pending, 1024);
    await assert.rejects(
      th.checkPassword({ address: '203.0.113.1', user: 'alice' }, async () => true),
      (e: unknown) => {
        assert.ok(isRateLimited(e));
        assert.match(ConnectError.from(e).rawMessage, /too many passwords/);
        return true;
      },
    );
    open();
    for (let i = 0; i < 10 && th.stats().pending > 0; i++) await s.releaseAll();
    await Promise.all(held);
    assert.equal(await th.checkPassword({ address: '203.0.113.1', user: 'alice' }, async () => true), true);
  });

  test('one user from one address is still bounded', async () => {
    const s = manualSleep();
    const th = new AuthThrottle({
      freeFailures: 1,
      maxPendingPerAddress: 100,
      maxPendingPerUserAddress: 2,
      sleep: s.sleep,
      checkConcurrency: 1,
    });
    const three = Array.from({ length: 3 }, () =>
      th
        .checkPassword({ address: '198.51.100.7', user: 'alice' }, async () => false)
        .then(
          () => 'wrong',
          (e: unknown) => (isRateLimited(e) ? ConnectError.from(e).rawMessage : String(e)),
        ),
    );
    for (let i = 0; i < 10; i++) await s.releaseAll();
    const out = await Promise.all(three);
    assert.equal(out.filter((r) => r === 'wrong').length, 2);
    assert.match(out.find((r) => r !== 'wrong') ?? '', /for this user from this client/);
  });
});

/** A gRPC transport whose connections come from `localAddress` (any 127.x.y.z is this machine). */
function grpcFrom(server: HeliosServer, localAddress: string): Transport {
  return createGrpcTransport({
    baseUrl: server.grpcUrl.replace(/^grpc:/, 'http:'),
    idleConnectionTimeoutMs: 2000,
    nodeOptions: {
      createConnection: (authority: URL) => net.connect({ host: authority.hostname, port: Number(authority.port), localAddress }),
    },
  });
}

describeEachBackend('targeted lockout (attack report row 19)', (backend) => {
  let f: SecurityFixture;
  let alice: string;
  before(async () => {
    f = await startSecureServer(backend, certs, {
      tls: false,
      allowInsecurePassword: true,
      authFailureLimit: 3,
      authMaxDelayMs: 1500,
      authCacheMs: 0,
    });
    alice = await makeUser(f, 'alice', f.writerRole, 'alices-right-password');
  });
  after(async () => {
    await f?.close();
  });

  test('12 concurrent wrong Logins for alice from 127.0.0.2 never refuse her right password from 127.0.0.1', async () => {
    const attacker = createClient(AuthService, grpcFrom(f.server, '127.0.0.2'));
    const mine = grpcFrom(f.server, '127.0.0.1');
    let stop = false;
    let attempts = 0;
    const worker = async () => {
      for (let i = 0; i < 200 && !stop; i++) {
        attempts++;
        await attacker.login({ user: alice, password: `nope-${i}` }).catch(async (e: unknown) => {
          if (isRateLimited(e)) await new Promise((r) => setTimeout(r, 20));
        });
      }
    };
    const workers = Array.from({ length: 12 }, worker);
    try {
      await new Promise((r) => setTimeout(r, 300)); // the attack is under way
      for (let round = 0; round < 3; round++) {
        const { token } = await createClient(AuthService, mine).login({ user: alice, password: 'alices-right-password' });
        await createClient(DatabaseService, mine).execute(
          { sql: `INSERT INTO ${f.table} VALUES (${round}, 'alice')` },
          { headers: { authorization: `Bearer ${token}` } },
        );
      }
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    assert.ok(attempts >= 12, `the attacker sent ${attempts} Logins`);
    const rows = await f.adminSql(`SELECT count(*)::int AS n FROM ${f.table} WHERE v = 'alice'`);
    assert.equal(rows[0].n, 3, 'each of her three sessions wrote its row');
  });
});
