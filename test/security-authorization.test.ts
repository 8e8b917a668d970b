/**
 * Authorization: every statement runs as the principal's PostgreSQL role, so permissions are
 * ordinary GRANTs and a denied statement raises PermissionDeniedError; a read-only API key cannot
 * write, whatever SQL it sends; one principal cannot use another's transaction. On PostgreSQL each
 * user's statements run under a login role of its own (member of the user's role only), so crafted
 * `RESET ROLE` / `SET ROLE NONE` gain nothing and `SET SESSION AUTHORIZATION` is refused. PGlite is
 * one superuser session: role switching works there for ordinary statements, but a caller who
 * resets the role is the superuser (see docs/security.md); those tests run on PostgreSQL only.
 * test/security-boundary.test.ts attacks the boundary much further.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClient, type HeliosDBClient, HeliosDBError, PermissionDeniedError } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';
import { makeUser, type SecurityFixture, startSecureServer } from './helpers/security.js';

const certs: TestCerts = makeTestCerts();
after(() => certs.cleanup());

describeEachBackend('authorization', (backend) => {
  const pg = backend.name === 'postgresql';
  let f: SecurityFixture;
  let writer: HeliosDBClient;
  let writerHttp: HeliosDBClient;
  let reader: HeliosDBClient;
  let readOnlyKey: HeliosDBClient;
  let readOnlyKeyHttp: HeliosDBClient;
  let secret: string;
  before(async () => {
    f = await startSecureServer(backend, certs);
    const w = await makeUser(f, 'writer', f.writerRole);
    const r = await makeUser(f, 'reader', f.readerRole);
    const wKey = (await f.auth.createApiKey({ user: w })).key;
    const rKey = (await f.auth.createApiKey({ user: r })).key;
    // A read-only key of the writer: its role may write, the key may not.
    const roKey = (await f.auth.createApiKey({ user: w, readOnly: true })).key;
    const opts = { minConnections: 0, ...f.tlsOptions() };
    writer = createClient({ url: f.server.grpcUrl, apiKey: wKey, ...opts });
    writerHttp = createClient({ url: f.server.httpUrl!, apiKey: wKey, ...opts });
    reader = createClient({ url: f.server.grpcUrl, apiKey: rKey, ...opts });
    readOnlyKey = createClient({ url: f.server.grpcUrl, apiKey: roKey, ...opts });
    readOnlyKeyHttp = createClient({ url: f.server.httpUrl!, apiKey: roKey, ...opts });
    secret = `secret_${f.id}`;
    await f.adminSql(`CREATE TABLE ${secret} (x int); INSERT INTO ${secret} VALUES (42)`);
    await f.adminSql(`INSERT INTO ${f.table} VALUES (0, 'seed')`);
  });
  after(async () => {
    for (const c of [writer, writerHttp, reader, readOnlyKey, readOnlyKeyHttp]) await c?.close();
    await f?.adminSql(`DROP TABLE IF EXISTS ${secret}`).catch(() => {});
    await f?.close();
  });

  const rows = async () => Number((await f.adminSql(`SELECT count(*)::int AS n FROM ${f.table}`))[0].n);

  test('statements run as the principal role: GRANTs decide, denials are PermissionDeniedError', async () => {
    for (const c of [writer, writerHttp]) {
      assert.equal((await c.queryOne<{ u: string }>('SELECT current_user AS u')).u, f.writerRole);
      await c.execute(`INSERT INTO ${f.table} VALUES ($1, $2)`, [1, 'w']);
      await assert.rejects(c.execute(`DELETE FROM ${f.table}`), PermissionDeniedError);
      await assert.rejects(
        c.query(`SELECT * FROM ${secret}`),
        (e: unknown) => e instanceof PermissionDeniedError && e.sqlstate === '42501',
      );
    }
    assert.equal((await reader.queryOne<{ u: string }>('SELECT current_user AS u')).u, f.readerRole);
    await assert.rejects(reader.execute(`INSERT INTO ${f.table} VALUES (2, 'r')`), PermissionDeniedError);
    assert.ok((await reader.query(`SELECT * FROM ${f.table}`)).rowCount >= 1);
  });

  test('crafted SQL cannot leave the role for the server login or the superuser', {
    skip: pg ? false : 'PGlite is one superuser session',
  }, async () => {
    // RESET ROLE comes back to the user's own role (its login role starts in it): nothing gained.
    assert.equal((await writer.queryOne<{ u: string }>('RESET ROLE; SELECT current_user AS u')).u, f.writerRole);
    await assert.rejects(writer.query(`RESET ROLE; SELECT * FROM ${secret}`), PermissionDeniedError);
    // SET ROLE NONE falls back to the login role itself, which holds no privileges (NOINHERIT).
    await assert.rejects(writer.query(`SET ROLE NONE; SELECT * FROM ${f.table}`), PermissionDeniedError);
    await assert.rejects(
      writer.execute(`DO $$ BEGIN PERFORM set_config('role', 'none', false); PERFORM count(*) FROM ${f.table}; END $$`),
      PermissionDeniedError,
    );
    await assert.rejects(writer.execute('SET SESSION AUTHORIZATION postgres'), PermissionDeniedError);
    await assert.rejects(writer.execute('SET ROLE postgres'), PermissionDeniedError);
    // The next call on the same connections runs as the principal again.
    assert.equal((await writer.queryOne<{ u: string }>('SELECT current_user AS u')).u, f.writerRole);
    // The server's own tables are out of reach of user roles.
    await assert.rejects(writer.query('SELECT * FROM heliosdb.api_keys'), PermissionDeniedError);
  });

  test('a read-only API key cannot write, whatever SQL it sends', async () => {
    const before = await rows();
    const insert = `INSERT INTO ${f.table} VALUES (99, 'ro')`;
    for (const c of [readOnlyKey, readOnlyKeyHttp]) {
      assert.ok((await c.query(`SELECT * FROM ${f.table}`)).rowCount >= 1, 'reads work');
      await assert.rejects(c.execute(insert), (e: unknown) => e instanceof PermissionDeniedError && e.reason === 'READ_ONLY_PRINCIPAL');
      // Scripts cannot end the server's READ ONLY transaction and write after it.
      for (const sql of [
        `COMMIT; ${insert}`,
        `COMMIT; SET default_transaction_read_only = off; COMMIT; ${insert}`,
        `ROLLBACK; BEGIN READ WRITE; ${insert}; COMMIT`,
      ]) {
        await assert.rejects(c.execute(sql), HeliosDBError, sql);
      }
      // Nor can single statements, one call after another.
      await c.execute('COMMIT').catch(() => {});
      await c.execute('SET default_transaction_read_only = off').catch(() => {});
      await c.execute('SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE').catch(() => {});
      await assert.rejects(c.execute(insert), PermissionDeniedError);
      await assert.rejects(
        c.execute(`DO $$ BEGIN PERFORM set_config('transaction_read_only', 'off', false); ${insert}; END $$`),
        HeliosDBError,
      );
      await assert.rejects(c.execute(`DO $$ BEGIN COMMIT; ${insert}; END $$`), HeliosDBError);
      await assert.rejects(c.query(`WITH x AS (${insert} RETURNING 1) SELECT * FROM x`), PermissionDeniedError);
      // A batch cannot either: transaction control in it is refused, and its writes fail inside the READ ONLY block.
      await assert.rejects(
        c.rpc.executeBatch({
          statements: [
            { sql: 'COMMIT' },
            { sql: 'SET default_transaction_read_only = off' },
            { sql: 'COMMIT' },
            { sql: insert },
            { sql: insert },
          ],
          atomic: false,
        }),
      );
      await assert.rejects(
        c.rpc.executeBatch({ statements: [{ sql: 'SET transaction_read_only = off' }, { sql: insert }], atomic: false }),
        /is refused for a read-only API key/,
      );
      const batch = await c.rpc.executeBatch({
        statements: [{ sql: insert }, { sql: `SELECT set_config('transaction_read_only', 'off', false)` }, { sql: insert }],
        atomic: false,
      });
      assert.ok(
        batch.results.every((r) => r.error !== undefined),
        'every statement of the batch failed',
      );
      await assert.rejects(c.rpc.executeBatch({ statements: [{ sql: 'COMMIT' }, { sql: insert }], atomic: true }));
      // An interactive transaction of the key is READ ONLY whatever it asks for; SQL cannot end it.
      const tx = await c.begin({ readOnly: false });
      await assert.rejects(tx.execute('COMMIT'), PermissionDeniedError);
      await assert.rejects(tx.execute(insert), PermissionDeniedError);
      await tx.rollback().catch(() => {});
    }
    assert.equal(await rows(), before, 'no row was written');
    // The role itself may write: the key alone made the difference.
    await writer.execute(insert);
  });

  test("one principal cannot use another's transaction", async () => {
    const tx = await writer.begin();
    try {
      await assert.rejects(reader.rpc.query({ sql: 'SELECT 1', transactionId: tx.id }), (e: unknown) =>
        /not open on this server/.test(String(e)),
      );
      await assert.rejects(readOnlyKey.rpc.commit({ transactionId: tx.id }));
      await assert.rejects(reader.rpc.savepoint({ transactionId: tx.id, name: 'x' }));
      await tx.execute(`INSERT INTO ${f.table} VALUES (3, 'tx')`);
      await tx.commit();
    } finally {
      if (!tx.finished) await tx.rollback();
    }
  });
});
