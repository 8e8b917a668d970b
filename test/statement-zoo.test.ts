/**
 * The statement zoo: one instance of every command of PostgreSQL 15's "SQL Commands" reference
 * (ABORT ... VALUES, and variants the server treats differently) sent through the client's
 * query, execute, batch, stream and prepare (described, then run), inside a transaction and,
 * for transaction control, in a reserved session, on PGlite and on PostgreSQL. Each is served
 * (with its command tag, rows where it returns some, and its effect in the database) or refused
 * with a typed error that says why (the policy's reason, or PostgreSQL's SQLSTATE); after each
 * call the server is alive, no transaction is left open and the session is as it was. A subset
 * also runs over the server's http:// URL. Rows: test/helpers/zoo-commands-*.ts.
 *
 * Set ZOO_LOG=<file> to append every mismatch (row, column, what came back) to a file.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { createClient, type HeliosDBClient, type Notification, QueryError } from '@heliosdb/client';
import { describeEachBackend } from './helpers/backends.js';
import { rejects } from './helpers/assert-error.js';
import { pg15Commands } from './helpers/pg15-commands.js';
import { startTestServer, type TestServer, waitFor } from './helpers/server.js';
import { type Column, columns, type ResolvedRow, resolveRow, type ZooRow } from './helpers/statement-zoo.js';
import { alterRows } from './helpers/zoo-commands-alter.js';
import { beginRows } from './helpers/zoo-commands-begin.js';
import { createRows } from './helpers/zoo-commands-create.js';
import { dropRows } from './helpers/zoo-commands-drop.js';
import { restRows } from './helpers/zoo-commands-rest.js';
import { fixtureCleanup, fixtureSetup, leftoverSql } from './helpers/zoo-fixture.js';
import { assertAfter, assertOutcome, describeSeen, fingerprint, runSteps, send, type ZooTarget } from './helpers/zoo-runner.js';

/** Counts a column's expectation: served, refused, or marked todo (the server is wrong there). */
function count(tally: { served: number; refused: number; todo: number }, row: ResolvedRow, column: Column): void {
  if (row.todo[column]) tally.todo++;
  else if (row.expect[column]!.ok) tally.served++;
  else tally.refused++;
}

/** Every row of the zoo for the run prefix `p`. */
function zooRows(p: string, lo: number): ZooRow[] {
  return [...alterRows(p, lo), ...beginRows(p), ...createRows(p), ...dropRows(p), ...restRows(p)];
}

const log = process.env.ZOO_LOG;

test('the zoo has a row for every command of the PostgreSQL 15 reference, and no other', () => {
  const commands = new Set(zooRows('p_', 1).map((r) => r.command));
  assert.deepEqual([...commands].sort(), [...pg15Commands].sort());
});

