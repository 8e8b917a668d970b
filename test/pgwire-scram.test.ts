/**
 * SCRAM-SHA-256 on heliosdb's PostgreSQL port, on both backends, without TLS and without
 * --allow-insecure-password: psql, node-postgres, postgres.js and psycopg log in with a HeliosDB
 * user's password (the server keeps a SCRAM verifier beside the scrypt hash); a wrong password and
 * an unknown user get the same exchange and 28P01; API keys log in as user `apikey` with the
 * cleartext method; users whose verifier is missing keep the cleartext method (refused without
 * TLS); the verifier is out of principals' reach; the schema upgrade adds its column to an
 * existing database.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import postgres from 'postgres';
import { pgRunner } from '../src/server/auth/setup.js';
import { schemaSql, SqlAuthStore, type SqlRunner } from '../src/server/auth/store.js';
import { backends, describeEachBackend } from './helpers/backends.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';
import { makeUser, type SecurityFixture, startSecureServer } from './helpers/security.js';
import { runTool } from './pgwire-fixture.js';

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

/** The first authentication request the server sends to a start-up naming `user`: its code and body. */
function firstAuthRequest(port: number, user: string): Promise<{ code: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from(`user\0${user}\0database\0postgres\0\0`)]);
    const len = Buffer.alloc(4);
    len.writeInt32BE(body.length + 4);
    let got = Buffer.alloc(0);
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(Buffer.concat([len, body])));
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 9 && got.length >= got.readInt32BE(1) + 1) {
        s.destroy();
        if (got[0] !== 0x52) reject(new Error(`expected an authentication request, got ${String.fromCharCode(got[0]!)}`));
        else resolve({ code: got.readInt32BE(5), body: got.subarray(9, got.readInt32BE(1) + 1) });
      }
    });
    s.on('error', reject);
  });
}

/** The server-first-message of a SCRAM exchange for `user` (salt and iterations). */
function serverFirst(port: number, user: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const msg = (type: string, b: Buffer) => {
      const h = Buffer.alloc(5);
      h.write(type, 0, 'latin1');
      h.writeInt32BE(b.length + 4, 1);
      return Buffer.concat([h, b]);
    };
    const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from(`user\0${user}\0database\0postgres\0\0`)]);
    const len = Buffer.alloc(4);
    len.writeInt32BE(body.length + 4);
    const first = Buffer.from(`n,,n=,r=${randomBytes(12).toString('base64')}`);
    const n = Buffer.alloc(4);
    n.writeInt32BE(first.length);
    let got = Buffer.alloc(0);
    let sent = false;
    const s = net.connect({ host: '127.0.0.1', port }, () => s.write(Buffer.concat([len, body])));
    s.on('data', (d) => {
      got = Buffer.concat([got, d]);
      while (got.length >= 5 && got.length >= got.readInt32BE(1) + 1) {
        const m = got.subarray(0, got.readInt32BE(1) + 1);
        got = got.subarray(m.length);
        const code = m.readInt32BE(5);
        if (m[0] === 0x52 && code === 10 && !sent) {
          sent = true;
          s.write(msg('p', Buffer.concat([Buffer.from('SCRAM-SHA-256\0'), n, first])));
        } else if (m[0] === 0x52 && code === 11) {
          s.destroy();
          resolve(m.subarray(9).toString());
        } else {
          s.destroy();
          reject(new Error(`unexpected message ${String.fromCharCode(m[0]!)} ${code}`));
        }
      }
    });
    s.on('error', reject);
  });
}

