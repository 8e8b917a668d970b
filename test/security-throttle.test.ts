/**
 * Authentication throttling: the limiter, the fair password-check queue and the throttle as
 * units with a fake clock, then a real server (PGlite, `auth: 'required'`) attacked from loopback
 * addresses: concurrent wrong logins are counted before they are checked and slowed; valid API
 * keys from the attacking address never wait; the right password still succeeds after the wait
 * and resets the user's count; another user from the same address is slowed but gets in;
 * password checks run a bounded number at a time.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Code, ConnectError, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport } from '@connectrpc/connect-node';
import { AuthService } from '../gen/heliosdb/v1/auth_pb.js';
import { DatabaseService } from '../gen/heliosdb/v1/database_pb.js';
import { ErrorDetailSchema, ErrorReason } from '../gen/heliosdb/v1/error_pb.js';
import { createClient as createHeliosClient, type HeliosDBClient } from '@heliosdb/client';
import { addressKey } from '../src/server/auth/client-address.js';
import { defaultCheckConcurrency, FairQueue, QueueFull } from '../src/server/auth/password-queue.js';
import { FailureLimiter } from '../src/server/auth/rate-limit.js';
import { AuthThrottle, authChannel, type PasswordCheckEvent } from '../src/server/auth/throttle.js';
import { type HeliosServer, startServer } from '../src/server/server.js';

/** A fake clock whose sleeps end when it is advanced past them. */
function fakeTime() {
  let now = 1_000_000;
  const sleepers: { at: number; resolve: () => void }[] = [];
  return {
    clock: () => now,
    sleep: (ms: number, signal?: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        const s = { at: now + ms, resolve };
        sleepers.push(s);
        signal?.addEventListener('abort', () => {
          sleepers.splice(sleepers.indexOf(s), 1);
          reject(signal.reason);
        });
      }),
    sleeping: () => sleepers.map((s) => s.at - now).sort((a, b) => a - b),
    async advance(ms: number) {
      now += ms;
      for (const s of sleepers.filter((x) => x.at <= now)) {
        sleepers.splice(sleepers.indexOf(s), 1);
        s.resolve();
      }
      for (let i = 0; i < 20; i++) await Promise.resolve();
    },
  };
}

function detailOf(e: unknown) {
  return ConnectError.from(e).findDetails(ErrorDetailSchema)[0];
}

function isRateLimited(e: unknown): boolean {
  return (
    ConnectError.from(e).code === Code.ResourceExhausted &&
    detailOf(e)?.reason === ErrorReason.AUTH_RATE_LIMITED &&
    Number(detailOf(e)?.retryAfterMs) > 0
  );
}

