/**
 * DataRows kept as bytes (src/server/pg/raw-rows.ts) and the hand-written StreamQuery serializer
 * (src/server/listeners/rows-serializer.ts) against what they replace: pg-protocol's own parser
 * and protobuf-es. The end-to-end type round trips of test/server-types.test.ts run through the
 * same path on both backends.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import { Parser } from 'pg-protocol/dist/parser.js';
import { CompactReader, decodeUtf8, RowFormat, StreamQueryResponseSchema } from '@heliosdb/client/wire';
import { describeEachBackend } from './helpers/backends.js';
import { useServer } from './helpers/server.js';
import { RawDataRow, RowBytesParser } from '../src/server/pg/raw-rows.js';
import { RowEncoder } from '../src/server/result-encoder.js';
import { serializeStreamQueryResponse } from '../src/server/listeners/rows-serializer.js';

/** A DataRow message ('D') with these cells (`null` for NULL). */
function dataRow(cells: (string | Buffer | null)[]): Buffer {
  const parts = cells.map((c) => {
    if (c === null) return Buffer.from([0xff, 0xff, 0xff, 0xff]);
    const body = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
    const len = Buffer.alloc(4);
    len.writeInt32BE(body.length);
    return Buffer.concat([len, body]);
  });
  const count = Buffer.alloc(2);
  count.writeInt16BE(cells.length);
  const body = Buffer.concat([count, ...parts]);
  const header = Buffer.alloc(5);
  header[0] = 0x44;
  header.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/** A CommandComplete message, so a stream of messages is not all DataRows. */
function commandComplete(tag: string): Buffer {
  const body = Buffer.from(`${tag}\0`, 'utf8');
  const header = Buffer.alloc(5);
  header[0] = 0x43;
  header.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

const rows: (string | Buffer | null)[][] = [
  [],
  [null],
  [''],
  ['1', 'abc', null, ''],
  ['é日本語🙂', 'x'.repeat(70_000)],
  [Buffer.from([0xc3]), 'split'], // a lone UTF-8 lead byte: both decode it to U+FFFD
  ['\\x00ff10', null, '42'],
];

/** Every message the parser produces for `bytes` fed in chunks of `chunk` bytes, decoded as pg sees them. */
function parseAll(parser: Parser, bytes: Buffer, chunk: number): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < bytes.length; i += chunk) {
    parser.parse(bytes.subarray(i, i + chunk), (msg) => {
      const m = msg as { name: string; fields?: unknown; text?: string };
      // Read now, as pg does: a RawDataRow's bytes are valid only while it is handled.
      out.push(m.name === 'dataRow' ? { name: m.name, fields: [...(m.fields as unknown[])] } : { name: m.name, text: m.text });
    });
  }
  return out;
}

describe('DataRows kept as bytes', () => {
  const stream = Buffer.concat([...rows.map(dataRow), commandComplete('SELECT 7')]);

  for (const chunk of [1, 3, 7, 64, 1024, stream.length]) {
    test(`agree with pg-protocol's parser, fed ${chunk} bytes at a time`, () => {
      assert.deepEqual(parseAll(new RowBytesParser(), stream, chunk), parseAll(new Parser(), stream, chunk));
    });
  }

  test("a DataRow is a RawDataRow; other messages are pg-protocol's", () => {
    const seen: unknown[] = [];
    new RowBytesParser().parse(stream, (msg) => seen.push(msg));
    assert.equal(seen.filter((m) => m instanceof RawDataRow).length, rows.length);
    assert.equal((seen.at(-1) as { name: string }).name, 'commandComplete');
  });

  test('the compact encoding of a raw row equals that of its decoded cells (bytea from its text form)', () => {
    const fields = [
      { name: 'a', dataTypeID: 25 },
      { name: 'b', dataTypeID: 17 },
      { name: 'c', dataTypeID: 23 },
    ] as never;
    const viaRaw = new RowEncoder(RowFormat.COMPACT);
    const viaText = new RowEncoder(RowFormat.COMPACT);
    viaRaw.setFields(fields);
    viaText.setFields(fields);
    const cases: (string | null)[][] = [
      ['é日本語', '\\x00ff10', '1'],
      [null, null, null],
      ['', '\\x', '-7'],
      ['x'.repeat(5000), '\\x' + 'ab'.repeat(3000), '2147483647'],
    ];
    const parser = new RowBytesParser();
    for (const cells of cases) {
      parser.parse(dataRow(cells), (msg) => {
        const row = msg as RawDataRow;
        assert.equal(viaRaw.addRaw(row), viaText.add(cells));
      });
    }
    assert.equal(viaRaw.rowCount, cases.length);
    assert.deepEqual(viaRaw.take(), viaText.take());
  });

  test('the values encoding of a raw row decodes its cells', () => {
    const enc = new RowEncoder(RowFormat.VALUES);
    enc.setFields([{ name: 'a', dataTypeID: 23 }] as never);
    new RowBytesParser().parse(dataRow(['12']), (msg) => enc.addRaw(msg as RawDataRow));
    const batch = enc.take();
    assert.equal(batch.values.length, 1);
    assert.equal(batch.values[0].values[0].kind.case, 'int32');
  });
});

