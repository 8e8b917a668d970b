/**
 * StreamQuery: event order (header, row batches, complete), batch sizes, a 200k-row stream in
 * order, a client leaving mid-stream (the connection is freed and nothing keeps running), a
 * failure mid-stream (an error after the delivered rows, never repeated rows), and streams inside
 * transactions.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Code } from '@connectrpc/connect';
import type { StreamQueryRequest, StreamQueryResponse } from '../gen/heliosdb/v1/database_pb.js';
import { type Column, RowFormat } from '../gen/heliosdb/v1/value_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { StreamQueryRequestSchema } from '../gen/heliosdb/v1/database_pb.js';
import { describeEachBackend } from './helpers/backends.js';
import { expectCode, expectDetail } from './helpers/errors.js';
import {
  countRows,
  createTable,
  type DbClient,
  type ProtocolName,
  type TestServer,
  uniqueName,
  useServer,
  waitFor,
} from './helpers/server.js';
import { type CompactCell, compactRows, plain, plainRows, V, valueRows } from './helpers/values.js';

type StreamRequest = MessageInitShape<typeof StreamQueryRequestSchema>;

/** Everything a stream sent, checked for shape: one header first, rows, one complete last. */
interface Collected {
  columns: Column[];
  batches: number[];
  rows: (CompactCell | ReturnType<typeof plain>)[][];
  complete: Extract<StreamQueryResponse['event'], { case: 'complete' }>['value'] | undefined;
  error: unknown;
}

/** Reads a whole stream (or until it fails), decoding rows in either format. */
async function collect(db: DbClient, req: StreamRequest, signal?: AbortSignal): Promise<Collected> {
  const out: Collected = { columns: [], batches: [], rows: [], complete: undefined, error: undefined };
  let events = 0;
  try {
    for await (const ev of db.streamQuery(req as StreamQueryRequest, { signal })) {
      events++;
      assert.equal(out.complete, undefined, 'nothing follows complete');
      switch (ev.event.case) {
        case 'header':
          assert.equal(events, 1, 'the header comes first, exactly once');
          out.columns = ev.event.value.columns;
          break;
        case 'rows': {
          assert.ok(events > 1, 'rows follow the header');
          const rows = ev.event.value;
          out.batches.push(rows.rowCount);
          if (rows.compact.length > 0 || (rows.rowCount > 0 && rows.values.length === 0)) out.rows.push(...compactRows(rows, out.columns));
          else out.rows.push(...valueRows(rows).map((r) => r.map(plain)));
          break;
        }
        case 'complete':
          assert.ok(events > 1, 'complete follows the header');
          out.complete = ev.event.value;
          break;
        default:
          assert.fail(`unexpected event ${String(ev.event.case)}`);
      }
    }
  } catch (e) {
    out.error = e;
  }
  return out;
}

/** Statements with `marker` in their text that PostgreSQL is running (PostgreSQL only). */
async function activeWith(ts: TestServer, marker: string): Promise<number> {
  const r = await ts.admin!.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND position($1 in query) > 0",
    [marker],
  );
  return r.rows[0].n;
}