describeEachBackend('statement zoo', (backend) => {
  const p = `zoo${randomBytes(3).toString('hex')}_`;
  const lo = randomInt(3_000_000_000, 4_000_000_000);
  const rows = zooRows(p, lo).map((r) => resolveRow(r, backend.name));
  const tally = { served: 0, refused: 0, todo: 0 };
  const httpTally = { served: 0, refused: 0, todo: 0 };
  let ts: TestServer;
  let grpc: HeliosDBClient;
  let http: HeliosDBClient;
  let target: ZooTarget;

  before(async () => {
    // One database connection on PostgreSQL, so that the checks after a call see the session it ran on.
    ts = await startTestServer(backend, { poolSize: 1, databaseApplicationName: `${p}server` });
    const common = { timeoutMs: 8000, applicationName: `${p}client`, minConnections: 1 };
    grpc = createClient({ url: ts.server.grpcUrl, ...common });
    http = createClient({ url: ts.server.httpUrl!, ...common });
    await runSteps(grpc, fixtureCleanup(p));
    await runSteps(grpc, fixtureSetup(p));
    target = { client: grpc, admin: ts.admin, appNames: [`${p}server`, `${p}client`], baseline: await fingerprint(grpc) };
  });

  after(async () => {
    await runSteps(grpc, fixtureCleanup(p)).catch(() => {});
    await http?.close();
    await grpc?.close();
    await ts?.close();
  });

  /**
   * Whether the row's objects must be made again before its next column: after a column that ran
   * the statement, or one whose checks failed. A column that was refused or failed was checked to
   * have had no effect, so the next one reuses what the setup made (this halves the file's calls).
   */
  let dirty = true;

  /** One column of one row, then the checks every call must pass. */
  async function runColumn(client: HeliosDBClient, row: ResolvedRow, column: Column): Promise<void> {
    const expected = row.expect[column]!;
    if (dirty) await runSteps(grpc, [...row.cleanup, ...row.setup]);
    dirty = true;
    const seen = await send(client, row, column);
    try {
      assertOutcome(seen, expected, column);
      const effect = column === 'session' ? row.session?.effect : row.effect;
      await assertAfter(target, effect, expected.ok && column !== 'prepare');
      dirty = expected.ok && column !== 'prepare';
    } catch (e) {
      if (log)
        appendFileSync(
          log,
          `${backend.name}\t${row.title}\t${column}\t${describeSeen(seen)}\t${String((e as Error).message)
            .replace(/\s+/g, ' ')
            .slice(0, 200)}\n`,
        );
      throw e;
    }
  }

  for (const row of rows) {
    test(row.title, { timeout: 60_000 }, async (t) => {
      try {
        for (const column of [...columns, 'session' as const]) {
          if (!row.expect[column]) continue;
          count(tally, row, column);
          await t.test(column, { todo: row.todo[column] }, () => runColumn(grpc, row, column));
        }
      } finally {
        await runSteps(grpc, row.cleanup);
        dirty = true;
      }
    });
  }

  for (const row of rows.filter((r) => r.http)) {
    test(`${row.title} [http]`, { timeout: 60_000 }, async (t) => {
      try {
        for (const column of ['query', 'execute', 'batch', 'stream', 'prepare'] as const) {
          if (!row.expect[column]) continue;
          count(httpTally, row, column);
          await t.test(column, { todo: row.todo[column] }, () => runColumn(http, row, column));
        }
      } finally {
        await runSteps(grpc, row.cleanup);
        dirty = true;
      }
    });
  }

  test('the zoo leaves nothing behind', async (t) => {
    await runSteps(grpc, fixtureCleanup(p));
    const left = await grpc.query<{ n: number }>(leftoverSql(p));
    assert.equal(left.rows[0].n, 0, `objects named ${p}* are left`);
    const lob = await grpc.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_largeobject_metadata WHERE oid = ${lo}`);
    assert.equal(lob.rows[0].n, 0, 'the large object is gone');
    const conf = await grpc.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_file_settings WHERE name = 'track_functions' AND sourcefile LIKE '%postgresql.auto.conf'`,
    );
    assert.equal(conf.rows[0].n, 0, 'ALTER SYSTEM was reset');
    assert.equal(await grpc.healthCheck(), true);
    const line = (x: typeof tally) => `served ${x.served}, refused ${x.refused}, todo ${x.todo}`;
    t.diagnostic(`${backend.name}: ${rows.length} rows; grpc:// calls ${line(tally)}; http:// calls ${line(httpTally)}`);
  });
});

/**
 * Where the refusals point, and what the server keeps about a session that a caller's own SQL
 * can take away. A server with default options (a listener takes a pooled connection on
 * PostgreSQL; the zoo's server has only one).
 */