describe('StreamQuery serializer', () => {
  const messages = [
    create(StreamQueryResponseSchema, { event: { case: 'rows', value: { rowCount: 3, compact: new Uint8Array([1, 2, 3, 0, 5]) } } }),
    create(StreamQueryResponseSchema, { event: { case: 'rows', value: { rowCount: 0, compact: new Uint8Array([9]) } } }),
    create(StreamQueryResponseSchema, {
      event: { case: 'rows', value: { rowCount: 300_000, compact: new Uint8Array(200_000).fill(7) } },
    }),
    create(StreamQueryResponseSchema, { event: { case: 'rows', value: { rowCount: 2, compact: new Uint8Array() } } }),
    create(StreamQueryResponseSchema, { event: { case: 'header', value: { columns: [{ name: 'a', typeOid: 23, typeName: 'int4' }] } } }),
    create(StreamQueryResponseSchema, { event: { case: 'complete', value: { command: 'SELECT', rowsAffected: 3n } } }),
    create(StreamQueryResponseSchema, {}),
  ];
  for (const [i, msg] of messages.entries()) {
    test(`writes what protobuf-es writes (${msg.event.case ?? 'empty'} #${i})`, () => {
      const bytes = serializeStreamQueryResponse(msg);
      assert.deepEqual(new Uint8Array(bytes), toBinary(StreamQueryResponseSchema, msg));
      assert.deepEqual(fromBinary(StreamQueryResponseSchema, new Uint8Array(bytes)), msg);
    });
  }
});

describeEachBackend('row batches through the gRPC listener', (backend) => {
  const ts = useServer(backend);

  test('SET client_encoding to another encoding is refused; to UTF8 and RESET are not', async () => {
    for (const sql of ["SET client_encoding = 'LATIN1'", "SET NAMES 'LATIN1'", "SET client_encoding TO 'SQL_ASCII'; SELECT 1"]) {
      await assert.rejects(ts().db.query({ sql }), (e: unknown) => {
        const ce = ConnectError.from(e);
        assert.equal(ce.code, Code.InvalidArgument, `${sql}: ${ce.message}`);
        assert.match(ce.rawMessage, /client_encoding/);
        return true;
      });
    }
    const { transactionId } = await ts().db.beginTransaction({});
    await assert.rejects(ts().db.execute({ sql: "SET LOCAL client_encoding = 'LATIN1'", transactionId }), /client_encoding/);
    await ts().db.rollback({ transactionId });
    for (const sql of ["SET client_encoding = 'UTF8'", "SET NAMES 'utf-8'", 'RESET client_encoding', 'SET client_encoding TO DEFAULT']) {
      await ts().db.execute({ sql });
    }
    const r = await ts().db.query({ sql: 'SELECT chr(233) AS e', rowFormat: RowFormat.COMPACT });
    assert.deepEqual([...r.result!.rows!.compact], [3, 0xc3, 0xa9]);
  });

  test('client_encoding changed by set_config: compact cells stay UTF-8 (cells that are not are decoded as before)', {
    skip: backend.name === 'pglite' ? 'the embedded engine stops answering after a client_encoding change (a known gap)' : false,
  }, async () => {
    const r = await ts().db.query({
      sql: "SELECT set_config('client_encoding', 'LATIN1', false); SELECT chr(233) AS e, 'abc' AS a",
      rowFormat: RowFormat.COMPACT,
    });
    const bytes = r.result!.rows!.compact;
    const cells: string[] = [];
    const reader = new CompactReader(bytes);
    while (!reader.done) {
      const len = reader.next();
      cells.push(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(reader.start, reader.start + len)));
    }
    assert.equal(cells.length, 2);
    assert.equal(cells[1], 'abc');
    // The next call on a pooled connection is back to UTF8: its rows are bytes again, exactly.
    const back = await ts().db.query({ sql: 'SELECT chr(233) AS e', rowFormat: RowFormat.COMPACT });
    assert.deepEqual([...back.result!.rows!.compact], [3, 0xc3, 0xa9]);
  });

  test('concurrent streams of many batches: every row is its own, in order (the serializer reuses its buffer)', async () => {
    const streams = 6;
    const rows = 3000;
    const seen = await Promise.all(
      Array.from({ length: streams }, async (_, s) => {
        const sql = `SELECT g, md5(g::text || '-${s}') AS h, repeat(md5(g::text || '-${s}'), 1 + g % 7) AS body FROM generate_series(1, ${rows}) g`;
        let next = 1;
        let batches = 0;
        for await (const m of ts().db.streamQuery({ sql, rowFormat: RowFormat.COMPACT, batchBytes: 4096 })) {
          if (m.event.case !== 'rows') continue;
          batches++;
          const r = new CompactReader(m.event.value.compact);
          for (let i = 0; i < m.event.value.rowCount; i++) {
            const cells: string[] = [];
            for (let c = 0; c < 3; c++) {
              const len = r.next();
              cells.push(decodeUtf8(r.bytes, r.start, r.start + len));
            }
            const h = createHash('md5').update(`${next}-${s}`).digest('hex');
            assert.deepEqual(cells, [String(next), h, h.repeat(1 + (next % 7))], `stream ${s} row ${next}`);
            next++;
          }
        }
        return { rows: next - 1, batches };
      }),
    );
    for (const r of seen) {
      assert.equal(r.rows, rows);
      assert.ok(r.batches > 50, `${r.batches} batches`);
    }
  });
});
