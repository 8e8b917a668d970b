/**
 * PostgreSQL drivers no one here wrote, against heliosdb's PostgreSQL port on both backends, with
 * and without authentication: a node-postgres Pool of 8 and postgres.js (max 8) running
 * concurrent transactions with named prepared statements, and a psycopg 3 script (Debian's
 * python3-psycopg) with a transaction, prepared statements and COPY both ways. Also: settings
 * follow their client, CancelRequests reach the right work, and the embedded engine refuses what
 * it cannot keep to one client, in order and without harm to the connection.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import postgres from 'postgres';
import { describeEachBackend } from './helpers/backends.js';
import { type PgPortServer, pgPortServer, runTool } from './pgwire-fixture.js';

/** A connected client whose late errors (the server's shutdown) are ignored. */
async function client(config: pg.ClientConfig): Promise<pg.Client> {
  const c = new pg.Client(config);
  c.on('error', () => {});
  await c.connect();
  return c;
}

/** Sends a CancelRequest for `c` to the pg port. */
function sendCancel(port: number, c: pg.Client): Promise<void> {
  const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => s.end(serialize.cancel(processID, secretKey)));
    s.on('close', () => resolve());
    s.on('error', reject);
  });
}

function postgresJs(s: PgPortServer) {
  const c = s.pgConfig;
  return postgres({
    host: String(c.host),
    port: s.port,
    user: String(c.user),
    pass: String(c.password ?? ''),
    database: 'postgres',
    max: 8,
    ssl: c.ssl ? { ca: (c.ssl as { ca: string }).ca, servername: 'localhost' } : false,
    connection: c.options ? { search_path: String(c.options).replace('-c search_path=', '') } : {},
    onnotice: () => {},
  });
}

const psycopgScript = `
import json, psycopg, io
with psycopg.connect("") as conn:
    conn.execute("CREATE TABLE pgw_py (id int PRIMARY KEY, v text)")
    conn.commit()
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO pgw_py VALUES (%s, %s)", [(i, "py%d" % i) for i in range(1, 21)])
    with conn.cursor() as cur:
        with cur.copy("COPY pgw_py FROM STDIN") as copy:
            for i in range(21, 31):
                copy.write_row((i, "copied"))
    conn.commit()
    out = []
    with conn.cursor() as cur:
        with cur.copy("COPY (SELECT id, v FROM pgw_py WHERE id > 25 ORDER BY id) TO STDOUT") as copy:
            for row in copy.rows():
                out.append(list(row))
    n = conn.execute("SELECT count(*) FROM pgw_py WHERE id = %s OR v = %s", (3, "copied"), prepare=True).fetchone()[0]
    try:
        conn.execute("SELECT 1/0")
    except psycopg.errors.DivisionByZero as e:
        err = e.sqlstate
    conn.rollback()
    print(json.dumps({"out": out, "n": n, "err": err}))
`;

