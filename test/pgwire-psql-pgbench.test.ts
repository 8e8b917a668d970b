/**
 * psql and pgbench (Debian's PostgreSQL 15 clients) against heliosdb's PostgreSQL port, on both
 * backends, with and without authentication: a psql script with `\copy` both ways, a transaction
 * and `\d`; a statement cancelled by its statement timeout (PostgreSQL; PGlite cannot enforce
 * one); `pgbench -i`, then eight clients on two threads in each query mode with no failed
 * transaction. Outcomes are counted in the database, outside the pg port.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { describeEachBackend } from './helpers/backends.js';
import { pgPortServer, runTool } from './pgwire-fixture.js';

const script = `\\set ON_ERROR_STOP 1
CREATE TABLE pgw_items (id int PRIMARY KEY, v text);
\\copy pgw_items FROM 'in.csv' WITH (FORMAT csv)
BEGIN;
INSERT INTO pgw_items VALUES (100, 'in a transaction');
UPDATE pgw_items SET v = 'updated' WHERE id = 1;
COMMIT;
BEGIN;
INSERT INTO pgw_items VALUES (200, 'rolled back');
ROLLBACK;
\\copy (SELECT * FROM pgw_items ORDER BY id) TO 'out.csv' WITH (FORMAT csv)
\\d pgw_items
`;

describeEachBackend('pg port: psql and pgbench', (backend) => {
  for (const auth of [false, true]) {
    const label = auth ? 'with authentication (TLS, a password)' : 'without authentication';

    test(`psql runs a script with \\copy both ways, a transaction and \\d, ${label}`, async (t) => {
      const s = await pgPortServer(t, backend, { auth });
      const dir = mkdtempSync(join(tmpdir(), 'pgw-psql-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(join(dir, 'in.csv'), '1,one\n2,"two, with a comma"\n3,\n');
      const r = await runTool('psql', ['-X', '-f', '-'], s.env, { input: script, cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /COPY 3/);
      assert.match(r.stdout, /Table "[^"]*pgw_items"/);
      assert.match(r.stdout, /id\s+\|\s+integer/);
      assert.equal(readFileSync(join(dir, 'out.csv'), 'utf8'), '1,updated\n2,"two, with a comma"\n3,\n100,in a transaction\n');
      const rows = await s.verify(`SELECT count(*)::int AS n FROM ${s.qualify('pgw_items')}`);
      assert.equal(rows[0]!.n, 4);
    });

    test(`a statement past its statement_timeout is cancelled, ${label}`, {
      skip: backend.name === 'pglite' ? 'PGlite cannot interrupt a running statement (docs/postgres-wire.md)' : false,
    }, async (t) => {
      const s = await pgPortServer(t, backend, { auth });
      const r = await runTool(
        'psql',
        ['-X', '-v', 'ON_ERROR_STOP=1', '-c', "SET statement_timeout = '200ms'", '-c', 'SELECT pg_sleep(30)'],
        s.env,
        { timeoutMs: 20_000 },
      );
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /canceling statement due to statement timeout/);
    });

    test(`pgbench -i, then -c 8 -j 2 in simple, extended and prepared mode without a failed transaction, ${auth ? 'with authentication (TLS, an API key)' : label}`, async (t) => {
      const s = await pgPortServer(t, backend, { auth });
      const init = await runTool('pgbench', ['-i', '-q'], s.env, { timeoutMs: 120_000 });
      assert.equal(init.code, 0, init.stderr);
      const accounts = await s.verify(`SELECT count(*)::int AS n FROM ${s.qualify('pgbench_accounts')}`);
      assert.equal(accounts[0]!.n, 100_000);
      let total = 0;
      for (const mode of ['simple', 'extended', 'prepared']) {
        const r = await runTool('pgbench', ['-c', '8', '-j', '2', '-T', '3', '-M', mode, '-n'], s.keyEnv, { timeoutMs: 60_000 });
        assert.equal(r.code, 0, `${mode}: ${r.stderr}`);
        assert.match(r.stdout, /number of failed transactions: 0 /, `${mode}: ${r.stdout}`);
        const processed = Number(/number of transactions actually processed: (\d+)/.exec(r.stdout)?.[1] ?? 0);
        assert.ok(processed > 0, `${mode}: ${r.stdout} ${r.stderr}`);
        t.diagnostic(`${mode}: ${/tps = [\d.]+/.exec(r.stdout)?.[0] ?? '?'}`);
        total += processed;
      }
      // Every transaction pgbench counted wrote one history row.
      const history = await s.verify(`SELECT count(*)::int AS n FROM ${s.qualify('pgbench_history')}`);
      assert.equal(history[0]!.n, total);
    });
  }
});
