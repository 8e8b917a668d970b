/**
 * Independent attack pass (README: "leaving early cancels"; docs/security.md, "Threat model": no
 * principal may "take every database connection for itself"): a client that leaves `copyTo` or
 * `stream` after the first chunk. Found by the attack pass of issues 11 and 12
 * (/work/notes/attack-report.md):
 *
 * - held: a stream left early gives its connection back;
 * - was broken, fixed: a copyTo left early kept its backend blocked writing to the server
 *   (PostgreSQL `ClientWrite`, where statement_timeout does not fire), so each one took a pooled
 *   connection for good; on PGlite the one session, so nothing was served any more.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { describeEachBackend } from './helpers/backends.js';
import { freshServer, removeFreshScratch } from './helpers/fresh.js';

after(() => removeFreshScratch());

const poolSize = 2;
/** Rows far larger than what the transport buffers, so the database is still sending when the client leaves. */
const bigCopy = `COPY (SELECT repeat('x', 100000) FROM generate_series(1, 3000)) TO STDOUT`;
const bigSelect = `SELECT repeat('x', 100000) AS x FROM generate_series(1, 3000)`;

describeEachBackend('attack: leaving a large result early', (backend) => {
  const serverOptions = { poolSize, shutdownGraceMs: 1000, acquireTimeoutMs: 3000 };

  test('held: a stream left after its first row gives its connection back', { timeout: 120_000 }, async (t) => {
    const s = await freshServer(t, backend, { server: serverOptions });
    const { client } = s.client('grpc', { timeoutMs: 20_000 });
    for (let i = 0; i < poolSize + 1; i++) {
      for await (const row of client.stream(bigSelect)) {
        void row;
        break;
      }
    }
    assert.equal((await client.queryOne<{ n: number }>('SELECT 1 AS n', [], { timeoutMs: 8000 })).n, 1);
  });

  test('a copyTo left after its first chunk gives its connection back', { timeout: 180_000 }, async (t) => {
    const s = await freshServer(t, backend, { server: serverOptions });
    const { client } = s.client('grpc', { timeoutMs: 20_000 });
    for (let i = 0; i < poolSize + 1; i++) {
      for await (const chunk of client.copyTo(bigCopy)) {
        void chunk;
        break;
      }
    }
    // PostgreSQL cancels the COPY; the embedded engine cannot interrupt a statement, so it serves
    // again once it has produced (and the server drained) what each COPY started.
    let answer: number | Error = new Error('not asked');
    for (const until = Date.now() + (s.admin ? 0 : 90_000); ; ) {
      answer = await client.queryOne<{ n: number }>('SELECT 1 AS n', [], { timeoutMs: 8000 }).then(
        (r) => r.n,
        (e: Error) => e,
      );
      if (answer === 1 || Date.now() > until) break;
    }
    if (s.admin) {
      // Bounded wait for the server to end the COPYs it no longer sends anywhere (short: a backend
      // blocked in ClientWrite also holds up every DROP DATABASE ... WITH (FORCE) in the cluster).
      let left = 0;
      for (let i = 0; i < 20; i++) {
        const r = await s.admin.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY (SELECT repeat%' AND state = 'active' AND pid <> pg_backend_pid()`,
        );
        left = r.rows[0].n;
        if (left === 0) break;
        await new Promise((res) => setTimeout(res, 100));
      }
      // Free them for the cleanup (this test documents a leak; it must not leave one behind).
      await s.admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'COPY (SELECT repeat%' AND pid <> pg_backend_pid()`,
      );
      assert.equal(left, 0, 'no COPY is left running');
    }
    assert.equal(answer, 1, `the server still serves calls (${String(answer)})`);
  });
});