describeEachBackend('pg port: drivers', (backend) => {
  for (const auth of [false, true]) {
    const label = auth ? 'with authentication' : 'without authentication';

    test(`a node-postgres Pool of 8 runs concurrent transactions with named prepared statements, ${label}`, async (t) => {
      const s = await pgPortServer(t, backend, { auth });
      const pool = new pg.Pool({ ...s.pgConfig, max: 8 });
      pool.on('error', () => {});
      await pool.query('CREATE TABLE pgw_pool (id int PRIMARY KEY, n int)');
      const work = Array.from({ length: 24 }, async (_, i) => {
        const c = await pool.connect();
        try {
          await c.query('BEGIN');
          await c.query({ name: 'ins', text: 'INSERT INTO pgw_pool VALUES ($1, $2)', values: [i, i * 10] });
          const r = await c.query({ name: 'get', text: 'SELECT n FROM pgw_pool WHERE id = $1', values: [i] });
          assert.equal(r.rows[0].n, i * 10);
          await c.query(i % 6 === 5 ? 'ROLLBACK' : 'COMMIT');
        } finally {
          c.release();
        }
      });
      await Promise.all(work);
      await pool.end();
      const rows = await s.verify(`SELECT count(*)::int AS n, sum(n)::int AS total FROM ${s.qualify('pgw_pool')}`);
      // Four of the 24 rolled back (ids 5, 11, 17, 23).
      assert.equal(rows[0]!.n, 20);
      assert.equal(rows[0]!.total, (276 - (5 + 11 + 17 + 23)) * 10);
    });

    test(`postgres.js (max 8) runs concurrent transactions with its prepared statements, ${label}`, async (t) => {
      const s = await pgPortServer(t, backend, { auth });
      const sql = postgresJs(s);
      await sql`CREATE TABLE pgw_pgjs (id int PRIMARY KEY, who text)`;
      await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          sql.begin(async (tx) => {
            await tx`INSERT INTO pgw_pgjs VALUES (${i}, ${'pgjs'})`;
            const [r] = await tx`SELECT count(*)::int AS n FROM pgw_pgjs WHERE id = ${i}`;
            assert.equal(r!.n, 1);
          }),
        ),
      );
      await assert.rejects(
        sql.begin(async (tx) => {
          await tx`INSERT INTO pgw_pgjs VALUES (${100}, ${'rolled back'})`;
          await tx`INSERT INTO pgw_pgjs VALUES (${0}, ${'duplicate'})`;
        }),
        (e: { code?: string }) => e.code === '23505',
      );
      await sql.end();
      const rows = await s.verify(`SELECT count(*)::int AS n FROM ${s.qualify('pgw_pgjs')}`);
      assert.equal(rows[0]!.n, 24);
    });

    test(`a psycopg 3 script runs a transaction, prepared statements and COPY both ways, ${label}`, async (t) => {
      const s = await pgPortServer(t, backend, { auth });
      const r = await runTool('/usr/bin/python3', ['-c', psycopgScript], s.env);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { out: [string, string][]; n: number; err: string };
      assert.deepEqual(
        out.out,
        [26, 27, 28, 29, 30].map((i) => [String(i), 'copied']),
      );
      assert.equal(out.n, 11);
      assert.equal(out.err, '22012');
      const rows = await s.verify(`SELECT count(*)::int AS n FROM ${s.qualify('pgw_py')}`);
      assert.equal(rows[0]!.n, 30);
    });
  }

  test('settings follow their client while others use the session', async (t) => {
    const s = await pgPortServer(t, backend, { auth: false });
    const a = await client(s.pgConfig);
    const b = await client(s.pgConfig);
    t.after(async () => {
      await a.end();
      await b.end();
    });
    const zoneB = (await b.query('SHOW TimeZone')).rows[0].TimeZone;
    await a.query("SET TimeZone = 'Asia/Tokyo'");
    await a.query("SET application_name = 'client a'");
    assert.equal((await b.query('SHOW TimeZone')).rows[0].TimeZone, zoneB);
    await b.query('SET extra_float_digits = 0');
    assert.equal((await a.query('SHOW TimeZone')).rows[0].TimeZone, 'Asia/Tokyo');
    assert.equal((await a.query('SHOW application_name')).rows[0].application_name, 'client a');
    assert.equal((await a.query('SHOW extra_float_digits')).rows[0].extra_float_digits, '1');
    assert.equal((await b.query('SHOW extra_float_digits')).rows[0].extra_float_digits, '0');
  });

  test('a CancelRequest reaches the right client', async (t) => {
    const s = await pgPortServer(t, backend, { auth: false });
    const a = await client(s.pgConfig);
    const b = await client(s.pgConfig);
    t.after(async () => {
      await a.end();
      await b.end();
    });
    if (backend.name === 'pglite') {
      // A holds the one session in a transaction block: B's query waits, and its cancel removes it.
      await a.query('BEGIN');
      const waiting = b.query('SELECT 1 AS one').then(
        () => undefined,
        (e: { code?: string }) => e,
      );
      await new Promise((r) => setTimeout(r, 100));
      await sendCancel(s.port, b);
      assert.equal((await waiting)?.code, '57014');
      assert.equal((await a.query('SELECT 2 AS two')).rows[0].two, 2);
      await a.query('COMMIT');
    } else {
      const sleeping = b.query('SELECT pg_sleep(30)').then(
        () => undefined,
        (e: { code?: string }) => e,
      );
      await new Promise((r) => setTimeout(r, 300));
      await sendCancel(s.port, b);
      assert.equal((await sleeping)?.code, '57014');
      assert.equal((await a.query('SELECT 2 AS two')).rows[0].two, 2);
    }
    // A cancel with a wrong secret does nothing.
    const wrong = Object.assign(Object.create(b), { processID: (b as unknown as { processID: number }).processID, secretKey: 12345 });
    await sendCancel(s.port, wrong as pg.Client);
    assert.equal((await b.query('SELECT 3 AS three')).rows[0].three, 3);
  });

  test('what cannot be kept to one client is refused on PGlite, in order, and the connection goes on', {
    skip: backend.name !== 'pglite' ? "PostgreSQL runs every statement in the client's own session" : false,
  }, async (t) => {
    const s = await pgPortServer(t, backend, { auth: false });
    const c = await client(s.pgConfig);
    t.after(() => c.end());
    for (const sql of [
      'LISTEN pgw_channel; SELECT 1',
      'PREPARE pgw_p AS SELECT 1',
      'CREATE TEMP TABLE pgw_tmp (x int)',
      'SELECT pg_advisory_lock(1)',
      'DISCARD ALL',
    ]) {
      await assert.rejects(
        c.query(sql),
        (e: { code?: string; message?: string }) => e.code === '0A000' && /embedded engine/.test(e.message ?? ''),
        sql,
      );
      // The extended protocol gets the same refusal.
      await assert.rejects(c.query({ text: sql, values: [], name: `n${sql.length}` }), (e: { code?: string }) => e.code === '0A000', sql);
    }
    // In a transaction block the refusal fails the block, as any error does.
    await c.query('BEGIN');
    await assert.rejects(c.query('LISTEN pgw_channel'), (e: { code?: string }) => e.code === '0A000');
    await assert.rejects(c.query('SELECT 1'), (e: { code?: string }) => e.code === '25P02');
    await c.query('ROLLBACK');
    assert.equal((await c.query({ text: 'SELECT $1::int AS n', values: [7] })).rows[0].n, 7);
  });
});
