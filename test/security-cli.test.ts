/**
 * The `heliosdb` commands that manage users and API keys (against PostgreSQL, `--database-url`),
 * and the server's refusal to listen beyond loopback without authentication.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import pg from 'pg';
import { AuthenticationError, createClient, PermissionDeniedError } from '@heliosdb/client';
import { startServer } from '../src/server/server.js';
import { backends } from './helpers/backends.js';

function heliosdb(args: string[], stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', 'src/server/bin/heliosdb.ts', ...args],
      { timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(stdin ?? '');
  });
}

test('the server refuses to listen beyond loopback without --auth, before binding anything', async () => {
  await assert.rejects(
    startServer({ host: '0.0.0.0', port: 0, httpPort: -1, logLevel: 'silent' }),
    /refusing to listen on 0\.0\.0\.0 without authentication/,
  );
  const r = await heliosdb(['serve', '--host', '0.0.0.0', '--port', '0', '--http-port', '-1']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--auth required .* or --auth none/);
});

const postgres = backends.find((b) => b.name === 'postgresql');

test('heliosdb user create / apikey create / apikey revoke against --database-url', {
  skip: postgres ? false : 'needs HELIOSDB_TEST_POSTGRES_URL',
}, async () => {
  const url = postgres!.databaseUrl!;
  const id = randomBytes(3).toString('hex');
  const role = `hdb_cli_${id}`;
  const user = `cli_${id}`;
  const table = `cli_${id}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`CREATE ROLE ${role} NOLOGIN; CREATE TABLE ${table} (x int); GRANT SELECT, INSERT ON ${table} TO ${role}`);
  const server = await startServer({ port: 0, httpPort: -1, logLevel: 'silent', auth: 'required', databaseUrl: url, authCacheMs: 0 });
  try {
    assert.equal((await heliosdb(['auth', 'init', '--database-url', url])).code, 0);
    const created = await heliosdb(['user', 'create', user, '--role', role, '--password-stdin', '--database-url', url], 'pw-from-stdin\n');
    assert.equal(created.code, 0, created.stderr);
    const made = await heliosdb(['apikey', 'create', '--user', user, '--read-only', '--database-url', url]);
    assert.equal(made.code, 0, made.stderr);
    const key = made.stdout.trim();
    assert.match(key, /^hdb_[0-9a-f]{16}_/);
    const keyId = key.slice(4, 20);
    const [stored] = (await admin.query('SELECT key_hash, read_only FROM heliosdb.api_keys WHERE id = $1', [keyId])).rows;
    assert.equal(stored.read_only, true);
    assert.ok(!stored.key_hash.includes(key.slice(21)), 'only a hash is stored');
    const c = createClient({ url: server.grpcUrl, apiKey: key, minConnections: 0 });
    try {
      assert.equal((await c.queryOne<{ u: string }>('SELECT current_user AS u')).u, role);
      await assert.rejects(c.execute(`INSERT INTO ${table} VALUES (1)`), PermissionDeniedError);
      const revoked = await heliosdb(['apikey', 'revoke', keyId, '--database-url', url]);
      assert.equal(revoked.code, 0, revoked.stderr);
      await assert.rejects(c.query('SELECT 1'), AuthenticationError);
    } finally {
      await c.close();
    }
    // The password from standard input works for Login (over cleartext only with the server's consent).
    const [u] = (await admin.query('SELECT password_hash FROM heliosdb.users WHERE name = $1', [user])).rows;
    assert.match(u.password_hash, /^scrypt\$/);
    // ... and a SCRAM-SHA-256 verifier of it, for the pg port's SCRAM (no TLS needed); --replace changes both.
    const scram = async (password: string) => {
      const pc = new pg.Client({ host: '127.0.0.1', port: server.pgPort!, database: 'postgres', user, password });
      pc.on('error', () => {});
      await pc.connect();
      const r = await pc.query('SELECT current_user AS u');
      await pc.end();
      return r.rows[0].u;
    };
    const [v] = (await admin.query('SELECT scram_verifier FROM heliosdb.users WHERE name = $1', [user])).rows;
    assert.match(v.scram_verifier, /^SCRAM-SHA-256\$4096:/);
    assert.equal(await scram('pw-from-stdin'), role);
    const replaced = await heliosdb(
      ['user', 'create', user, '--role', role, '--replace', '--password-stdin', '--database-url', url],
      'new-pw\n',
    );
    assert.equal(replaced.code, 0, replaced.stderr);
    await assert.rejects(scram('pw-from-stdin'), (e: { code?: string }) => e.code === '28P01');
    assert.equal(await scram('new-pw'), role);
    assert.equal((await heliosdb(['user', 'delete', user, '--database-url', url])).code, 0);
  } finally {
    await server.close();
    await admin.query(`DELETE FROM heliosdb.users WHERE name = $1`, [user]);
    await admin.query(`DROP TABLE ${table}; DROP OWNED BY ${role}; DROP ROLE ${role}`);
    await admin.end();
  }
});

test('heliosdb auth init --grant-to lets the server login read users and record idempotency keys', {
  skip: postgres ? false : 'needs HELIOSDB_TEST_POSTGRES_URL',
}, async () => {
  const url = postgres!.databaseUrl!;
  const login = `hdb_login_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE ${login} NOLOGIN`);
    const r = await heliosdb(['auth', 'init', '--grant-to', login, '--database-url', url]);
    assert.equal(r.code, 0, r.stderr);
    const [p] = (
      await admin.query(
        `SELECT has_table_privilege($1, 'heliosdb.users', 'SELECT') AS users,
                has_table_privilege($1, 'heliosdb.idempotency_keys', 'INSERT') AS keys_insert,
                has_table_privilege($1, 'heliosdb.idempotency_keys', 'UPDATE') AS keys_update,
                has_table_privilege($1, 'heliosdb.api_keys', 'INSERT') AS api_keys_insert`,
        [login],
      )
    ).rows;
    assert.deepEqual(p, { users: true, keys_insert: true, keys_update: true, api_keys_insert: false });
  } finally {
    await admin.query(`DROP OWNED BY ${login}; DROP ROLE ${login}`).catch(() => {});
    await admin.end();
  }
});
