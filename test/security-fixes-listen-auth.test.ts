/**
 * Attack report row 35: a Listen stream opened with a credential that is later revoked (API key
 * revoked, user deleted, password changed) ends with UNAUTHENTICATED within the auth cache window,
 * and receives nothing sent afterwards; a listener whose credential still holds keeps receiving.
 * A StreamQuery read slowly ends the same way.
 * Each backend; absence is shown by a control listener that does receive the later notification.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AuthenticationError, createClient, type HeliosDBClient, type HeliosDBError, type Notification } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';
import { makeUser, type SecurityFixture, startSecureServer } from './helpers/security.js';
import { waitFor } from './helpers/server.js';

const certs: TestCerts = makeTestCerts();
after(() => certs.cleanup());

const cacheMs = 300;

describeEachBackend('a credential revoked while its Listen stream is open (attack report row 35)', (backend) => {
  let f: SecurityFixture;
  let control: HeliosDBClient;
  let writer: HeliosDBClient;
  const clients: HeliosDBClient[] = [];
  before(async () => {
    f = await startSecureServer(backend, certs, { tls: false, allowInsecurePassword: true, authCacheMs: cacheMs, authFailureLimit: 1000 });
    const w = await makeUser(f, 'notifier', f.writerRole);
    writer = createClient({ url: f.server.grpcUrl, apiKey: (await f.auth.createApiKey({ user: w })).key, minConnections: 0 });
    const c = await makeUser(f, 'control', f.readerRole);
    control = createClient({ url: f.server.grpcUrl, apiKey: (await f.auth.createApiKey({ user: c })).key, minConnections: 0 });
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await writer?.close();
    await control?.close();
    await f?.close();
  });

  /** Listens on `channel` with `client`; returns what it received and the errors it was told. */
  async function listenWith(client: HeliosDBClient, channel: string) {
    const got: Notification[] = [];
    const errors: HeliosDBError[] = [];
    const listener = await client.listen(channel, (n) => got.push(n), { onError: (e) => errors.push(e), maxReconnectDelayMs: 200 });
    return { got, errors, listener, payloads: () => got.filter((n) => !n.missed).map((n) => n.payload) };
  }

  /** Notifies `payload` and waits until the control listener has it (so every listener has been sent it). */
  async function notifyAndSettle(ctl: Awaited<ReturnType<typeof listenWith>>, channel: string, payload: string) {
    await writer.execute('SELECT pg_notify($1, $2)', [channel, payload]);
    assert.ok(await waitFor(() => ctl.payloads().includes(payload), 10_000), `the control listener got ${payload}`);
  }

  const revocations: [string, (user: string, keyId: string | undefined) => Promise<unknown>, boolean][] = [
    ['the API key is revoked', (_u, id) => f.auth.revokeApiKey(id!), false],
    ['the user is deleted', (u) => f.auth.deleteUser(u), false],
    [
      "the user's password is changed",
      (u) => f.auth.createUser({ name: u, role: f.readerRole, password: 'a new one', replace: true }),
      true,
    ],
  ];
  let n = 0;
  for (const [what, revoke, password] of revocations) {
    test(`${what}: the stream ends with UNAUTHENTICATED and receives nothing sent afterwards`, async () => {
      n++;
      const channel = `revoked_${f.id}_${n}`;
      const user = await makeUser(f, `listener${n}`, f.readerRole, password ? 'the old one' : undefined);
      let keyId: string | undefined;
      let client: HeliosDBClient;
      if (password) client = createClient({ url: f.server.grpcUrl, user, password: 'the old one', minConnections: 0 });
      else {
        const k = await f.auth.createApiKey({ user, readOnly: true });
        keyId = k.id;
        client = createClient({ url: f.server.grpcUrl, apiKey: k.key, minConnections: 0 });
      }
      clients.push(client);
      const victim = await listenWith(client, channel);
      const ctl = await listenWith(control, channel);
      try {
        await notifyAndSettle(ctl, channel, 'before');
        assert.ok(await waitFor(() => victim.payloads().includes('before'), 10_000), 'the listener works before the revocation');
        await revoke(user, keyId);
        assert.ok(
          await waitFor(() => victim.errors.some((e) => e instanceof AuthenticationError), 10 * cacheMs + 10_000),
          `the stream ended with UNAUTHENTICATED (errors: ${victim.errors.map(String).join('; ') || 'none'})`,
        );
        const first = victim.errors.find((e) => e instanceof AuthenticationError)!;
        assert.equal(first.grpcCode, 16);
        assert.ok(await waitFor(() => victim.listener.closed, 10_000), 'the client stops asking with refused credentials');
        assert.equal(victim.errors.filter((e) => e instanceof AuthenticationError).length, 1, 'one refusal, no retries');
        await notifyAndSettle(ctl, channel, 'after the revocation');
        assert.deepEqual(victim.payloads(), ['before'], 'nothing sent after the revocation reached the revoked listener');
        // A credential that still holds keeps its stream.
        assert.deepEqual(ctl.payloads(), ['before', 'after the revocation']);
        assert.equal(ctl.errors.length, 0);
      } finally {
        await victim.listener.unlisten();
        await ctl.listener.unlisten();
      }
    });
  }

  test('a stream read slowly ends with UNAUTHENTICATED once its key is revoked, before its last row', {
    skip: backend.databaseUrl ? false : 'the embedded engine has one session: a revocation (a write) waits for the open stream',
  }, async () => {
    const user = await makeUser(f, 'streamer', f.readerRole);
    const k = await f.auth.createApiKey({ user, readOnly: true });
    const client = createClient({ url: f.server.grpcUrl, apiKey: k.key, minConnections: 0 });
    clients.push(client);
    const total = 1_000_000;
    let seen = 0;
    const outcome = (async () => {
      for await (const _ of client.stream('SELECT g FROM generate_series(1, $1::int) g', [total])) {
        seen++;
        if (seen === 1) {
          await f.auth.revokeApiKey(k.id);
          await new Promise((r) => setTimeout(r, 3 * cacheMs + 500)); // past the auth cache and a re-check
        }
      }
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    const e = await outcome;
    assert.ok(e instanceof AuthenticationError, `the stream ended with UNAUTHENTICATED, not ${String(e)}`);
    assert.ok(seen < total, `it ended before its last row (${seen} of ${total} read)`);
    await assert.rejects(client.query('SELECT 1'), AuthenticationError, 'and the key is refused from then on');
  });

  test('a reserved session and a transaction opened before the revocation are refused at their next call', {
    skip: backend.databaseUrl ? false : 'the embedded engine has one session: a revocation (a write) waits for the open transaction',
  }, async () => {
    const user = await makeUser(f, 'holder', f.readerRole);
    const k = await f.auth.createApiKey({ user });
    const client = createClient({ url: f.server.grpcUrl, apiKey: k.key, minConnections: 0 });
    clients.push(client);
    const session = await client.reserve();
    const tx = await client.begin();
    assert.equal((await session.queryOne<{ n: number }>('SELECT 1 AS n')).n, 1);
    assert.equal((await tx.queryOne<{ n: number }>('SELECT 2 AS n')).n, 2);
    await f.auth.revokeApiKey(k.id);
    await new Promise((r) => setTimeout(r, cacheMs + 200)); // past the auth cache
    await assert.rejects(session.query('SELECT 1'), AuthenticationError);
    await assert.rejects(tx.query('SELECT 2'), AuthenticationError);
  });
});
