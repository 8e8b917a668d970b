/**
 * Every way in: `buf curl` on both listeners (gRPC, Connect, gRPC-Web), plain JSON POSTs, and the
 * Connect clients for each protocol, in both row formats.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { Code } from '@connectrpc/connect';
import { HealthCheckResponse_ServingStatus as Status } from '../gen/grpc/health/v1/health_pb.js';
import { RowFormat } from '../gen/heliosdb/v1/value_pb.js';
import { describeEachBackend } from './helpers/backends.js';
import { expectDetail } from './helpers/errors.js';
import { grpcBaseUrl, type ProtocolName, useServer } from './helpers/server.js';
import { compactRows, plainRows, V } from './helpers/values.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const buf = fileURLToPath(new URL('../node_modules/.bin/buf', import.meta.url));

interface CurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `buf curl --schema proto` from the repository root. */
function bufCurl(args: string[], body: unknown): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    execFile(
      buf,
      ['curl', '--schema', 'proto', ...args, '-d', JSON.stringify(body)],
      { cwd: repoRoot, timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') reject(err);
        else resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
      },
    );
  });
}

/** Splits concatenated (pretty-printed) JSON documents, as buf curl prints stream messages. */
function jsonSequence(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}') {
      if (--depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  assert.equal(depth, 0, 'buf curl output is complete JSON');
  return out;
}

interface JsonValue {
  int32?: number;
  int64?: string;
  text?: string;
  nullValue?: null;
}
interface JsonQueryResponse {
  result: {
    columns: { name: string; typeOid: number; typeName: string }[];
    rows: { rowCount: number; values: { values: JsonValue[] }[] };
    command: string;
    rowsAffected: string;
  };
}
type JsonStreamEvent =
  | { header: { columns: { name: string }[] } }
  | { rows: { rowCount: number; values: { values: JsonValue[] }[] } }
  | { complete: { command: string; rowsAffected: string } };