describeEachBackend("statement zoo: the APIs the refusals name, and the server's own session state", (backend) => {
  const p = `zoa${randomBytes(3).toString('hex')}_`;
  let ts: TestServer;
  let client: HeliosDBClient;

  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
    client = createClient({ url: ts.server.grpcUrl, timeoutMs: 8000 });
    await client.execute(`CREATE TABLE ${p}t (a int, b text)`);
  });

  after(async () => {
    await client?.execute(`DROP TABLE IF EXISTS ${p}t`).catch(() => {});
    await client?.close();
    await ts?.close();
  });

  test('LISTEN is refused; client.listen, which the refusal names, gets a NOTIFY sent by query', async () => {
    const e = await rejects(client.query(`LISTEN ${p}ch`), QueryError);
    assert.equal(e.reason, 'USE_LISTEN_API');
    const got: Notification[] = [];
    const listener = await client.listen(`${p}ch`, (n) => got.push(n));
    try {
      await client.query(`NOTIFY ${p}ch, 'zoo'`);
      assert.ok(await waitFor(() => got.length > 0, 5000), 'the notification arrives');
      assert.equal(got[0].payload, 'zoo');
    } finally {
      await listener.unlisten();
    }
  });

  test('COPY FROM STDIN and TO STDOUT are refused; client.copyFrom and client.copyTo run them', async () => {
    assert.equal((await rejects(client.execute(`COPY ${p}t FROM STDIN`), QueryError)).reason, 'USE_COPY_API');
    assert.equal((await rejects(client.query(`COPY ${p}t TO STDOUT`), QueryError)).reason, 'USE_COPY_API');
    const written = await client.copyFrom(`COPY ${p}t FROM STDIN`, '1\tone\n2\ttwo\n');
    assert.equal(written.rowCount, 2);
    const out = client.copyTo(`COPY (SELECT * FROM ${p}t ORDER BY a) TO STDOUT`);
    const chunks: Uint8Array[] = [];
    for await (const c of out) chunks.push(c);
    assert.equal(Buffer.concat(chunks).toString(), '1\tone\n2\ttwo\n');
  });

  test("a caller's DISCARD ALL leaves client.listen subscribers listening", async () => {
    // On PGlite the DISCARD ALL ends the one session's listens until the server listens again,
    // and subscribers are told with a `missed` event; on PostgreSQL they listen on their own connection.
    const got: string[] = [];
    const missed: string[] = [];
    const listener = await client.listen(`${p}dch`, (n) => (n.missed ? missed.push(n.reason ?? '') : got.push(n.payload)));
    try {
      await client.execute(`NOTIFY ${p}dch, 'before'`);
      assert.ok(await waitFor(() => got.length === 1, 5000), 'the first notification arrives');
      assert.equal((await client.execute('DISCARD ALL')).command, 'DISCARD ALL');
      await client.execute(`NOTIFY ${p}dch, 'after'`);
      assert.ok(await waitFor(() => got.length === 2, 3000), `the notification after DISCARD ALL arrives (got ${JSON.stringify(got)})`);
      assert.deepEqual(got, ['before', 'after']);
      assert.equal(missed.length, backend.name === 'pglite' ? 1 : 0, `missed events: ${JSON.stringify(missed)}`);
    } finally {
      await listener.unlisten();
    }
  });

  for (const reset of ['DEALLOCATE ALL', 'DISCARD ALL']) {
    test(`${reset} in a reserved session leaves the session's prepared statements usable`, async () => {
      const session = await client.reserve();
      try {
        const ps = await session.prepare('SELECT 41 + 1 AS n');
        assert.deepEqual((await ps.query()).rows, [{ n: 42 }]);
        await session.execute(reset);
        assert.deepEqual((await ps.query()).rows, [{ n: 42 }], 'the statement runs again (the server parses it again)');
      } finally {
        await session.release();
      }
    });
  }

  test('DEALLOCATE ALL in a transaction leaves its prepared statements usable', async () => {
    const tx = await client.begin();
    try {
      const ps = await tx.prepare('SELECT 2 + 2 AS n');
      assert.deepEqual((await ps.query()).rows, [{ n: 4 }]);
      await tx.execute('DEALLOCATE ALL');
      assert.deepEqual((await ps.query()).rows, [{ n: 4 }], 'the statement runs again (the server parses it again)');
    } finally {
      await tx.rollback().catch(() => {});
    }
  });
});