describeEachBackend('streaming', (backend) => {
  const pg = backend.name === 'postgresql';
  const s = useServer(backend, { poolSize: 2 });

  for (const [protocol, rowFormat] of [
    ['grpc', RowFormat.VALUES],
    ['grpc', RowFormat.COMPACT],
    ['connect', RowFormat.COMPACT],
    ['grpc-web', RowFormat.VALUES],
  ] as [ProtocolName, RowFormat][]) {
    test(`header, row batches of at most batch_rows, then complete (${protocol}, ${RowFormat[rowFormat]})`, async () => {
      const c = await collect(s().client(protocol), {
        sql: "SELECT g AS n, 'row ' || g AS label FROM generate_series(1, 1234) g WHERE g > $1::int",
        params: [V.int32(0)],
        rowFormat,
        batchRows: 100,
      });
      assert.equal(c.error, undefined);
      assert.deepEqual(
        c.columns.map((col) => [col.name, col.typeName]),
        [
          ['n', 'int4'],
          ['label', 'text'],
        ],
      );
      assert.ok(c.batches.length >= 13, `1234 rows in batches of at most 100 (${c.batches.join(',')})`);
      assert.ok(
        c.batches.every((n) => n > 0 && n <= 100),
        `every batch within batch_rows: ${c.batches.join(',')}`,
      );
      const expected = Array.from({ length: 1234 }, (_, i) =>
        rowFormat === RowFormat.COMPACT ? [String(i + 1), `row ${i + 1}`] : [i + 1, `row ${i + 1}`],
      );
      assert.deepEqual(c.rows, expected);
      assert.equal(c.complete?.command, 'SELECT');
      assert.equal(c.complete?.rowsAffected, 1234n);
    });
  }

  test('batch_bytes closes batches at the byte target', async () => {
    const c = await collect(s().db, {
      sql: "SELECT repeat('x', 100) AS pad FROM generate_series(1, 300)",
      rowFormat: RowFormat.COMPACT,
      batchBytes: 2000,
    });
    assert.equal(c.error, undefined);
    assert.equal(c.rows.length, 300);
    assert.ok(c.batches.length >= 15, `about 19 rows of 101 bytes per 2000-byte batch (${c.batches.join(',')})`);
    assert.ok(
      c.batches.every((n) => n <= 20),
      `no batch far beyond the byte target (${c.batches.join(',')})`,
    );
  });

  test('an empty result still sends header and complete', async () => {
    const c = await collect(s().db, { sql: 'SELECT 1 AS one, now() AS ts WHERE false' });
    assert.equal(c.error, undefined);
    assert.deepEqual(
      c.columns.map((col) => col.name),
      ['one', 'ts'],
    );
    assert.deepEqual(c.rows, []);
    assert.equal(c.complete?.rowsAffected, 0n);
  });

  test('an error before any row: the stream fails without a header', async () => {
    const c = await collect(s().db, { sql: 'SELECT * FROM no_such_table_for_streams' });
    assert.equal(c.columns.length, 0);
    assert.equal(c.rows.length, 0);
    await expectDetail(Promise.reject(c.error), Code.InvalidArgument).then((d) => assert.equal(d.sqlstate, '42P01'));
  });

  test('a 200k-row stream arrives complete and in order', async () => {
    const db = s().client('grpc');
    const t0 = Date.now();
    let next = 1;
    let batches = 0;
    let complete: bigint | undefined;
    let columns: Column[] = [];
    for await (const ev of db.streamQuery({
      sql: 'SELECT g, md5(g::text) AS h FROM generate_series(1, 200000) g',
      rowFormat: RowFormat.COMPACT,
    })) {
      if (ev.event.case === 'header') columns = ev.event.value.columns;
      else if (ev.event.case === 'rows') {
        batches++;
        for (const [g, h] of compactRows(ev.event.value, columns)) {
          assert.equal(g, String(next), 'rows arrive in order, none missing or repeated');
          if (next % 49999 === 0) assert.equal(typeof h === 'string' && h.length, 32);
          next++;
        }
      } else if (ev.event.case === 'complete') complete = ev.event.value.rowsAffected;
    }
    assert.equal(next - 1, 200000);
    assert.equal(complete, 200000n);
    assert.ok(batches >= 20, `the stream came in many batches (${batches})`);
    assert.ok(Date.now() - t0 < 30_000);
  });

  for (const protocol of ['grpc', 'connect'] as ProtocolName[]) {
    test(`a client that cancels mid-stream frees the server connection (${protocol})`, async () => {
      const ts = s();
      const db = ts.client(protocol);
      // (Breaking out of a connect-es stream does not cancel the call: its iterator has no return(),
      // so a client leaves a stream only through an AbortSignal or a deadline.)
      for (const how of ['abort', 'deadline'] as const) {
        const marker = uniqueName('stream');
        const ac = new AbortController();
        let rows = 0;
        let left = false;
        const run = async () => {
          // A select-list SRF streams: the statement is still producing when the client leaves.
          for await (const ev of db.streamQuery(
            { sql: `SELECT generate_series(1, 50000000) AS g, '${marker}' AS m`, rowFormat: RowFormat.COMPACT, batchRows: 500 },
            how === 'abort' ? { signal: ac.signal } : { timeoutMs: 400 },
          )) {
            if (ev.event.case === 'rows') {
              rows += ev.event.value.rowCount;
              if (rows >= 1500 && !left) {
                left = true;
                if (how === 'abort') ac.abort();
                // Stop reading: the deadline ends the call while the server is held by backpressure.
                else await new Promise((r) => setTimeout(r, 1000));
              }
            }
          }
        };
        await expectCode(run(), how === 'abort' ? Code.Canceled : Code.DeadlineExceeded, `${how} stream`);
        assert.ok(rows >= 1500 && rows < 50_000_000, `some rows arrived before leaving (${rows})`);
        assert.ok(
          await waitFor(() => {
            const p = ts.server.poolStats();
            return p.waiting === 0 && p.idle === p.total;
          }, 5000),
          `the server connection is back in the pool after ${how} (${JSON.stringify(ts.server.poolStats())})`,
        );
        if (pg) assert.ok(await waitFor(async () => (await activeWith(ts, marker)) === 0, 3000), `no active query remains after ${how}`);
        // The next statements run normally (on PGlite: on the one and only connection).
        for (let i = 0; i < 3; i++)
          assert.deepEqual(plainRows((await db.query({ sql: 'SELECT $1::int4 AS i', params: [V.int32(i)] })).result), [[i]]);
      }
    });
  }

  for (const protocol of ['grpc', 'connect', 'grpc-web'] as ProtocolName[]) {
    test(`a failure mid-stream surfaces after the delivered rows, never repeating them (${protocol})`, async () => {
      const c = await collect(s().client(protocol), {
        sql: 'SELECT g, 1 / (g - 5000) AS x FROM generate_series(1, 10000) g',
        rowFormat: RowFormat.VALUES,
        batchRows: 100,
      });
      assert.ok(c.error, 'the stream fails');
      const d = await expectDetail(Promise.reject(c.error), Code.InvalidArgument, 'division by zero');
      assert.equal(d.sqlstate, '22012');
      assert.equal(c.complete, undefined, 'no complete after a failure');
      assert.ok(c.columns.length === 2, 'the header came first');
      const gs = c.rows.map((r) => r[0]);
      assert.ok(gs.length < 5000, `no row past the failing one (${gs.length})`);
      for (const [i, g] of gs.entries()) assert.equal(g, i + 1, 'rows delivered in order, none repeated');
      assert.deepEqual(plainRows((await s().db.query({ sql: 'SELECT 1 AS ok' })).result), [[1]], 'the server goes on');
    });
  }

  test('streams inside a transaction see its writes; DML with RETURNING streams too', async (t) => {
    const ts = s();
    const table = await createTable(ts, t, 'id int PRIMARY KEY');
    const db = ts.db;
    const { transactionId } = await db.beginTransaction({});
    const ins = await collect(db, {
      sql: `INSERT INTO ${table} SELECT g FROM generate_series(1, 50) g RETURNING id`,
      transactionId,
      batchRows: 10,
    });
    assert.equal(ins.error, undefined);
    assert.equal(ins.rows.length, 50);
    assert.equal(ins.complete?.command, 'INSERT');
    assert.equal(ins.complete?.rowsAffected, 50n, 'rows_affected counts every Execute of the portal');
    const upd = await collect(db, { sql: `UPDATE ${table} SET id = id + 1000 WHERE id <= 25 RETURNING id`, transactionId, batchRows: 4 });
    assert.deepEqual([upd.complete?.command, upd.complete?.rowsAffected, upd.rows.length], ['UPDATE', 25n, 25]);
    await db.execute({ sql: `UPDATE ${table} SET id = id - 1000 WHERE id > 1000`, transactionId });
    const plainInsert = await collect(db, {
      sql: `INSERT INTO ${table} SELECT g FROM generate_series(51, 53) g`,
      transactionId,
      batchRows: 1,
    });
    assert.deepEqual([plainInsert.complete?.command, plainInsert.complete?.rowsAffected, plainInsert.rows.length], ['INSERT', 3n, 0]);
    await db.execute({ sql: `DELETE FROM ${table} WHERE id > 50`, transactionId });
    const sel = await collect(db, { sql: `SELECT id FROM ${table} ORDER BY id`, transactionId, batchRows: 7 });
    assert.deepEqual(
      sel.rows,
      Array.from({ length: 50 }, (_, i) => [i + 1]),
    );
    // A stream left early (cancelled) inside the transaction does not break it.
    const ac = new AbortController();
    await expectCode(
      (async () => {
        for await (const ev of db.streamQuery({ sql: `SELECT id FROM ${table}`, transactionId, batchRows: 5 }, { signal: ac.signal })) {
          if (ev.event.case === 'rows') ac.abort();
        }
      })(),
      Code.Canceled,
      'a cancelled stream in a transaction',
    );
    assert.equal(await countRows(db, table, transactionId), 50);
    await db.commit({ transactionId });
    assert.equal(await countRows(db, table), 50);
  });
});