describeEachBackend('pg port: SCRAM-SHA-256', (backend) => {
  let fx: SecurityFixture;
  let user: string;
  const password = randomBytes(9).toString('hex');
  before(async () => {
    // No TLS and no --allow-insecure-password: only SCRAM and API keys can log in.
    fx = await startSecureServer(backend, certs, { httpPort: -1, tls: false });
    user = await makeUser(fx, 'pgw_scram', fx.writerRole, password);
  });
  after(async () => {
    await fx?.close();
  });
  const plain = () => ({ host: '127.0.0.1', port: fx.server.pgPort!, database: 'postgres' });
  const libpqEnv = (pw: string, name = user) => ({
    PGHOST: '127.0.0.1',
    PGPORT: String(fx.server.pgPort!),
    PGUSER: name,
    PGPASSWORD: pw,
    PGDATABASE: 'postgres',
    PGSSLMODE: 'disable',
  });

  test('the server keeps a SCRAM-SHA-256 verifier beside the scrypt hash', async () => {
    // PGlite: the server's own view (its tables are out of principals' reach, below).
    const rows =
      backend.name === 'postgresql'
        ? await fx.adminSql('SELECT password_hash, scram_verifier FROM heliosdb.users WHERE name = $1', [user])
        : undefined;
    if (rows) {
      assert.match(String(rows[0]!.password_hash), /^scrypt\$/);
      assert.match(String(rows[0]!.scram_verifier), /^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    }
    const first = await firstAuthRequest(fx.server.pgPort!, user);
    assert.equal(first.code, 10, 'AuthenticationSASL');
    assert.equal(first.body.toString(), 'SCRAM-SHA-256\0\0');
  });

  test('node-postgres logs in with SCRAM without TLS; statements run as the user role', async () => {
    const c = await connect({ ...plain(), user, password });
    try {
      assert.equal((await c.query('SELECT current_user AS u')).rows[0].u, fx.writerRole);
      await c.query(`INSERT INTO ${fx.table} VALUES (1, 'scram pg')`);
    } finally {
      await c.end();
    }
    const n = await fx.adminSql(`SELECT count(*)::int AS n FROM ${fx.table} WHERE v = 'scram pg'`);
    assert.equal(n[0]!.n, 1);
  });

  test('postgres.js logs in with SCRAM without TLS', async () => {
    const sql = postgres({ ...plain(), username: user, password, ssl: false, max: 1, onnotice: () => {} });
    try {
      const [r] = await sql`SELECT current_user AS u`;
      assert.equal(r!.u, fx.writerRole);
      await sql.unsafe(`INSERT INTO ${fx.table} VALUES (2, 'scram postgres.js')`);
    } finally {
      await sql.end();
    }
    const n = await fx.adminSql(`SELECT count(*)::int AS n FROM ${fx.table} WHERE v = 'scram postgres.js'`);
    assert.equal(n[0]!.n, 1);
    const wrong = postgres({ ...plain(), username: user, password: 'wrong', ssl: false, max: 1 });
    await assert.rejects(wrong`SELECT 1`, refused('28P01'));
    await wrong.end();
  });

  test('psql logs in with SCRAM without TLS (PGPASSWORD)', async () => {
    const r = await runTool(
      'psql',
      ['-X', '-At', '-c', `INSERT INTO ${fx.table} VALUES (3, 'scram psql')`, '-c', 'SELECT current_user'],
      libpqEnv(password),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(fx.writerRole));
    const n = await fx.adminSql(`SELECT count(*)::int AS n FROM ${fx.table} WHERE v = 'scram psql'`);
    assert.equal(n[0]!.n, 1);
    const bad = await runTool('psql', ['-X', '-At', '-c', 'SELECT 1'], libpqEnv('wrong'));
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /password authentication failed for user/);
  });

  test('psycopg logs in with SCRAM without TLS', async () => {
    const script = `
import psycopg
with psycopg.connect("") as conn:
    conn.execute("INSERT INTO ${fx.table} VALUES (4, 'scram psycopg')")
    print(conn.execute("SELECT current_user").fetchone()[0])
try:
    psycopg.connect("password=wrong")
except psycopg.OperationalError as e:
    print("refused:", e.sqlstate if hasattr(e, "sqlstate") else "", str(e).strip().splitlines()[-1])
`;
    const r = await runTool('/usr/bin/python3', ['-c', script], libpqEnv(password));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(fx.writerRole));
    assert.match(r.stdout, /refused:.*password authentication failed/);
    const n = await fx.adminSql(`SELECT count(*)::int AS n FROM ${fx.table} WHERE v = 'scram psycopg'`);
    assert.equal(n[0]!.n, 1);
  });

  test('a wrong password and an unknown user: the same exchange, 28P01', async () => {
    const unknown = `nobody_${fx.id}`;
    const wrongUser = await connect({ ...plain(), user, password: 'wrong' }).catch((e) => e);
    const wrongName = await connect({ ...plain(), user: unknown, password: 'wrong' }).catch((e) => e);
    assert.ok(refused('28P01')(wrongUser), String(wrongUser));
    assert.ok(refused('28P01')(wrongName), String(wrongName));
    assert.equal(wrongUser.message.replace(user, 'X'), wrongName.message.replace(unknown, 'X'));
    // Both are offered SCRAM; an unknown name gets a salt of its own, the same each time, and 4096 iterations.
    assert.equal((await firstAuthRequest(fx.server.pgPort!, unknown)).code, 10);
    const a = await serverFirst(fx.server.pgPort!, unknown);
    const b = await serverFirst(fx.server.pgPort!, unknown);
    const real = await serverFirst(fx.server.pgPort!, user);
    const salt = (s: string) => /,s=([^,]+),i=(\d+)$/.exec(s)!;
    assert.equal(salt(a)[1], salt(b)[1]);
    assert.equal(salt(a)[2], '4096');
    assert.equal(salt(real)[2], '4096');
    assert.equal(Buffer.from(salt(a)[1]!, 'base64').length, Buffer.from(salt(real)[1]!, 'base64').length);
    assert.notEqual(salt(a)[1], (/,s=([^,]+),/.exec(await serverFirst(fx.server.pgPort!, `other_${fx.id}`)) ?? [])[1]);
    // A user without a password (API keys only) is answered as a name that is no user.
    const keysOnly = await makeUser(fx, 'pgw_keys_only', fx.writerRole);
    assert.equal((await firstAuthRequest(fx.server.pgPort!, keysOnly)).code, 10);
    const e = await connect({ ...plain(), user: keysOnly, password: 'wrong' }).catch((x) => x);
    assert.ok(refused('28P01')(e), String(e));
    assert.equal(e.message.replace(keysOnly, 'X'), wrongName.message.replace(unknown, 'X'));
    assert.equal(salt(await serverFirst(fx.server.pgPort!, keysOnly))[1], salt(await serverFirst(fx.server.pgPort!, keysOnly))[1]);
  });

  test('SCRAM proofs are checked through the login throttle', async () => {
    const events: unknown[] = [];
    const onEvent = (e: unknown) => events.push(e);
    subscribe('heliosdb:auth', onEvent);
    try {
      await assert.rejects(connect({ ...plain(), user, password: 'wrong' }), refused('28P01'));
      await assert.rejects(connect({ ...plain(), user: `ghost_${fx.id}`, password: 'wrong' }), refused('28P01'));
    } finally {
      unsubscribe('heliosdb:auth', onEvent);
    }
    assert.equal(events.filter((e) => (e as { event?: string }).event === 'password-check').length, 2);
  });

  test('an API key logs in as user apikey with the cleartext method, without TLS', async () => {
    assert.equal((await firstAuthRequest(fx.server.pgPort!, 'apikey')).code, 3, 'AuthenticationCleartextPassword');
    const { key } = await fx.auth.createApiKey({ user });
    const c = await connect({ ...plain(), user: 'apikey', password: key });
    try {
      assert.equal((await c.query('SELECT current_user AS u')).rows[0].u, fx.writerRole);
    } finally {
      await c.end();
    }
    const r = await runTool('psql', ['-X', '-At', '-c', 'SELECT current_user'], libpqEnv(key, 'apikey'));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(fx.writerRole));
    // A key sent as a SCRAM user's password does not match: SCRAM carries no password.
    await assert.rejects(connect({ ...plain(), user, password: key }), refused('28P01'));
  });

  test('the verifier is out of reach of principals on the pg port', async () => {
    const c = await connect({ ...plain(), user, password });
    try {
      await assert.rejects(c.query('SELECT scram_verifier FROM heliosdb.users'), refused('42501'));
    } finally {
      await c.end();
    }
  });

  if (backend.name === 'pglite') {
    // (PGlite: the server's own database; on PostgreSQL the users table is shared with other tests.)
    test('a HeliosDB user named apikey is a user like any other: SCRAM with its password', async () => {
      await fx.auth.createUser({ name: 'apikey', role: fx.writerRole, password });
      try {
        assert.equal((await firstAuthRequest(fx.server.pgPort!, 'apikey')).code, 10);
        const c = await connect({ ...plain(), user: 'apikey', password });
        assert.equal((await c.query('SELECT current_user AS u')).rows[0].u, fx.writerRole);
        await c.end();
      } finally {
        await fx.auth.deleteUser('apikey');
      }
      assert.equal((await firstAuthRequest(fx.server.pgPort!, 'apikey')).code, 3);
    });
  }

  if (backend.name === 'postgresql') {
    test('a user whose password was set before verifiers keeps the cleartext method (refused without TLS)', async () => {
      const old = await makeUser(fx, 'pgw_old', fx.writerRole, password);
      await fx.adminSql('UPDATE heliosdb.users SET scram_verifier = NULL WHERE name = $1', [old]);
      assert.equal((await firstAuthRequest(fx.server.pgPort!, old)).code, 3);
      await assert.rejects(connect({ ...plain(), user: old, password }), refused('28000', /without TLS/));
      // Setting the password again (heliosdb user create --replace) gives it a verifier.
      await fx.auth.createUser({ name: old, role: fx.writerRole, password, replace: true });
      const c = await connect({ ...plain(), user: old, password });
      await c.end();
    });
  }
});

