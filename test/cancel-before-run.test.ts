/**
 * A call its caller gave up on never runs afterwards: a statement cancelled or past its deadline
 * while it waited its turn (in a transaction, or for a connection) is not applied; and COPY FROM's
 * own failures: a source that throws is the caller's error with nothing applied, and a COPY whose
 * answer is lost is settled by its key (never a crash, on either listener).
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CancelledError, createClient, HeliosDBError, TimeoutError } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { uniqueName, useServer } from './helpers/server.js';

describeEachBackend('calls given up on', (backend) => {
  const server = useServer(backend);
  const count = async (c: ReturnType<typeof createClient>, table: string) =>
    (await c.queryOne<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).n;

  test('a statement cancelled or timed out while queued in a transaction is not applied', async () => {
    const ts = server();
    const c = createClient({ url: ts.server.grpcUrl, minConnections: 0 });
    const table = uniqueName('queued');
    await c.execute(`CREATE TABLE ${table} (id int)`);
    try {
      for (const how of ['signal', 'deadline'] as const) {
        const tx = await c.begin();
        const slow = tx.execute('SELECT pg_sleep(0.4)');
        const ac = new AbortController();
        const q = tx.execute(`INSERT INTO ${table} VALUES (1)`, [], how === 'signal' ? { signal: ac.signal } : { timeoutMs: 100 });
        setTimeout(() => ac.abort(), 100);
        const err = await q.then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(err instanceof (how === 'signal' ? CancelledError : TimeoutError), `${how}: ${String(err)}`);
        await slow;
        await tx.commit();
        assert.equal(await count(c, table), 0, `${how}: the queued INSERT never ran`);
      }
    } finally {
      await c.execute(`DROP TABLE ${table}`);
      await c.close();
    }
  });

  test("copyFrom: a source that throws is the caller's error, nothing applied; a lost answer is settled, on both listeners", async () => {
    const ts = server();
    for (const url of [ts.server.grpcUrl, ts.server.httpUrl!]) {
      const c = createClient({ url, minConnections: 0 });
      const table = uniqueName('copy');
      await c.execute(`CREATE TABLE ${table} (id int)`);
      try {
        const broken = await c
          .copyFrom(
            `COPY ${table} FROM STDIN`,
            (async function* () {
              yield '1\n';
              throw new Error('source broke');
            })(),
          )
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        assert.ok(broken instanceof Error && /source broke/.test(broken.message), `the source's error (${String(broken)})`);
        assert.equal(await count(c, table), 0);
        if (backend.name === 'postgresql') {
          // The COPY outlives its deadline (a slow trigger): its answer is lost, and settled.
          await c.execute(
            `CREATE FUNCTION ${table}_slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$`,
          );
          await c.execute(`CREATE TRIGGER slow AFTER INSERT ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION ${table}_slow()`);
          const r = await c.copyFrom(`COPY ${table} FROM STDIN`, '7\n', { timeoutMs: 200 }).then(
            (v) => v,
            (e: unknown) => e,
          );
          const n = await count(c, table);
          if (r instanceof Error) {
            assert.ok(
              r instanceof HeliosDBError && ['NOT_APPLIED', 'TIMEOUT', 'AMBIGUOUS_RESULT'].includes(r.code),
              `a clear outcome (${String(r)})`,
            );
            if (r.code !== 'AMBIGUOUS_RESULT') assert.equal(n, 0, 'a definite failure wrote nothing');
          } else {
            assert.equal((r as { rowCount: number }).rowCount, 1);
            assert.equal(n, 1, 'settled: applied once');
          }
        }
      } finally {
        await c.execute(`DROP TABLE ${table} CASCADE`).catch(() => {});
        await c.execute(`DROP FUNCTION IF EXISTS ${table}_slow()`).catch(() => {});
        await c.close();
      }
    }
  });
});