describe('FailureLimiter (fake clock)', () => {
  test('free failures, then a delay doubling from 1 s per failure, capped; attempts in flight count', () => {
    const t = fakeTime();
    const l = new FailureLimiter({ freeFailures: 3, maxDelayMs: 5000, clock: t.clock });
    const waits = Array.from({ length: 7 }, () => l.begin('a'));
    assert.deepEqual(waits, [0, 0, 0, 1000, 2000, 4000, 5000], 'concurrent attempts are counted before any has finished');
    for (let i = 0; i < 7; i++) l.end('a', 'failure');
    assert.equal(l.failures('a'), 7);
    assert.equal(l.inFlight('a'), 0);
    assert.equal(l.waitMs('a'), 5000);
    assert.equal(l.waitMs('b'), 0, 'keys are independent');
  });

  test('abandoned attempts are not failures; success clears credentials but not addresses', () => {
    const t = fakeTime();
    const cred = new FailureLimiter({ freeFailures: 2, clock: t.clock, resetOnSuccess: true });
    const addr = new FailureLimiter({ freeFailures: 2, clock: t.clock, resetOnSuccess: false });
    for (const l of [cred, addr]) {
      l.begin('k');
      l.end('k', 'abandoned');
      assert.equal(l.failures('k'), 0);
      assert.equal(l.size, 0, 'nothing to remember');
      for (let i = 0; i < 4; i++) l.fail('k');
      l.begin('k');
      l.end('k', 'success');
    }
    assert.equal(cred.failures('k'), 0);
    assert.equal(cred.waitMs('k'), 0);
    assert.equal(addr.failures('k'), 4);
    assert.equal(addr.waitMs('k'), 4000);
  });

  test('fail() returns the hold-back of a verified failure: 0 under the limit', () => {
    const l = new FailureLimiter({ freeFailures: 2, maxDelayMs: 3000, clock: fakeTime().clock });
    assert.deepEqual(
      [1, 2, 3, 4, 5].map(() => l.fail('x')),
      [0, 0, 1000, 2000, 3000],
    );
  });

  test('failures are forgotten 15 min after the last one', async () => {
    const t = fakeTime();
    const l = new FailureLimiter({ freeFailures: 1, clock: t.clock });
    l.fail('a');
    l.fail('a');
    await t.advance(14 * 60_000);
    assert.equal(l.waitMs('a'), 2000, 'still remembered after 14 min');
    l.fail('a');
    await t.advance(15 * 60_000 + 1);
    assert.equal(l.waitMs('a'), 0);
    assert.equal(l.size, 0, 'the record itself is dropped');
  });

  test('memory: 10,000 distinct failing addresses stay within maxTracked, and do not wash out a penalised one', async () => {
    const t = fakeTime();
    const l = new FailureLimiter({ freeFailures: 5, maxTracked: 1000, clock: t.clock });
    for (let i = 0; i < 8; i++) l.fail('198.51.100.7');
    let peak = 0;
    for (let i = 0; i < 10_000; i++) {
      l.fail(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      peak = Math.max(peak, l.size);
    }
    assert.ok(peak <= 1000, `at most 1000 tracked (peak ${peak})`);
    assert.equal(l.failures('198.51.100.7'), 8, 'the penalised address survived the flood');
    assert.equal(l.failures('10.0.0.0'), 0, 'the oldest fresh ones were forgotten');
    await t.advance(15 * 60_000 + 1);
    l.waitMs('anything');
    assert.equal(l.size, 0, 'everything is forgotten 15 min later');

    const dflt = new FailureLimiter({ clock: t.clock });
    for (let i = 0; i < 20_000; i++) dflt.fail(`k${i}`);
    assert.equal(dflt.size, 10_000, 'default bound: 10,000 keys');
  });
});

describe('addressKey', () => {
  test('IPv4 as is (also mapped), IPv6 by /64', () => {
    assert.equal(addressKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(addressKey('192.0.2.1'), '192.0.2.1');
    assert.equal(addressKey('2001:db8:1:2::7'), addressKey('2001:db8:1:2:ffff:1:2:3'));
    assert.notEqual(addressKey('2001:db8:1:2::7'), addressKey('2001:db8:1:3::7'));
    assert.equal(addressKey(''), '');
  });
});

describe('FairQueue', () => {
  test('round robin between keys, bounded concurrency and queues, abandoning while waiting', async () => {
    const q = new FairQueue({ concurrency: 1, maxQueuedPerKey: 3, maxQueued: 100 });
    const order: string[] = [];
    const gates: (() => void)[] = [];
    const job = (name: string) => () =>
      new Promise<string>((resolve) => {
        order.push(name);
        gates.push(() => resolve(name));
      });
    const done = [q.run('a', job('a1')), q.run('a', job('a2')), q.run('a', job('a3')), q.run('a', job('a4'))];
    await assert.rejects(q.run('a', job('a5')), (e: unknown) => e instanceof QueueFull && e.scope === 'key');
    done.push(q.run('b', job('b1')));
    const ac = new AbortController();
    const abandoned = q.run('c', job('c1'), ac.signal);
    ac.abort(new Error('gone'));
    await assert.rejects(abandoned, /gone/);
    assert.deepEqual(q.stats(), { active: 1, waiting: 4, peakActive: 1 });
    while (gates.length > 0 || order.length < 5) {
      gates.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(done);
    assert.deepEqual(order, ['a1', 'a2', 'b1', 'a3', 'a4'], 'b waits for one check of a, not for all of them');
    assert.equal(q.stats().peakActive, 1);
  });
});

describe('AuthThrottle (fake clock)', () => {
  test('40 concurrent wrong passwords: `limit` checked at once, the rest wait or are refused at once', async () => {
    const t = fakeTime();
    const th = new AuthThrottle({ freeFailures: 3, maxDelayMs: 4000, clock: t.clock, sleep: t.sleep, checkConcurrency: 2 });
    let checked = 0;
    const results = Array.from({ length: 40 }, () =>
      th
        .checkPassword({ address: '203.0.113.9', user: 'victim' }, async () => {
          checked++;
          return false;
        })
        .then(
          (ok) => (ok ? 'ok' : 'wrong'),
          (e: unknown) => (isRateLimited(e) ? 'limited' : String(e)),
        ),
    );
    await t.advance(0);
    assert.equal(checked, 3, 'only the free attempts were checked');
    assert.deepEqual(t.sleeping(), [1000, 2000, 4000, 4000, 4000], 'the next ones wait, doubling, capped');
    assert.equal(th.stats().pending, 5, 'maxPendingPerAddress (8) admitted; the free 3 are done');
    await t.advance(999);
    assert.equal(checked, 3);
    await t.advance(1);
    assert.equal(checked, 4);
    await t.advance(3000);
    const out = await Promise.all(results);
    assert.equal(checked, 8);
    assert.equal(out.filter((r) => r === 'wrong').length, 8);
    assert.equal(out.filter((r) => r === 'limited').length, 32);
    assert.deepEqual(th.stats(), {
      pending: 0,
      tarpitted: 0,
      tracked: { passwordAddresses: 1, users: 1, tokenAddresses: 0, apiKeys: 0 },
      checks: { active: 0, waiting: 0, peakActive: 2 },
    });
    assert.equal(th.passwordAddresses.failures('203.0.113.9'), 8);
  });

  test('a wait beyond the deadline is refused at once; a cancelled wait counts nothing', async () => {
    const t = fakeTime();
    const th = new AuthThrottle({ freeFailures: 1, maxDelayMs: 8000, clock: t.clock, sleep: t.sleep });
    await th.checkPassword({ address: 'x', user: 'u' }, async () => false);
    let checked = 0;
    const check = async () => {
      checked++;
      return true;
    };
    await assert.rejects(th.checkPassword({ address: 'x', user: 'u', deadline: { timeoutMs: () => 500 } }, check), (e: unknown) => {
      assert.ok(isRateLimited(e));
      assert.equal(Number(detailOf(e)?.retryAfterMs), 1000);
      assert.match(ConnectError.from(e).rawMessage, /deadline/);
      return true;
    });
    const ac = new AbortController();
    const cancelled = th.checkPassword({ address: 'x', user: 'u', signal: ac.signal }, check);
    await t.advance(0);
    ac.abort(new ConnectError('cancelled by the client', Code.Canceled));
    await assert.rejects(cancelled, (e: unknown) => ConnectError.from(e).code === Code.Canceled);
    assert.equal(checked, 0);
    assert.equal(th.stats().pending, 0);
    // The right password after the wait: succeeds, clears the user, not the address.
    const ok = th.checkPassword({ address: 'x', user: 'u' }, check);
    await t.advance(1000);
    assert.equal(await ok, true);
    const other = th.checkPassword({ address: 'y', user: 'u' }, check);
    await t.advance(0);
    assert.equal(await other, true, 'the user is not slowed from a clean address any more');
    assert.equal(th.passwordAddresses.failures('x'), 1);
  });

  test('bearer failures: refused at once under the limit, held back over it, at most maxTarpitPerAddress at a time', async () => {
    const t = fakeTime();
    const th = new AuthThrottle({ freeFailures: 2, maxDelayMs: 2000, maxTarpitPerAddress: 64, clock: t.clock, sleep: t.sleep });
    const refusal = new ConnectError('the API key is unknown or revoked', Code.Unauthenticated);
    const attempt = { address: '192.0.2.5', apiKeyId: '0011223344556677' };
    await assert.rejects(th.refuseToken(attempt, refusal), (e) => e === refusal);
    await assert.rejects(th.refuseToken(attempt, refusal), (e) => e === refusal);
    const held = Array.from({ length: 70 }, () =>
      th
        .refuseToken({ address: '192.0.2.5' }, refusal)
        .catch((e: unknown) => (e === refusal ? 'refused' : isRateLimited(e) ? 'limited' : e)),
    );
    await t.advance(0);
    assert.equal(th.stats().tarpitted, 64);
    await t.advance(2000);
    const out = await Promise.all(held);
    assert.equal(out.filter((r) => r === 'refused').length, 64);
    assert.equal(out.filter((r) => r === 'limited').length, 6);
    assert.equal(th.stats().tarpitted, 0);
    assert.equal(th.apiKeys.failures('0011223344556677'), 2);
    th.apiKeySucceeded(attempt.apiKeyId);
    assert.equal(th.apiKeys.size, 0, 'a verified key clears its id');
    assert.equal(th.passwordAddresses.size, 0, 'token failures do not slow logins');
  });
});

/** A transport whose connections come from `localAddress` (any 127.x.y.z is this machine). */
function grpcFrom(server: HeliosServer, localAddress: string): Transport {
  return createGrpcTransport({
    baseUrl: server.grpcUrl.replace(/^grpc:/, 'http:'),
    idleConnectionTimeoutMs: 2000,
    nodeOptions: {
      createConnection: (authority: URL) => net.connect({ host: authority.hostname, port: Number(authority.port), localAddress }),
    },
  });
}

describe('a real server under attack from loopback', () => {
  const limit = 3;
  const maxDelay = 1500;
  let server: HeliosServer;
  let adminKey: string;
  let admin: HeliosDBClient;
  let apiKey: string;
  const events: PasswordCheckEvent[] = [];
  const onEvent = (m: unknown) => events.push(m as PasswordCheckEvent);
  const table = `throttle_logins_${process.pid}`;

  before(async () => {
    server = await startServer({
      port: 0,
      httpPort: 0,
      logLevel: 'silent',
      auth: 'required',
      allowInsecurePassword: true,
      authFailureLimit: limit,
      authMaxDelayMs: maxDelay,
      authCacheMs: 0, // every call verifies its token: nothing is served from the cache
      shutdownGraceMs: 1000,
    });
    await server.auth.createUser({ name: 'admin', role: 'postgres' });
    adminKey = (await server.auth.createApiKey({ user: 'admin' })).key;
    await server.auth.createUser({ name: 'victim', role: 'postgres', password: 'right-horse' });
    await server.auth.createUser({ name: 'bob', role: 'postgres', password: 'bobs-battery' });
    await server.auth.createUser({ name: 'service', role: 'postgres' });
    apiKey = (await server.auth.createApiKey({ user: 'service' })).key;
    await sql(adminKey, `CREATE TABLE ${table} (who text)`);
    admin = createHeliosClient({ url: server.grpcUrl, apiKey: adminKey, minConnections: 0 });
    subscribe(authChannel.name, onEvent);
  });
  after(async () => {
    unsubscribe(authChannel.name, onEvent);
    await admin?.close();
    await server?.close();
  });

  const db = (from = '127.0.0.1') => createClient(DatabaseService, grpcFrom(server, from));
  const login = (user: string, password: string, from = '127.0.0.1') =>
    createClient(AuthService, grpcFrom(server, from)).login({ user, password });
  function sql(token: string, text: string, from = '127.0.0.1') {
    return db(from).execute({ sql: text }, { headers: { authorization: `Bearer ${token}` } });
  }
  /** Logs in and proves the session works: the user's token writes a row. */
  async function loginAndWrite(user: string, password: string, from = '127.0.0.1'): Promise<void> {
    const { token } = await login(user, password, from);
    await sql(token, `INSERT INTO ${table} VALUES ('${user}')`, from);
  }
  async function rowsOf(user: string): Promise<number> {
    const r = await admin.queryOne<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE who = $1`, [user]);
    return Number(r.n);
  }
  async function timed<T>(p: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
    const t0 = performance.now();
    try {
      const value = await p;
      return { ms: performance.now() - t0, value };
    } catch (error) {
      return { ms: performance.now() - t0, error };
    }
  }
  const checksFrom = (address: string) => events.filter((e) => e.address === address);

  test('40 concurrent wrong logins: `limit` checked without delay, the rest slowed; a valid API key never waits', async () => {
    events.length = 0;
    const attack = Array.from({ length: 40 }, (_, i) => timed(login('victim', `guess-${i}`)));
    // During the attack, from the same address: the valid key is served at once.
    await new Promise((r) => setTimeout(r, 50));
    const during = await timed(sql(apiKey, 'SELECT 1'));
    assert.equal(during.error, undefined);
    assert.ok(during.ms < 1000, `the valid API key answered in ${during.ms.toFixed(0)} ms during the attack`);
    const out = await Promise.all(attack);
    const wrong = out.filter((r) => ConnectError.from(r.error).code === Code.Unauthenticated);
    const limited = out.filter((r) => isRateLimited(r.error));
    assert.equal(wrong.length + limited.length, 40, 'every attempt failed, with a reason');
    const checks = checksFrom('127.0.0.1');
    assert.equal(checks.length, wrong.length, 'each wrong answer was one password check');
    assert.equal(checks.filter((e) => e.waitedMs === 0).length, limit, 'only `limit` were checked without delay');
    assert.ok(
      checks.filter((e) => e.waitedMs > 0).every((e) => e.waitedMs >= 1000 && e.waitedMs <= maxDelay),
      'the others waited 1 s and more',
    );
    assert.ok(wrong.filter((r) => r.ms >= 1000).length >= wrong.length - limit, 'the slowed answers came after their wait');
    assert.ok(
      limited.every((r) => r.ms < 1000),
      'refusals beyond the per-address bound are immediate',
    );
    assert.ok(limited.length >= 40 - 16, `most were refused at once (${limited.length})`);
    assert.equal(await rowsOf('victim'), 0);

    const afterwards = await timed(sql(apiKey, `INSERT INTO ${table} VALUES ('service')`));
    assert.equal(afterwards.error, undefined);
    assert.ok(afterwards.ms < 1000, `the valid API key answered in ${afterwards.ms.toFixed(0)} ms after the attack`);
    assert.equal(await rowsOf('service'), 1);
  });

  test('wrong API keys: refused at once up to the limit, then held back; a valid key beside them never waits; logins are not slowed', async () => {
    const from = '127.0.0.4';
    const wrongKey = 'hdb_0000000000000000_' + 'A'.repeat(43);
    for (let i = 0; i < limit; i++) {
      const r = await timed(sql(wrongKey, 'SELECT 1', from));
      assert.equal(ConnectError.from(r.error).code, Code.Unauthenticated);
      assert.ok(r.ms < 1000, `refused at once under the limit (${r.ms.toFixed(0)} ms)`);
    }
    const [bad, good] = await Promise.all([timed(sql(wrongKey, 'SELECT 1', from)), timed(sql(apiKey, 'SELECT 1', from))]);
    assert.equal(ConnectError.from(bad.error).code, Code.Unauthenticated);
    assert.ok(bad.ms >= 1000, `the refusal was held back ${bad.ms.toFixed(0)} ms`);
    assert.equal(good.error, undefined);
    assert.ok(good.ms < 1000, `the valid key answered in ${good.ms.toFixed(0)} ms`);
    events.length = 0;
    await loginAndWrite('bob', 'bobs-battery', from);
    assert.deepEqual(
      checksFrom(from).map((e) => e.waitedMs),
      [0],
      'wrong tokens do not slow password logins',
    );
    assert.equal(await rowsOf('bob'), 1);
  });

  test('a wait longer than the deadline is answered at once (HTTP listener)', async () => {
    events.length = 0;
    const transport = createConnectTransport({ baseUrl: server.httpUrl!, httpVersion: '1.1', nodeOptions: { localAddress: '127.0.0.1' } });
    const r = await timed(createClient(AuthService, transport).login({ user: 'victim', password: 'right-horse' }, { timeoutMs: 700 }));
    assert.ok(isRateLimited(r.error), String(r.error));
    assert.ok(r.ms < 500, `answered in ${r.ms.toFixed(0)} ms`);
    assert.ok(Number(detailOf(r.error)?.retryAfterMs) >= 1000);
    assert.equal(events.length, 0, 'nothing was checked');
  });

  test('the right password for the attacked user succeeds after the wait, and resets its count', async () => {
    events.length = 0;
    const r = await timed(loginAndWrite('victim', 'right-horse'));
    assert.equal(r.error, undefined);
    assert.ok(r.ms >= maxDelay, `waited ${r.ms.toFixed(0)} ms`);
    assert.equal(await rowsOf('victim'), 1);
    // From a clean address the user is not slowed any more, even by a wrong guess.
    events.length = 0;
    await assert.rejects(login('victim', 'nope', '127.0.0.3'), (e: unknown) => ConnectError.from(e).code === Code.Unauthenticated);
    await loginAndWrite('victim', 'right-horse', '127.0.0.3');
    assert.deepEqual(
      checksFrom('127.0.0.3').map((e) => e.waitedMs),
      [0, 0],
    );
    assert.equal(await rowsOf('victim'), 2);
  });

  test("another user's login from the attacking address is slowed but succeeds", async () => {
    events.length = 0;
    const r = await timed(loginAndWrite('bob', 'bobs-battery'));
    assert.equal(r.error, undefined);
    assert.ok(r.ms >= 1000, `waited ${r.ms.toFixed(0)} ms`);
    assert.ok(checksFrom('127.0.0.1')[0].waitedMs >= 1000);
    assert.equal(await rowsOf('bob'), 2);
  });

  test('password checks run at most a bounded number at a time, whoever sends them', async () => {
    const n = 12;
    for (let i = 0; i < n; i++) await server.auth.createUser({ name: `pool${i}`, role: 'postgres', password: `pw-${i}` });
    events.length = 0;
    // Clean addresses and users: nothing is slowed, so all twelve want the thread pool at once.
    await Promise.all(Array.from({ length: n }, (_, i) => loginAndWrite(`pool${i}`, `pw-${i}`, `127.0.1.${i + 1}`)));
    assert.equal(events.length, n);
    assert.ok(events.every((e) => e.waitedMs === 0));
    const peak = Math.max(...events.map((e) => e.active));
    assert.equal(peak, defaultCheckConcurrency, `at most ${defaultCheckConcurrency} at once, and the bound was reached`);
    for (let i = 0; i < n; i++) assert.equal(await rowsOf(`pool${i}`), 1);
  });
});
