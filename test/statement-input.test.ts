/**
 * Statement input the wire cannot carry or PostgreSQL cannot parse. More parameters than the protocol's 16-bit count: refused before the wire, by the client
 * (ParameterError) and by the server (INVALID_ARGUMENT), instead of wrapping the count around.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import { createClient, ParameterError } from '@heliosdb/client';
import { ValueSchema } from '@heliosdb/client/wire';
import { backends } from './helpers/backends.js';
import { expectDetail } from './helpers/errors.js';
import { useServer } from './helpers/server.js';

const server = useServer(backends[0]!, { httpPort: -1 });

test('70,000 parameters: ParameterError from the client, INVALID_PARAMETER from the server; 65,535 still run', async () => {
  const ts = server();
  const client = createClient({ url: ts.server.grpcUrl });
  try {
    const many = Array.from({ length: 70_000 }, (_, i) => i);
    await assert.rejects(client.query('SELECT $1::int AS n', many), ParameterError);
    const one = create(ValueSchema, { kind: { case: 'int32', value: 1 } });
    const d = await expectDetail(
      ts.db.query({ sql: 'SELECT $1::int AS n', params: Array.from({ length: 70_000 }, () => one) }),
      Code.InvalidArgument,
    );
    assert.equal(d.reason, 'INVALID_PARAMETER');
    const sql = `SELECT cardinality(ARRAY[${Array.from({ length: 65_535 }, (_, i) => `$${i + 1}::int`).join(', ')}]) AS n`;
    const r = await client.queryOne<{ n: number }>(
      sql,
      Array.from({ length: 65_535 }, () => 1),
    );
    assert.equal(r.n, 65_535);
  } finally {
    await client.close();
  }
});

test('a syntax error says only that: PostgreSQL ran nothing of the script, so nothing committed', async () => {
  const ts = server();
  const client = createClient({ url: ts.server.grpcUrl });
  try {
    await client.execute('CREATE TABLE IF NOT EXISTS syntax_t (x int)');
    for (const sql of ['SELEC 1', 'INSERT INTO syntax_t VALUES (1); SELEC 2']) {
      const e = await client.execute(sql).then(
        () => undefined,
        (err: Error & { sqlstate?: string }) => err,
      );
      assert.equal(e?.sqlstate, '42601', sql);
      assert.doesNotMatch(e!.message, /committed/, sql);
    }
    assert.equal(
      (await client.queryOne<{ n: number }>('SELECT count(*)::int AS n FROM syntax_t')).n,
      0,
      'the INSERT before the error never ran',
    );
  } finally {
    await client.execute('DROP TABLE IF EXISTS syntax_t').catch(() => {});
    await client.close();
  }
});

test('a NUL character in the SQL text: INVALID_REQUEST from every RPC, and nothing of the text runs', async () => {
  const ts = server();
  const client = createClient({ url: ts.server.grpcUrl });
  try {
    await client.execute('CREATE TABLE IF NOT EXISTS nul_t (x int)');
    const sql = 'INSERT INTO nul_t VALUES (1);\u0000 SELECT 1';
    const calls: [string, () => Promise<unknown>][] = [
      ['query', () => client.query(sql)],
      ['execute', () => client.execute(sql)],
      ['batch', () => client.batch([{ sql }])],
      [
        'stream',
        async () => {
          for await (const _ of client.stream(sql)) void _;
        },
      ],
      ['prepare', () => client.prepare(sql)],
    ];
    for (const [name, call] of calls) {
      const e = await call().then(
        () => undefined,
        (err: Error & { code?: string }) => err,
      );
      assert.ok(e, `${name} refused`);
      assert.equal(e.code, 'INVALID_REQUEST', `${name}: ${e.message}`);
      assert.match(e.message, /NUL character/, name);
      assert.doesNotMatch(e.message, /committed/, name);
    }
    assert.equal((await client.queryOne<{ n: number }>('SELECT count(*)::int AS n FROM nul_t')).n, 0, 'nothing inserted');
  } finally {
    await client.execute('DROP TABLE IF EXISTS nul_t').catch(() => {});
    await client.close();
  }
});