/** The schema as it was before SCRAM verifiers. */
const oldSchemaSql = schemaSql.replace(/ALTER TABLE heliosdb\.users ADD COLUMN IF NOT EXISTS scram_verifier text;\n/, '');

for (const b of backends) {
  test(`the schema upgrade adds the verifier column to an existing database [${b.name}]`, async () => {
    assert.notEqual(oldSchemaSql, schemaSql);
    let runner: SqlRunner;
    let done: () => Promise<void>;
    if (b.databaseUrl) {
      const db = `hdb_scram_upgrade_${process.pid}_${randomBytes(3).toString('hex')}`;
      const admin = new pg.Client({ connectionString: b.databaseUrl });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${db}`);
      const url = new URL(b.databaseUrl);
      url.pathname = `/${db}`;
      const c = new pg.Client({ connectionString: url.toString() });
      await c.connect();
      runner = pgRunner(c);
      done = async () => {
        await c.end();
        await admin.query(`DROP DATABASE ${db}`);
        await admin.end();
      };
    } else {
      const lite = await PGlite.create();
      runner = {
        query: async (text, values) =>
          (values ? (await lite.query(text, values)).rows : (await lite.exec(text)).flatMap((r) => r.rows)) as Record<string, unknown>[],
      };
      done = () => lite.close();
    }
    try {
      await runner.query(oldSchemaSql);
      await runner.query("INSERT INTO heliosdb.users (name, role, password_hash) VALUES ('before', 'postgres', 'scrypt$x')");
      const store = new SqlAuthStore(runner, { loginRoles: false });
      // A server reading the old schema finds no verifier (and no error).
      assert.equal((await store.findUser('before'))?.scramVerifier, undefined);
      await store.ensureSchema();
      const cols = await runner.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'heliosdb' AND table_name = 'users' AND column_name = 'scram_verifier'",
      );
      assert.equal(cols.length, 1);
      await store.createUser({ name: 'after', role: 'postgres', password: 'pw' });
      assert.match(String((await store.findUser('after'))?.scramVerifier), /^SCRAM-SHA-256\$4096:/);
      assert.equal((await store.findUser('before'))?.scramVerifier, undefined);
    } finally {
      await done();
    }
  });
}
