/**
 * ExecuteBatch `parameter_columns` (executeMany's parameter sets as one compact column per
 * parameter) on both backends: the rows arrive as sent; every malformed request (counts that
 * disagree, a truncated cell, bytes that are not UTF-8, a NUL, no columns, columns beside
 * parameter sets) is refused with INVALID_ARGUMENT and applies nothing; and a client whose server
 * ignores the field (one that predates it) sends parameter sets instead, each row once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { createClient } from '@heliosdb/client';
import { CompactWriter, ErrorDetailSchema, ErrorReason, ExecuteBatchRequestSchema } from '@heliosdb/client/wire';
import { describeEachBackend } from './helpers/backends.js';
import { startTestServer, type TestServer, uniqueName } from './helpers/server.js';

/** A compact column of these texts (`null` for NULL). */
function column(cells: (string | null)[]): Uint8Array {
  const w = new CompactWriter(64);
  for (const c of cells) {
    if (c === null) w.null();
    else w.text(c);
  }
  return w.finish();
}

describeEachBackend('ExecuteBatch parameter_columns', (backend) => {
  let ts: TestServer;
  const t = uniqueName('pcols');
  const insert = `INSERT INTO ${t} (id, name) VALUES ($1, $2)`;

  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
    await ts.db.execute({ sql: `CREATE TABLE ${t} (id int PRIMARY KEY, name text)` });
  });
  after(async () => {
    await ts?.db.execute({ sql: `DROP TABLE IF EXISTS ${t}` }).catch(() => {});
    await ts?.close();
  });

  const reset = () => ts.db.execute({ sql: `TRUNCATE ${t}` });

  test('the rows arrive as sent, NULLs and non-ASCII text included', async () => {
    await reset();
    const names = ['plain', null, 'ünïcødé ✓ 🙂', '', 'quote " back\\slash', 'x'.repeat(5000)];
    const res = await ts.db.executeBatch({
      sql: insert,
      atomic: true,
      parameterColumns: { setCount: names.length, columns: [column(names.map((_, i) => String(i + 1))), column(names)] },
    });
    assert.equal(res.results.length, names.length);
    assert.equal(res.rowsAffected, BigInt(names.length));
    const back = await ts.db.query({ sql: `SELECT id, name FROM ${t} ORDER BY id` });
    const got = back.result!.rows!.values.map((r) => (r.values[1].kind.case === 'text' ? r.values[1].kind.value : null));
    assert.deepEqual(got, names);
  });

  const refused: [string, () => ReturnType<typeof create<typeof ExecuteBatchRequestSchema>>, ErrorReason][] = [
    [
      'a column with more cells than set_count',
      () =>
        create(ExecuteBatchRequestSchema, {
          sql: insert,
          parameterColumns: { setCount: 2, columns: [column(['1', '2', '3']), column(['a', 'b', 'c'])] },
        }),
      ErrorReason.INVALID_REQUEST,
    ],
    [
      'a column with fewer cells than set_count',
      () =>
        create(ExecuteBatchRequestSchema, {
          sql: insert,
          parameterColumns: { setCount: 3, columns: [column(['1', '2', '3']), column(['a', 'b'])] },
        }),
      ErrorReason.INVALID_REQUEST,
    ],
    [
      'a set_count far beyond the bytes sent',
      () =>
        create(ExecuteBatchRequestSchema, {
          sql: insert,
          parameterColumns: { setCount: 4_000_000_000, columns: [column(['1']), column(['a'])] },
        }),
      ErrorReason.INVALID_REQUEST,
    ],
    [
      'more parameter sets than one request may carry',
      () =>
        create(ExecuteBatchRequestSchema, {
          sql: `${insert} ON CONFLICT DO NOTHING`,
          parameterColumns: {
            setCount: 100_001,
            columns: [column(Array.from({ length: 100_001 }, (_, i) => String(i))), new Uint8Array(100_001)],
          },
        }),
      ErrorReason.INVALID_REQUEST,
    ],
    [
      'a truncated cell',
      () =>
        create(ExecuteBatchRequestSchema, {
          sql: insert,
          parameterColumns: { setCount: 1, columns: [new Uint8Array([11, 0x31, 0x32]), column(['a'])] },
        }),
      ErrorReason.INVALID_REQUEST,
    ],
    [
      'bytes that are not UTF-8',
      () =>
        create(ExecuteBatchRequestSchema, {
          sql: insert,
          parameterColumns: { setCount: 2, columns: [column(['1', '2']), new Uint8Array([2, 0x61, 3, 0xc3, 0x28])] },
        }),
      ErrorReason.INVALID_PARAMETER,
    ],
    [
      'a NUL character',
      () =>
        create(ExecuteBatchRequestSchema, {
          sql: insert,
          parameterColumns: { setCount: 2, columns: [column(['1', '2']), column(['a', 'b\0c'])] },
        }),
      ErrorReason.INVALID_PARAMETER,
    ],
    [
      'a NUL character, in a statement that runs set by set',
      () =>
        create(ExecuteBatchRequestSchema, {
          sql: `${insert} ON CONFLICT DO NOTHING`,
          parameterColumns: { setCount: 2, columns: [column(['1', '2']), column(['a', 'b\0c'])] },
        }),
      ErrorReason.INVALID_PARAMETER,
    ],
    [
      'bytes that are not UTF-8, in a statement that runs set by set',
      () =>
        create(ExecuteBatchRequestSchema, {
          sql: `${insert} ON CONFLICT DO NOTHING`,
          parameterColumns: { setCount: 2, columns: [column(['1', '2']), new Uint8Array([2, 0x61, 3, 0xc3, 0x28])] },
        }),
      ErrorReason.INVALID_PARAMETER,
    ],
    [
      'no columns',
      () => create(ExecuteBatchRequestSchema, { sql: insert, parameterColumns: { setCount: 5, columns: [] } }),
      ErrorReason.INVALID_REQUEST,
    ],
    [
      'columns beside parameter sets',
      () =>
        create(ExecuteBatchRequestSchema, {
          sql: insert,
          parameterSets: [{ values: [] }],
          parameterColumns: { setCount: 1, columns: [column(['1']), column(['a'])] },
        }),
      ErrorReason.INVALID_REQUEST,
    ],
  ];
  for (const [what, req, reason] of refused) {
    test(`refused, nothing applied: ${what}`, async () => {
      await reset();
      await assert.rejects(ts.db.executeBatch(req()), (e: unknown) => {
        const ce = ConnectError.from(e);
        assert.equal(ce.code, Code.InvalidArgument, ce.message);
        assert.equal(ce.findDetails(ErrorDetailSchema)[0]?.reason, reason, ce.message);
        return true;
      });
      const r = await ts.db.query({ sql: `SELECT count(*) AS n FROM ${t}` });
      assert.equal(r.result!.rows!.values[0].values[0].kind.value, 0n);
    });
  }

  test('the SDK sends executeMany as columns, and parameter sets to a server that ignores them', async () => {
    let columnsSent = 0;
    let setsSent = 0;
    let strip = false;
    // Stands for a server that predates parameter_columns: the field never reaches it.
    const oldServer: Interceptor = (next) => async (req) => {
      const m = req.message as { parameterColumns?: unknown; parameterSets?: unknown[] };
      if (req.method.name === 'ExecuteBatch') {
        if (m.parameterColumns) columnsSent++;
        if (m.parameterSets?.length) setsSent++;
        if (strip) m.parameterColumns = undefined;
      }
      return next(req);
    };
    const client = createClient({ url: ts.server.grpcUrl, interceptors: [oldServer] });
    try {
      const sets = Array.from({ length: 300 }, (_, i) => [i + 1, i % 3 === 0 ? null : `n${i}`]);
      await reset();
      const a = await client.executeMany(insert, sets);
      assert.equal(a.rowCount, 300);
      assert.deepEqual([columnsSent, setsSent], [1, 0]);
      strip = true;
      await reset();
      const b = await client.executeMany(insert, sets);
      assert.equal(b.rowCount, 300);
      assert.equal(b.results.length, 300);
      assert.deepEqual([columnsSent, setsSent], [2, 1]);
      const n = await client.query<{ n: bigint; nulls: bigint }>(
        `SELECT count(*) AS n, count(*) FILTER (WHERE name IS NULL) AS nulls FROM ${t}`,
      );
      assert.deepEqual(n.rows[0], { n: 300n, nulls: 100n });
    } finally {
      await client.close();
    }
  });
});
