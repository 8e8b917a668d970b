/**
 * Who a client of heliosdb's PostgreSQL port is, on both backends: TLS (SSLRequest answered with
 * the server's certificate; plaintext refused when TLS is configured), a HeliosDB user's password
 * (SCRAM-SHA-256 over TLS here; without TLS: test/pgwire-scram.test.ts), an API key as the password
 * (user `apikey`, cleartext; over TLS only, unless --allow-insecure-password, for a password), read-only keys
 * refused, wrong credentials refused with 28P01; statements under the principal's role, and on
 * PostgreSQL its own login role, which raw SQL cannot leave. Hostile bytes end only their own
 * connection.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { startServer } from '../src/server/server.js';
import { describeEachBackend } from './helpers/backends.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';
import { makeUser, type SecurityFixture, startSecureServer } from './helpers/security.js';

let certs: TestCerts;
before(() => {
  certs = makeTestCerts();
});
after(() => certs.cleanup());

async function connect(config: pg.ClientConfig): Promise<pg.Client> {
  const c = new pg.Client(config);
  c.on('error', () => {});
  await c.connect();
  return c;
}

const refused = (code: string, pattern?: RegExp) => (e: { code?: string; message?: string }) =>
  e.code === code && (!pattern || pattern.test(e.message ?? ''));

describeEachBackend('pg port: authentication', (backend) => {
  let fx: SecurityFixture;
  let plain: SecurityFixture;
  let user: string;
  let plainUser: string;
  const password = randomBytes(9).toString('hex');
  before(async () => {
    fx = await startSecureServer(backend, certs, { httpPort: -1 });
    plain = await startSecureServer(backend, certs, { httpPort: -1, tls: false });
    user = await makeUser(fx, 'pgw_auth', fx.writerRole, password);
    plainUser = await makeUser(plain, 'pgw_auth', plain.writerRole, password);
  });
  after(async () => {
    await fx?.close();
    await plain?.close();
  });
  const tls = () => ({ host: 'localhost', port: fx.server.pgPort!, database: 'postgres', ssl: { ca: certs.ca.cert } });

  test("a user's password over TLS: statements run as the user's role", async () => {
    const c = await connect({ ...tls(), user, password });
    try {
      const r = await c.query('SELECT current_user AS u');
      assert.equal(r.rows[0].u, fx.writerRole);
      await c.query(`INSERT INTO ${fx.table} VALUES (1, 'pg port')`);
      const n = await fx.adminSql(`SELECT count(*)::int AS n FROM ${fx.table} WHERE v = 'pg port'`);
      assert.equal(n[0]!.n, 1);
    } finally {
      await c.end();
    }
  });

  test('a wrong password, an unknown user, an empty password: 28P01', async () => {
    await assert.rejects(connect({ ...tls(), user, password: 'wrong' }), refused('28P01', /password authentication failed/));
    await assert.rejects(connect({ ...tls(), user: 'nobody_at_all', password: 'x' }), refused('28P01'));
    await assert.rejects(connect({ ...tls(), user, password: '' }), (e: Error) => /password/.test(e.message));
  });

  test('plaintext is refused when TLS is configured; cleartext passwords are refused without TLS', async () => {
    await assert.rejects(
      connect({ host: '127.0.0.1', port: fx.server.pgPort!, database: 'postgres', user, password }),
      refused('28000', /requires TLS/),
    );
    // User apikey gets the cleartext method: a password there (not a key) needs TLS.
    await assert.rejects(
      connect({ host: '127.0.0.1', port: plain.server.pgPort!, database: 'postgres', user: 'apikey', password }),
      refused('28000', /passwords are refused over a connection without TLS/),
    );
  });

  test('an API key as the password; a read-only key is refused', async () => {
    const { key } = await fx.auth.createApiKey({ user });
    const c = await connect({ ...tls(), user: 'apikey', password: key });
    try {
      assert.equal((await c.query('SELECT current_user AS u')).rows[0].u, fx.writerRole);
    } finally {
      await c.end();
    }
    const ro = await fx.auth.createApiKey({ user, readOnly: true });
    await assert.rejects(connect({ ...tls(), user: 'apikey', password: ro.key }), refused('28000', /read-only API keys are refused/));
    await assert.rejects(connect({ ...tls(), user: 'apikey', password: 'hdb_notakey_0000' }), refused('28P01'));
    // Without TLS an API key is accepted, as on the other listeners.
    const { key: plainKey } = await plain.auth.createApiKey({ user: plainUser });
    const p = await connect({ host: '127.0.0.1', port: plain.server.pgPort!, database: 'postgres', user: 'apikey', password: plainKey });
    await p.end();
  });

  test("raw SQL cannot leave the principal's identity", async () => {
    const c = await connect({ ...tls(), user, password });
    try {
      if (backend.name === 'postgresql') {
        // The user's own login role: RESET ROLE returns to it, never to the server's login.
        await c.query('RESET ROLE');
        const r = await c.query('SELECT current_user AS u, session_user AS s');
        assert.match(r.rows[0].s, /^hdb_[0-9a-f]{8}_/);
        // The login role starts in the user's role (ALTER ROLE ... SET role), and returns there.
        assert.equal(r.rows[0].u, fx.writerRole);
        await assert.rejects(c.query('SET ROLE postgres'), refused('42501'));
        await assert.rejects(c.query('SELECT count(*) FROM heliosdb.users'), refused('42501'));
      } else {
        await assert.rejects(c.query('SET ROLE postgres'), refused('42501', /refused on the embedded engine/));
        await assert.rejects(c.query('RESET ROLE'), refused('42501'));
        assert.equal((await c.query('SELECT current_user AS u')).rows[0].u, fx.writerRole);
      }
    } finally {
      await c.end();
    }
  });
});

test('pg port: hostile bytes end only their own connection', async () => {
  const server = await startServer({ port: 0, httpPort: -1, logLevel: 'silent' });
  after(() => server.close());
  const port = server.pgPort!;
  const send = (bytes: Buffer) =>
    new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      const s = net.connect({ host: '127.0.0.1', port }, () => s.write(bytes));
      s.on('data', (d) => chunks.push(d));
      s.on('error', () => {});
      s.on('close', () => resolve(Buffer.concat(chunks)));
      setTimeout(() => s.destroy(), 3000);
    });
  const startup = (() => {
    const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from('user\0postgres\0database\0postgres\0\0')]);
    const len = Buffer.alloc(4);
    len.writeInt32BE(body.length + 4);
    return Buffer.concat([len, body]);
  })();
  const cases: [string, Buffer][] = [
    ['random bytes', randomBytes(4096)],
    ['a huge start-up length', Buffer.from([0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0])],
    ['protocol 9.9', Buffer.from([0, 0, 0, 8, 0, 9, 0, 9])],
    ['a start-up with no terminator', Buffer.concat([Buffer.from([0, 0, 0, 20, 0, 3, 0, 0]), Buffer.from('useruseruseruser')])],
    ['a huge message after start-up', Buffer.concat([startup, Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff])])],
    ['a negative message length', Buffer.concat([startup, Buffer.from([0x51, 0xff, 0xff, 0xff, 0xf0])])],
    [
      'a Bind for a statement that does not exist',
      Buffer.concat([startup, Buffer.from([0x42, 0, 0, 0, 12]), Buffer.from('\0nope\0\0\0\0\0')]),
    ],
    ['a Describe of an unknown kind', Buffer.concat([startup, Buffer.from([0x44, 0, 0, 0, 7, 0x5a, 0x61, 0])])],
    ['data after SSLRequest', Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f, 1, 2, 3])],
  ];
  for (const [what, bytes] of cases) {
    await send(bytes);
    const c = await connect({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    assert.equal((await c.query('SELECT 1 AS one')).rows[0].one, 1, `after ${what}`);
    await c.end();
  }
});
