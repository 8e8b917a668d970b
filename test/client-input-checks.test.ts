/**
 * The client's input checks: parameters must be an array of supported values (anything else is
 * a ParameterError naming the parameter and what it is, and nothing reaches the database), and
 * `createClient` refuses options it does not know, naming the option meant.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ConfigurationError, createClient, HeliosDBError, type HeliosDBClient, ParameterError, resolveConfig } from '@heliosdb/client';
import { toParams } from '../src/client/protocol/params.js';
import { rejects } from './helpers/assert-error.js';
import { describeEachBackend } from './helpers/backends.js';
import { startTestServer, type TestServer, uniqueName } from './helpers/server.js';

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

describe('parameters', () => {
  test('a parameter list that is not an array throws ParameterError naming what was given', () => {
    const cases: [unknown, RegExp][] = [
      [5, /^parameters must be an array \(or left out\), got a number \(5\) \(to send one value, wrap it: \[5\]\)$/],
      ['ada', /got a string \("ada"\).*wrap it: \["ada"\]/],
      [{ id: 1 }, /got a plain object \(named parameters are not supported: write \$1, \$2/],
      [new Map([['id', 1]]), /got a Map/],
      [null, /got null/],
      [new Uint8Array(2), /got an instance of class Uint8Array/],
    ];
    for (const [given, message] of cases) {
      assert.throws(
        () => toParams(given as never),
        (err: unknown) => err instanceof ParameterError && err.code === 'INVALID_PARAMETER' && message.test(err.message),
        String(given),
      );
    }
    assert.deepEqual(toParams(undefined), []);
    assert.deepEqual(toParams([]), []);
  });

  test('unsupported values throw ParameterError naming $n (and the path inside arrays and json) and the type', () => {
    const cyclicObject: Record<string, unknown> = { a: 1 };
    cyclicObject.self = cyclicObject;
    const cyclicArray: unknown[] = [1];
    cyclicArray.push(cyclicArray);
    const cases: [unknown[], RegExp][] = [
      [[1, new Map([[1, 2]])], /^parameter \$2 is a Map, which cannot be sent; a parameter is null, undefined, boolean/],
      [[new Set([1])], /^parameter \$1 is a Set,/],
      [[new WeakMap()], /^parameter \$1 is a WeakMap,/],
      [[() => 1], /^parameter \$1 is a function,/],
      [[Symbol('s')], /^parameter \$1 is a symbol \(Symbol\(s\)\),/],
      [[new Point(1, 2)], /^parameter \$1 is an instance of class Point,/],
      [[new Int32Array(2)], /^parameter \$1 is an instance of class Int32Array,/],
      [[cyclicObject], /^parameter \$1 is a plain object that contains itself \(a cycle\)/],
      [['x', cyclicArray], /^parameter \$2\[1\] is an array that contains itself \(a cycle\)/],
      [[[1, [2, new Map()]]], /^parameter \$1\[1\]\[1\] is a Map,/],
      [[{ a: { b: [1, new Set()] } }], /^parameter \$1\.a\.b\[1\] is a Set, which cannot be sent inside a json parameter/],
      [[{ 'odd key': () => 1 }], /^parameter \$1\["odd key"\] is a function \(odd key\), which cannot be sent inside a json parameter/],
      [[{ p: new Point(1, 2) }], /^parameter \$1\.p is an instance of class Point, which cannot be sent inside a json parameter/],
      [[new Date(Number.NaN)], /^parameter \$1 is an invalid Date/],
    ];
    for (const [params, message] of cases) {
      try {
        toParams(params);
        assert.fail(`accepted ${message}`);
      } catch (err) {
        assert.ok(err instanceof ParameterError, String(err));
        assert.equal(err.code, 'INVALID_PARAMETER');
        assert.match(err.message, message);
      }
    }
  });

  test('what the README maps still maps: plain objects are json, arrays arrays, bytes bytea, Dates timestamptz', () => {
    const kinds = toParams([
      null,
      undefined,
      true,
      1,
      2 ** 40,
      1.5,
      10n ** 30n,
      's',
      new Date(0),
      new Uint8Array(1),
      Buffer.from('a'),
      new ArrayBuffer(2),
      [1, null, 'a'],
      { a: [1, { b: 2n }], d: new Date(0), u: undefined },
      Object.create(null),
    ]).map((v) => v.kind.case);
    assert.deepEqual(kinds, [
      'nullValue',
      'nullValue',
      'bool',
      'int32',
      'int64',
      'float64',
      'numeric',
      'text',
      'timestamptz',
      'bytes',
      'bytes',
      'bytes',
      'array',
      'json',
      'json',
    ]);
    const json = toParams([{ a: [1, { b: 2n }], d: new Date(0), u: undefined }])[0].kind;
    assert.equal(json.case === 'json' ? json.value : '', '{"a":[1,{"b":"2"}],"d":"1970-01-01T00:00:00.000Z"}');
    // The same object twice is not a cycle.
    const shared = { k: 1 };
    assert.equal(toParams([{ a: shared, b: shared }])[0].kind.value, '{"a":{"k":1},"b":{"k":1}}');
    assert.equal(toParams([[shared, shared]])[0].kind.case, 'array');
  });
});

describeEachBackend('parameters against the database', (backend) => {
  let ts: TestServer;
  let client: HeliosDBClient;
  const table = uniqueName('params');

  before(async () => {
    ts = await startTestServer(backend, { httpPort: -1 });
    client = createClient({ url: ts.server.grpcUrl, minConnections: 1 });
    await client.execute(`CREATE TABLE ${table} (v text, doc json)`);
  });

  after(async () => {
    await client?.execute(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
    await client?.close();
    await ts?.close();
  });

  const count = async () => (await client.queryOne<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).n;

  test('client.query(sql, 5), (sql, { id: 1 }) and a Map parameter throw before anything is sent: no row is written', async () => {
    const e1 = await rejects(client.execute(`INSERT INTO ${table} (v) VALUES ($1)`, 5 as never), ParameterError);
    assert.match(e1.message, /got a number \(5\)/);
    const e2 = await rejects(client.query(`INSERT INTO ${table} (v) VALUES ($1) RETURNING v`, { id: 1 } as never), ParameterError);
    assert.match(e2.message, /got a plain object/);
    const e3 = await rejects(client.execute(`INSERT INTO ${table} (doc) VALUES ($1)`, [new Map([['a', 1]])]), ParameterError);
    assert.match(e3.message, /^parameter \$1 is a Map/);
    assert.throws(() => client.stream(`SELECT $1::text`, 'x' as never), ParameterError);
    await rejects(() => client.batch([{ sql: `INSERT INTO ${table} (v) VALUES ($1)`, params: [new Set()] }]), ParameterError);
    assert.equal(await count(), 0, 'nothing reached the database');
  });

  test('plain objects still go as json and arrays as arrays', async () => {
    await client.execute(`INSERT INTO ${table} (v, doc) VALUES ($1, $2)`, ['x', { a: [1, 'b'] }]);
    const row = await client.queryOne<{ doc: unknown; arr: number[] }>(`SELECT doc, $1::int4[] AS arr FROM ${table}`, [[1, 2]]);
    assert.deepEqual(row, { doc: { a: [1, 'b'] }, arr: [1, 2] });
    assert.equal(await count(), 1);
  });
});

describe('client options', () => {
  const refused = (config: object): ConfigurationError => {
    try {
      resolveConfig(config as never);
    } catch (e) {
      assert.ok(e instanceof ConfigurationError && e instanceof HeliosDBError, String(e));
      assert.equal(e.code, 'INVALID_CONFIG');
      return e;
    }
    assert.fail(`accepted ${JSON.stringify(config)}`);
  };

  test("pg's and postgres.js's option names are refused with the option to use instead", () => {
    const cases: [object, RegExp][] = [
      [
        { connectionString: 'postgres://u@db/app' },
        /"connectionString": use url \(url: 'grpc:\/\/db\.example\.com:7700' for a HeliosDB server, or 'postgres:\/\/user@db\.example\.com:5432\/app'/,
      ],
      [{ connectionTimeoutMillis: 5000 }, /"connectionTimeoutMillis": use connectTimeoutMs\./],
      [{ max: 20 }, /"max": use maxConnections\./],
      [{ min: 2 }, /"min": use minConnections\./],
      [{ idleTimeoutMillis: 30000 }, /"idleTimeoutMillis": use idleTimeoutSeconds \(seconds: divide by 1000\)\./],
      [{ statement_timeout: 1000 }, /"statement_timeout": use timeoutMs \(/],
      [
        { host: 'db', port: 5432, database: 'app' },
        /"host", "port": use url \(url: 'grpc:\/\/.*"database": use url \(.*the server chooses the database\)/,
      ],
      [{ ssl: true, maxConection: 3 }, /"maxConection": use maxConnections\./],
      [{ timeoutMS: 5 }, /"timeoutMS": use timeoutMs\./],
      [{ aplicationName: 'x' }, /"aplicationName": use applicationName\./],
      [{ frobnicate: 1 }, /"frobnicate": not an option\./],
    ];
    for (const [config, message] of cases) assert.match(refused(config).message, message, JSON.stringify(config));
  });

  test('createClient({ connectionString }) no longer connects to the default server silently; Node TLS option names point at ssl', () => {
    assert.throws(() => createClient({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' } as never), ConfigurationError);
    // resolveConfig leaves these to the entry point (the browser entry refuses them in its own words).
    assert.throws(
      () => createClient({ url: 'grpcs://db:7700', tls: { rejectUnauthorized: false } } as never),
      (e: unknown) => e instanceof ConfigurationError && /"tls": use ssl \(ssl: \{ ca, cert, key, servername, mode \}\)/.test(e.message),
    );
    assert.throws(
      () => createClient({ ca: 'PEM' } as never),
      (e: unknown) => e instanceof ConfigurationError && /"ca": use ssl \(ssl: \{ ca \}\)/.test(e.message),
    );
  });

  test('every documented option, a resolved config and options set to undefined are accepted', () => {
    const all = resolveConfig({
      url: 'grpc://127.0.0.1:7700',
      urls: ['grpc://127.0.0.1:7700'],
      retry: false,
      circuitBreaker: false,
      keepaliveIntervalMs: 0,
      keepaliveTimeoutMs: 1,
      protocol: 'connect',
      httpVersion: '2',
      maxConcurrentCalls: 0,
      applicationName: 'a',
      minConnections: 1,
      maxConnections: 2,
      maxStreamsPerConnection: 3,
      maxLifetimeSeconds: 4,
      poolRecycleSeconds: 4,
      healthCheckIntervalSeconds: 5,
      idleTimeoutSeconds: 6,
      acquisitionTimeoutMs: 7,
      connectTimeoutMs: 8,
      timeoutMs: 9,
      maxMessageBytes: 10,
      int8: 'string',
      rowMode: 'array',
      interceptors: [],
      onQuery: () => {},
      logParameters: true,
      compression: 'none',
      ssl: false,
      sslMode: 'disable',
      user: 'u',
      password: 'p',
      apiKey: 'k',
      oauth: { token: 't' },
    });
    assert.equal(resolveConfig(all).maxConnections, 2);
    assert.doesNotThrow(() => resolveConfig({ connectionString: undefined } as never));
    assert.equal(resolveConfig('grpc://db:7700').url, 'grpc://db:7700');
  });
});
