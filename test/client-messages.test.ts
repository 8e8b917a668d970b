/**
 * Error messages in the user's terms, found by making each mistake against a real server: a
 * passed deadline names the call and its timeoutMs (not grpc-js's internals), http:// to the
 * native gRPC port says to use grpc://, grpcs:// to a plaintext server says TLS failed because the
 * server does not speak TLS (not that it is down), and the other connection mistakes likewise.
 * Then what `console.log(err)` and `JSON.stringify(err)` show of a HeliosDBError.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import util from 'node:util';
import {
  ConnectionError,
  createClient,
  HeliosDBError,
  type HeliosDBClient,
  QueryError,
  TimeoutError,
  UniqueViolationError,
} from '@heliosdb/client';
import { type HeliosServer, startServer } from '../src/server/server.js';
import { rejects } from './helpers/assert-error.js';
import { makeTestCerts, type TestCerts } from './helpers/certs.js';

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

const portOf = (url: string) => new URL(url).port;

describe('connection and deadline mistakes', () => {
  let plain: HeliosServer;
  let secure: HeliosServer;
  let certs: TestCerts;
  const clients: HeliosDBClient[] = [];
  /** A client that fails at once: no retries, one connection. */
  const client = (config: Parameters<typeof createClient>[0] & object) => {
    const c = createClient({ minConnections: 1, connectTimeoutMs: 3000, ...config });
    clients.push(c);
    return c;
  };

  before(async () => {
    certs = makeTestCerts();
    plain = await startServer({ port: 0, httpPort: 0, logLevel: 'silent' });
    secure = await startServer({ port: 0, httpPort: 0, logLevel: 'silent', tlsCert: certs.server.certFile, tlsKey: certs.server.keyFile });
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await plain?.close();
    await secure?.close();
    certs?.cleanup();
  });

  // The embedded engine runs pg_sleep inside the server process: nothing can answer before it ends,
  // so a 5 ms deadline passes first, every time.
  test('a passed deadline says which call did not finish within which timeoutMs (grpc://, per call and per client)', async () => {
    const perCall = await rejects(client({ url: plain.grpcUrl }).query('SELECT pg_sleep(0.2)', [], { timeoutMs: 5 }), TimeoutError);
    assert.equal(perCall.message, 'the Query call did not finish within its timeoutMs of 5 ms');
    assert.doesNotMatch(perCall.message, /Deadline exceeded|name resolution|LB pick/);
    const perClient = await rejects(client({ url: plain.grpcUrl, timeoutMs: 7 }).execute('SELECT pg_sleep(0.2)'), TimeoutError);
    assert.equal(perClient.message, 'the Execute call did not finish within its timeoutMs of 7 ms');
    const stream = client({ url: plain.grpcUrl }).stream('SELECT pg_sleep(0.2)', [], { timeoutMs: 6 });
    const streamed = await rejects(stream.toArray(), TimeoutError);
    assert.equal(streamed.message, 'the StreamQuery call did not finish within its timeoutMs of 6 ms');
  });

  test('a passed deadline over http:// says the same (not "the operation timed out")', async () => {
    const e = await rejects(client({ url: plain.httpUrl! }).query('SELECT pg_sleep(0.2)', [], { timeoutMs: 5 }), TimeoutError);
    assert.equal(e.message, 'the Query call did not finish within its timeoutMs of 5 ms');
  });

  test('http:// to the native gRPC port says the port speaks native gRPC and to use grpc://, at once (not "HTTP 415")', async () => {
    const port = portOf(plain.grpcUrl);
    for (const extra of [{}, { httpVersion: '1.1' as const }, { protocol: 'grpc-web' as const }, { protocol: 'connect-json' as const }]) {
      const c = client({ url: `http://127.0.0.1:${port}`, ...extra });
      const e = await rejects(c.query('SELECT 1'), ConnectionError);
      assert.equal(e.code, 'WRONG_PROTOCOL', `${JSON.stringify(extra)}: ${e.message}`);
      assert.match(
        e.message,
        new RegExp(`^http://127\\.0\\.0\\.1:${port} speaks native gRPC.*use grpc://127\\.0\\.0\\.1:${port}`),
        JSON.stringify(extra),
      );
      assert.equal(c.pool.getStats().retries, 0, 'a wrong port is not retried');
    }
  });

  test('grpc:// to the HTTP port works: that port speaks gRPC too (nothing to explain)', async () => {
    const r = await client({ url: `grpc://127.0.0.1:${portOf(plain.httpUrl!)}` }).query<{ n: number }>('SELECT 1 AS n');
    assert.deepEqual(r.rows, [{ n: 1 }]);
  });

  test('grpcs:// to a plaintext server says TLS failed because the server does not speak TLS (not that it is down), at once', async () => {
    const c = client({ url: `grpcs://127.0.0.1:${portOf(plain.grpcUrl)}`, ssl: { ca: certs.ca.cert } });
    const e = await rejects(c.query('SELECT 1'), ConnectionError);
    assert.equal(e.code, 'TLS_ERROR', e.message);
    assert.match(e.message, /TLS failed because the server does not speak TLS.*use grpc:\/\//);
    assert.doesNotMatch(e.message, /server is down/);
    assert.equal(e.retryable, false);
    assert.equal(c.pool.getStats().retries, 0, 'a TLS mismatch is not retried');
  });

  test('https:// to a plaintext HTTP port says the same', async () => {
    const e = await rejects(
      client({ url: `https://127.0.0.1:${portOf(plain.httpUrl!)}`, ssl: { ca: certs.ca.cert } }).query('SELECT 1'),
      ConnectionError,
    );
    assert.equal(e.code, 'TLS_ERROR', e.message);
    assert.match(e.message, /TLS failed because the server does not speak TLS/);
    assert.doesNotMatch(e.message, /ssl3_get_record|openssl/);
  });

  test('grpc:// to a TLS server hints at grpcs://; grpcs:// with an unknown CA says the certificate was not accepted', async () => {
    const plainToTls = await rejects(
      client({ url: `grpc://127.0.0.1:${portOf(secure.grpcUrl)}`, retry: false }).query('SELECT 1'),
      ConnectionError,
    );
    assert.match(plainToTls.message, /if it uses TLS, use grpcs:\/\//);
    const untrusted = await rejects(client({ url: `grpcs://localhost:${portOf(secure.grpcUrl)}` }).query('SELECT 1'), ConnectionError);
    assert.equal(untrusted.code, 'TLS_ERROR');
    assert.match(
      untrusted.message,
      /TLS failed: the server's certificate was not accepted \(unable to verify the first certificate\); pass the certificate authority/,
    );
    // And with the CA it works.
    assert.equal(
      (await client({ url: `grpcs://localhost:${portOf(secure.grpcUrl)}`, ssl: { ca: certs.ca.cert } }).query('SELECT 1')).rowCount,
      1,
    );
  });

  test('grpc:// to a port nothing listens on says so', async () => {
    const port = await closedPort();
    const e = await rejects(client({ url: `grpc://127.0.0.1:${port}`, retry: false }).query('SELECT 1'), ConnectionError);
    assert.equal(e.code, 'CONNECTION_FAILED');
    assert.match(
      e.message,
      new RegExp(`could not connect to grpc://127\\.0\\.0\\.1:${port}: nothing accepts connections there \\(connect ECONNREFUSED`),
    );
  });
});