describeEachBackend('protocols', (backend) => {
  const s = useServer(backend);

  const listeners = () => {
    const { server } = s();
    return [
      { name: 'gRPC port, grpc', args: ['--protocol', 'grpc', '--http2-prior-knowledge'], base: grpcBaseUrl(server) },
      { name: 'HTTP port, connect', args: ['--protocol', 'connect'], base: server.httpUrl! },
      { name: 'HTTP port, grpcweb', args: ['--protocol', 'grpcweb'], base: server.httpUrl! },
      { name: 'HTTP port, grpc (h2c)', args: ['--protocol', 'grpc', '--http2-prior-knowledge'], base: server.httpUrl! },
    ];
  };

  test('buf curl: Query on both listeners', async () => {
    for (const l of listeners()) {
      const r = await bufCurl([...l.args, `${l.base}/heliosdb.v1.DatabaseService/Query`], {
        sql: 'SELECT $1::int8 - 1 AS big, $2::text AS label',
        params: [{ int64: '9223372036854775807' }, { text: 'héllo' }],
      });
      assert.equal(r.code, 0, `${l.name}: buf curl exits 0 (${r.stderr})`);
      const [res] = jsonSequence(r.stdout) as JsonQueryResponse[];
      assert.deepEqual(
        res.result.columns.map((c) => [c.name, c.typeName]),
        [
          ['big', 'int8'],
          ['label', 'text'],
        ],
        l.name,
      );
      assert.deepEqual(res.result.rows.values[0].values, [{ int64: '9223372036854775806' }, { text: 'héllo' }], l.name);
      assert.equal(res.result.command, 'SELECT', l.name);
    }
  });

  test('buf curl: StreamQuery on both listeners sends header, rows, complete', async () => {
    for (const l of listeners()) {
      const r = await bufCurl([...l.args, `${l.base}/heliosdb.v1.DatabaseService/StreamQuery`], {
        sql: 'SELECT g FROM generate_series(1, 25) g',
        batchRows: 10,
      });
      assert.equal(r.code, 0, `${l.name}: buf curl exits 0 (${r.stderr})`);
      const events = jsonSequence(r.stdout) as JsonStreamEvent[];
      assert.ok('header' in events[0], `${l.name}: header first`);
      assert.deepEqual(
        events[0].header.columns.map((c) => c.name),
        ['g'],
      );
      const last = events[events.length - 1];
      assert.ok('complete' in last, `${l.name}: complete last`);
      assert.equal(last.complete.rowsAffected, '25');
      const got: number[] = [];
      for (const e of events.slice(1, -1)) {
        assert.ok('rows' in e, `${l.name}: only rows between header and complete`);
        assert.ok(e.rows.rowCount <= 10, 'batches respect batch_rows');
        for (const row of e.rows.values) got.push(row.values[0].int32!);
      }
      assert.deepEqual(
        got,
        Array.from({ length: 25 }, (_, i) => i + 1),
        l.name,
      );
    }
  });

  test('buf curl: grpc.health.v1.Health/Check on both listeners', async () => {
    for (const l of listeners()) {
      for (const service of ['', 'heliosdb.v1.DatabaseService']) {
        const r = await bufCurl([...l.args, `${l.base}/grpc.health.v1.Health/Check`], { service });
        assert.equal(r.code, 0, `${l.name}: buf curl exits 0 (${r.stderr})`);
        assert.deepEqual(jsonSequence(r.stdout), [{ status: 'SERVING' }], `${l.name} service=${service}`);
      }
      const unknown = await bufCurl([...l.args, `${l.base}/grpc.health.v1.Health/Check`], { service: 'no.such.Service' });
      assert.notEqual(unknown.code, 0, `${l.name}: unknown service fails`);
      assert.match(unknown.stdout + unknown.stderr, /not_found/i);
    }
  });

  test('buf curl: a SQL error reports invalid_argument with the ErrorDetail', async () => {
    for (const l of listeners()) {
      const r = await bufCurl([...l.args, `${l.base}/heliosdb.v1.DatabaseService/Query`], { sql: 'SELEC 1' });
      assert.notEqual(r.code, 0, `${l.name}: buf curl fails`);
      const out = r.stdout + r.stderr;
      assert.match(out, /invalid_argument/, l.name);
      assert.match(out, /heliosdb\.v1\.ErrorDetail/, l.name);
    }
  });

  test('plain JSON POST to /heliosdb.v1.DatabaseService/Query', async () => {
    const url = `${s().server.httpUrl}/heliosdb.v1.DatabaseService/Query`;
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sql: "SELECT 42 AS answer, NULL::text AS nothing, 'x' || $1 AS joined", params: [{ text: 'y' }] }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const body = (await res.json()) as JsonQueryResponse;
    assert.deepEqual(
      body.result.columns.map((c) => c.name),
      ['answer', 'nothing', 'joined'],
    );
    assert.equal(body.result.rows.rowCount, 1);
    assert.deepEqual(body.result.rows.values[0].values, [{ int32: 42 }, { nullValue: null }, { text: 'xy' }]);
    assert.equal(body.result.rowsAffected, '1');
  });

  test('plain JSON POST: errors come back as Connect JSON errors with details', async () => {
    const res = await fetch(`${s().server.httpUrl}/heliosdb.v1.DatabaseService/Query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sql: 'SELECT * FROM no_such_table_xyz' }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { code: string; message: string; details: { type: string; debug?: { sqlstate?: string } }[] };
    assert.equal(body.code, 'invalid_argument');
    assert.match(body.message, /no_such_table_xyz/);
    assert.equal(body.details[0].type, 'heliosdb.v1.ErrorDetail');
    assert.equal(body.details[0].debug?.sqlstate, '42P01');
  });

  const protocols: ProtocolName[] = ['grpc', 'connect', 'connect-json', 'grpc-web', 'grpc-http'];

  for (const protocol of protocols) {
    test(`Connect client over ${protocol}: Query in VALUES and COMPACT, StreamQuery, errors`, async () => {
      const db = s().client(protocol);
      const sql = "SELECT g AS n, repeat('é', g) AS s, CASE WHEN g % 2 = 0 THEN NULL ELSE g * 1.5 END AS x FROM generate_series(1, 4) g";
      const values = await db.query({ sql, rowFormat: RowFormat.VALUES });
      assert.deepEqual(plainRows(values.result), [
        [1, 'é', '1.5'],
        [2, 'éé', null],
        [3, 'ééé', '4.5'],
        [4, 'éééé', null],
      ]);
      const compact = await db.query({ sql, rowFormat: RowFormat.COMPACT });
      assert.deepEqual(compactRows(compact.result!.rows, compact.result!.columns), [
        ['1', 'é', '1.5'],
        ['2', 'éé', null],
        ['3', 'ééé', '4.5'],
        ['4', 'éééé', null],
      ]);
      assert.deepEqual(
        compact.result!.columns.map((c) => c.typeName),
        ['int4', 'text', 'numeric'],
      );

      const streamed: number[] = [];
      for await (const ev of db.streamQuery({ sql: 'SELECT g FROM generate_series(1, 7) g', batchRows: 3, rowFormat: RowFormat.COMPACT })) {
        if (ev.event.case === 'rows') {
          for (const [cell] of compactRows(ev.event.value, [{ typeOid: 23 } as never])) streamed.push(Number(cell));
        }
      }
      assert.deepEqual(streamed, [1, 2, 3, 4, 5, 6, 7]);

      const detail = await expectDetail(db.query({ sql: 'SELECT 1/$1::int AS x', params: [V.int32(0)] }), Code.InvalidArgument);
      assert.equal(detail.sqlstate, '22012');

      const health = await s().health(protocol).check({ service: '' });
      assert.equal(health.status, Status.SERVING);
    });
  }
});