describe('console.log(err) and JSON.stringify(err)', () => {
  let server: HeliosServer;
  let quiet: HeliosDBClient;
  let verbose: HeliosDBClient;
  const table = `msg_${process.pid}`;

  before(async () => {
    server = await startServer({ port: 0, httpPort: -1, logLevel: 'silent' });
    quiet = createClient({ url: server.grpcUrl, minConnections: 1 });
    verbose = createClient({ url: server.grpcUrl, minConnections: 1, logParameters: true });
    await quiet.execute(`CREATE TABLE ${table} (id int8 PRIMARY KEY, body bytea)`);
    await quiet.execute(`INSERT INTO ${table} VALUES (1, '\\x00')`);
  });

  after(async () => {
    await quiet?.close();
    await verbose?.close();
    await server?.close();
  });

  test('util.inspect shows class, code, message, stack and only the fields that are set: no undefined fields, no raw bytes', async () => {
    const e = await rejects(quiet.execute(`INSERT INTO ${table} VALUES ($1, $2)`, [1n, new Uint8Array([1, 2, 3])]), UniqueViolationError);
    const shown = util.inspect(e);
    assert.match(shown, /^UniqueViolationError \[UNIQUE_VIOLATION\]: duplicate key value violates unique constraint/);
    assert.match(shown, /\n {4}at /, 'the stack frames are kept');
    assert.match(shown, /sqlstate: '23505'/);
    assert.match(shown, new RegExp(`constraint: '${table}_pkey'`));
    assert.match(shown, /params: '\[redacted\]'/);
    assert.match(shown, /cause: 'ConnectError: \[already_exists\]/);
    assert.doesNotMatch(shown, /undefined/);
    assert.doesNotMatch(shown, /Uint8Array|<Buffer|\[Headers|metadata/);
    assert.ok(shown.split('\n').length < 40, `${shown.split('\n').length} lines:\n${shown}`);
    // console.log goes through the same path.
    assert.equal(util.format('%O', e).split('\n')[0], shown.split('\n')[0]);
  });

  test('JSON.stringify gives the same fields; parameters stay redacted unless logParameters, and bigints and bytes are JSON-safe', async () => {
    const e = await rejects(quiet.execute(`INSERT INTO ${table} VALUES ($1, $2)`, [1n, new Uint8Array([1, 2, 3])]), UniqueViolationError);
    const json = JSON.parse(JSON.stringify(e));
    assert.equal(json.name, 'UniqueViolationError');
    assert.equal(json.code, 'UNIQUE_VIOLATION');
    assert.match(json.message, /duplicate key/);
    assert.equal(json.sqlstate, '23505');
    assert.equal(json.constraint, `${table}_pkey`);
    assert.equal(json.params, '[redacted]');
    assert.equal(json.query, `INSERT INTO ${table} VALUES ($1, $2)`);
    assert.equal(typeof json.cause, 'string');
    for (const [k, v] of Object.entries(json)) assert.notEqual(v, null, `${k} is null`);
    assert.ok(!('hint' in json) && !('retryAfterMs' in json) && !('statementIndex' in json), Object.keys(json).join());

    const shown = await rejects(
      verbose.execute(`INSERT INTO ${table} VALUES ($1, $2)`, [1n, new Uint8Array([1, 2, 3])]),
      UniqueViolationError,
    );
    assert.deepEqual(JSON.parse(JSON.stringify(shown)).params, ['1', '<3 bytes>']);
    assert.match(util.inspect(shown), /params: \[ '1', '<3 bytes>' \]/);
  });

  test('every error class has the compact form, SQL errors with their position and hint alike', async () => {
    const e = await rejects(quiet.query('SELEC 1'), QueryError);
    const json = e.toJSON();
    assert.equal(json.sqlstate, '42601');
    assert.equal(typeof json.position, 'number');
    const plainError = new HeliosDBError('plain', 'INTERNAL');
    assert.equal(util.inspect(plainError).split('\n')[0], 'HeliosDBError [INTERNAL]: plain');
    assert.deepEqual(plainError.toJSON(), { name: 'HeliosDBError', code: 'INTERNAL', message: 'plain' });
  });
});
