/**
 * Type round-trip: for every supported PostgreSQL type, the server's Value (ROW_FORMAT_VALUES) and
 * compact cell (ROW_FORMAT_COMPACT) are compared with what PostgreSQL itself says about the same
 * literal (its text output, and exact microsecond/month/day counts computed in SQL), and every
 * value is sent back as a parameter and compared with the literal inside PostgreSQL. Runs over
 * binary gRPC and over Connect JSON, on both backends.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Value } from '../gen/heliosdb/v1/value_pb.js';
import { RowFormat } from '../gen/heliosdb/v1/value_pb.js';
import { describeEachBackend } from './helpers/backends.js';
import { type DbClient, type ProtocolName, useServer } from './helpers/server.js';
import { compactRows, hex, V, valueRows } from './helpers/values.js';

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

type Kind = Exclude<Value['kind']['case'], undefined>;
type KindValue<K extends Kind> = Extract<Value['kind'], { case: K }>['value'];

/** Asserts `v` has kind `kind` and returns its payload. */
function payload<K extends Kind>(v: Value, kind: K, what: string): KindValue<K> {
  assert.equal(v.kind.case, kind, `${what}: Value kind`);
  return v.kind.value as KindValue<K>;
}

function floatFromText(text: string): number {
  switch (text) {
    case 'NaN':
      return NaN;
    case 'Infinity':
      return Infinity;
    case '-Infinity':
      return -Infinity;
  }
  return Number(text);
}

/** One PostgreSQL type under test. */
interface TypeCase {
  /** The SQL type (may carry a modifier, e.g. `varchar(20)`). */
  type: string;
  /** `pg_type.typname` of the type. */
  typeName: string;
  /** SQL expressions of this type's values (cast to `type`); NULL is added to each. */
  literals: string[];
  /**
   * Optional SQL (over the expression `x` of this type) whose text is exact extra truth for the
   * check, e.g. microseconds since the epoch for timestamps.
   */
  aux?: (x: string) => string;
  /** Checks a result Value against PostgreSQL's `::text` output of the same value and the aux text. */
  check(v: Value, text: string, aux: string | null, what: string): void;
  /** PostgreSQL's wire text output, when it differs from the `::text` cast (bool). */
  wire?: (text: string) => string;
}

/**
 * Exact microseconds since 1970 (wall-clock for timestamp, UTC for timestamptz), from whole days
 * and the time of day: extract(epoch) itself rounds near the end of PostgreSQL's range.
 */
const epochMicros = (utc: boolean) => (x: string) => {
  const y = utc ? `(${x} AT TIME ZONE 'UTC')` : x;
  return (
    `CASE WHEN isfinite(${x}) THEN ((${y}::date - date '1970-01-01')::numeric * 86400000000 + ` +
    `trunc(extract(epoch FROM ${y}::time) * 1000000))::text WHEN ${x} > 'epoch' THEN 'infinity' ELSE '-infinity' END`
  );
};

/**
 * Timestamps travel as microseconds since 1970 (INT64_MAX / INT64_MIN for +-infinity); finite
 * values outside that open range (PostgreSQL's last years, counted from 2000) travel as text.
 */
function checkMicros(kind: 'timestamp' | 'timestamptz') {
  return (v: Value, text: string, aux: string | null, what: string) => {
    const expected = aux === 'infinity' ? INT64_MAX : aux === '-infinity' ? INT64_MIN : BigInt(aux!);
    const finite = aux !== 'infinity' && aux !== '-infinity';
    if (finite && (expected <= INT64_MIN || expected >= INT64_MAX)) {
      assert.equal(payload(v, 'text', `${what} (beyond int64 microseconds)`), text, what);
      return;
    }
    assert.equal(payload(v, kind, what), expected, `${what}: microseconds since the epoch`);
  };
}

function sameText(kind: 'numeric' | 'text' | 'uuid' | 'date' | 'time' | 'json') {
  return (v: Value, text: string, _aux: string | null, what: string) => {
    assert.equal(payload(v, kind, what), text, what);
  };
}

const allBytesHex = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex');

const typeCases: TypeCase[] = [
  {
    type: 'bool',
    typeName: 'bool',
    literals: ['true', 'false'],
    check: (v, text, _a, what) => assert.equal(payload(v, 'bool', what), text === 'true', what),
    wire: (text) => (text === 'true' ? 't' : 'f'),
  },
  {
    type: 'int2',
    typeName: 'int2',
    literals: ['-32768', '32767', '0', '-1'],
    check: (v, text, _a, what) => assert.equal(payload(v, 'int32', what), Number(text), what),
  },
  {
    type: 'int4',
    typeName: 'int4',
    literals: ['-2147483648', '2147483647', '42'],
    check: (v, text, _a, what) => assert.equal(payload(v, 'int32', what), Number(text), what),
  },
  {
    type: 'int8',
    typeName: 'int8',
    literals: ['-9223372036854775808', '9223372036854775807', '9007199254740993', '-9007199254740993', '0'],
    check: (v, text, _a, what) => assert.equal(payload(v, 'int64', what), BigInt(text), what),
  },
  {
    type: 'float4',
    typeName: 'float4',
    literals: [`'NaN'`, `'Infinity'`, `'-Infinity'`, '3.14', `'-2.5e-3'`, `'3.4028235e38'`, `'1.4e-45'`, '0'],
    // A float32 field holds a float32: compare as float32 (JSON may spell 3.14 where binary has 3.1400001).
    check: (v, text, _a, what) => assert.equal(Math.fround(payload(v, 'float32', what)), Math.fround(floatFromText(text)), what),
  },
  {
    type: 'float8',
    typeName: 'float8',
    literals: [`'NaN'`, `'Infinity'`, `'-Infinity'`, '0.1', `'-1.7976931348623157e308'`, `'5e-324'`, '123456789.123456789', '0'],
    check: (v, text, _a, what) => assert.equal(payload(v, 'float64', what), floatFromText(text), what),
  },
  {
    type: 'numeric',
    typeName: 'numeric',
    literals: [
      `'123456789012345678901234567890.123456789012345678901234567890'`,
      `'-0.000000000000000000000000000001'`,
      `'NaN'`,
      `'Infinity'`,
      `'-Infinity'`,
      `'1e40'`,
      '0',
      '1.50',
    ],
    check: sameText('numeric'),
  },
  {
    type: 'text',
    typeName: 'text',
    literals: [
      `''`,
      `'héllo wörld 日本語 🎉 e\u0301'`,
      `E'line1\\nline2\\ttab'`,
      `'quote '' and \\ backslash'`,
      `'NULL'`,
      `'a"b,c{d}'`,
      `' spaced '`,
    ],
    check: sameText('text'),
  },
  {
    type: 'varchar(20)',
    typeName: 'varchar',
    literals: [`''`, `'ünïcödé ✓'`, `'abc'`],
    check: sameText('text'),
  },
  {
    type: 'bytea',
    typeName: 'bytea',
    literals: [`'\\x${allBytesHex}'`, `''`, `'\\xdeadbeef'`],
    check: (v, text, _a, what) => assert.equal('\\x' + hex(payload(v, 'bytes', what)), text, what),
  },
  {
    type: 'uuid',
    typeName: 'uuid',
    literals: [`'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'`, `'00000000-0000-0000-0000-000000000000'`],
    check: sameText('uuid'),
  },
  {
    type: 'date',
    typeName: 'date',
    literals: [`'2024-02-29'`, `'0044-03-15 BC'`, `'4713-01-01 BC'`, `'5874897-12-31'`, `'infinity'`, `'-infinity'`, `'1970-01-01'`],
    check: sameText('date'),
  },
  {
    type: 'time',
    typeName: 'time',
    literals: [`'00:00:00'`, `'13:45:06.123456'`, `'23:59:59.999999'`, `'24:00:00'`],
    check: sameText('time'),
  },
  {
    type: 'timetz',
    typeName: 'timetz',
    literals: [`'13:45:06.123456+02'`, `'00:00:00-12:30'`, `'23:59:59.999999+14'`],
    check: sameText('time'),
  },
  {
    type: 'timestamp',
    typeName: 'timestamp',
    literals: [
      `'2024-02-29 12:34:56.789012'`,
      `'1970-01-01 00:00:00'`,
      `'1969-12-31 23:59:59.999999'`,
      `'0044-03-15 12:00:00.5 BC'`,
      `'4713-01-01 00:00:00 BC'`,
      `'294247-01-10 04:00:54.775806'`,
      `'294247-01-10 04:00:54.775807'`,
      `'294276-12-31 23:59:59.999999'`,
      `'infinity'`,
      `'-infinity'`,
    ],
    aux: epochMicros(false),
    check: checkMicros('timestamp'),
  },
  {
    type: 'timestamptz',
    typeName: 'timestamptz',
    literals: [
      `'2024-02-29 12:34:56.789012+05:30'`,
      `'1970-01-01 00:00:00+00'`,
      `'1900-01-01 00:00:00.000001+00'`,
      `'1969-12-31 23:59:59.999999-08'`,
      `'0044-03-15 12:00:00+00 BC'`,
      `'294247-01-10 04:00:54.775806+00'`,
      `'294276-12-31 23:59:59.999999+00'`,
      `'infinity'`,
      `'-infinity'`,
    ],
    aux: epochMicros(true),
    check: checkMicros('timestamptz'),
  },
  {
    type: 'interval',
    typeName: 'interval',
    literals: [
      `'1 year 2 mons 3 days 04:05:06.789'`,
      `'-1 year +2 mons -3 days +04:05:06.789'`,
      `'1 mon -1 day'`,
      `'-1 day +100:00:00'`,
      `'-00:00:00.000001'`,
      `'178000000 years'`,
      `'0'`,
    ],
    aux: (x) =>
      `concat_ws(' ', (extract(year FROM ${x}) * 12 + extract(month FROM ${x}))::int, extract(day FROM ${x})::int, ` +
      `(extract(hour FROM ${x}) * 3600000000 + extract(minute FROM ${x}) * 60000000 + extract(microseconds FROM ${x}))::int8)`,
    check: (v, _text, aux, what) => {
      const iv = payload(v, 'interval', what);
      const [months, days, micros] = aux!.split(' ');
      assert.deepEqual([iv.months, iv.days, iv.micros], [Number(months), Number(days), BigInt(micros)], `${what}: months, days, micros`);
    },
  },
  {
    type: 'json',
    typeName: 'json',
    literals: [`'{"a": [1, 2.50, null],   "b": "ü\\u0041"}'`, `'[]'`, `'null'`, `'"str"'`, `'1e3'`],
    check: sameText('json'),
  },
  {
    type: 'jsonb',
    typeName: 'jsonb',
    literals: [`'{"b": "ü\\u0041",   "a": [1, 2.50, null]}'`, `'[]'`, `'null'`, `'"str"'`, `'{"nested": {"x": [true, false]}}'`],
    check: sameText('json'),
  },
];

const protocols: ProtocolName[] = ['grpc', 'connect-json'];

/** Asserts the parameter `param`, sent as `$1::type`, equals `expr` in PostgreSQL (by text output). */
async function assertParamEquals(db: DbClient, param: Value, type: string, expr: string, what: string): Promise<void> {
  const r = await db.query({
    sql: `SELECT ($1::${type})::text IS NOT DISTINCT FROM (${expr})::text AS same, ($1::${type})::text AS sent, (${expr})::text AS expected`,
    params: [param],
  });
  const [[same, sent, expected]] = valueRows(r.result!.rows);
  assert.equal(
    same.kind.value,
    true,
    `${what}: parameter arrived as ${JSON.stringify(sent.kind.value)}, expected ${JSON.stringify(expected.kind.value)}`,
  );
}

describeEachBackend('type round-trip', (backend) => {
  const s = useServer(backend);

  for (const protocol of protocols) {
    for (const tc of typeCases) {
      test(`${tc.type} via ${protocol}: VALUES and COMPACT results match PostgreSQL, values return as parameters`, async () => {
        const db = s().client(protocol);
        for (const lit of [...tc.literals, 'NULL']) {
          const what = `${lit}::${tc.type} via ${protocol}`;
          const expr = `(${lit})::${tc.type}`;
          const sql = `SELECT v, v::text AS t, ${tc.aux ? tc.aux('v') : 'NULL::text'} AS a FROM (SELECT ${expr} AS v) s`;
          const values = await db.query({ sql, rowFormat: RowFormat.VALUES });
          const result = values.result!;
          assert.equal(result.columns[0].typeName, tc.typeName, `${what}: column type name`);
          const [[v, t, a]] = valueRows(result.rows);
          if (lit === 'NULL') {
            assert.equal(v.kind.case, 'nullValue', `${what}: NULL`);
            assert.equal(t.kind.case, 'nullValue', `${what}: NULL text`);
          } else {
            const text = payload(t, 'text', `${what} (::text)`);
            const aux = a.kind.case === 'text' ? a.kind.value : null;
            tc.check(v, text, aux, what);

            // COMPACT: the cell is PostgreSQL's text output (raw bytes for bytea).
            const compact = await db.query({ sql, rowFormat: RowFormat.COMPACT });
            const [[cell, cellText]] = compactRows(compact.result!.rows, compact.result!.columns);
            assert.equal(cellText, text, `${what}: compact ::text cell`);
            if (cell instanceof Uint8Array) assert.equal('\\x' + hex(cell), text, `${what}: compact bytea cell`);
            else assert.equal(cell, tc.wire ? tc.wire(text) : text, `${what}: compact cell`);
          }
          // The decoded Value, sent back as a parameter, is the same value to PostgreSQL.
          await assertParamEquals(db, v, tc.type, expr, what);
        }
      });

      test(`${tc.type}[] via ${protocol}: arrays with NULL elements, both directions`, async () => {
        const db = s().client(protocol);
        const what = `${tc.type}[] via ${protocol}`;
        const expr = `ARRAY[${[...tc.literals.slice(0, 2), 'NULL', ...tc.literals.slice(2)].map((l) => `(${l})::${tc.type}`).join(', ')}]::${tc.type}[]`;
        const elements = (f: string) => `(SELECT json_agg(${f} ORDER BY o) FROM unnest(v) WITH ORDINALITY AS u(e, o))::text`;
        const sql =
          `SELECT v, v::text AS t, ${elements('e::text')} AS elems, ${elements(tc.aux ? tc.aux('e') : 'NULL::text')} AS auxs, ` +
          `NULL::${tc.type} AS scalar FROM (SELECT ${expr} AS v) s`;
        const r = await db.query({ sql, rowFormat: RowFormat.VALUES });
        const cols = r.result!.columns;
        assert.equal(cols[0].typeName, `_${tc.typeName}`, `${what}: column type name`);
        const [[v, t, elemsJson, auxJson]] = valueRows(r.result!.rows);
        const texts = JSON.parse(payload(elemsJson, 'text', what)) as (string | null)[];
        const auxs = JSON.parse(payload(auxJson, 'text', what)) as (string | null)[];
        assert.equal(texts.length, tc.literals.length + 1);
        assert.equal(texts[2], null, 'the third element is NULL');
        const arr = payload(v, 'array', what);
        assert.equal(arr.elementTypeOid, cols[4].typeOid, `${what}: element type OID`);
        assert.equal(arr.values.length, texts.length, `${what}: element count`);
        arr.values.forEach((e, i) => {
          if (texts[i] === null) assert.equal(e.kind.case, 'nullValue', `${what}[${i}] is NULL`);
          else tc.check(e, texts[i]!, auxs[i], `${what}[${i}]`);
        });

        const compact = await db.query({ sql, rowFormat: RowFormat.COMPACT });
        const [[cell]] = compactRows(compact.result!.rows, compact.result!.columns);
        assert.equal(cell, payload(t, 'text', what), `${what}: compact cell is the array's text output`);

        await assertParamEquals(db, v, `${tc.type}[]`, expr, what);
      });
    }

    test(`hand-written parameter Values equal their SQL literals via ${protocol}`, async () => {
      const db = s().client(protocol);
      const micros = (iso: string, extra = 0n) => BigInt(Date.parse(iso)) * 1000n + extra;
      const cases: [Value, string, string][] = [
        [V.null(), 'int4', 'NULL'],
        [V.bool(false), 'bool', 'false'],
        [V.int32(-2147483648), 'int4', '-2147483648'],
        [V.int32(-32768), 'int2', '-32768'],
        [V.int64(9007199254740993n), 'int8', '9007199254740993'],
        [V.int64(INT64_MIN), 'int8', '-9223372036854775808'],
        [V.int64(INT64_MAX), 'int8', '9223372036854775807'],
        [V.float32(Math.fround(3.14)), 'float4', '3.14'],
        [V.float32(NaN), 'float4', `'NaN'`],
        [V.float64(NaN), 'float8', `'NaN'`],
        [V.float64(Infinity), 'float8', `'Infinity'`],
        [V.float64(-Infinity), 'float8', `'-Infinity'`],
        [V.float64(0.1), 'float8', '0.1'],
        [V.float64(5e-324), 'float8', `'5e-324'`],
        [
          V.numeric('123456789012345678901234567890.123456789012345678901234567890'),
          'numeric',
          '123456789012345678901234567890.123456789012345678901234567890',
        ],
        [V.numeric('NaN'), 'numeric', `'NaN'`],
        [V.text(''), 'text', `''`],
        [V.text('héllo 日本語 🎉'), 'text', `'héllo 日本語 🎉'`],
        [V.bytes(Uint8Array.from({ length: 256 }, (_, i) => i)), 'bytea', `'\\x${allBytesHex}'`],
        [V.bytes(new Uint8Array(0)), 'bytea', `''`],
        [V.uuid('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), 'uuid', `'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'`],
        [V.date('0044-03-15 BC'), 'date', `'0044-03-15 BC'`],
        [V.date('infinity'), 'date', `'infinity'`],
        [V.time('13:45:06.123456'), 'time', `'13:45:06.123456'`],
        [V.time('13:45:06.123456+02'), 'timetz', `'13:45:06.123456+02'`],
        [V.timestamp(micros('2024-02-29T12:34:56.789Z', 12n)), 'timestamp', `'2024-02-29 12:34:56.789012'`],
        [V.timestamp(-1n), 'timestamp', `'1969-12-31 23:59:59.999999'`],
        [V.timestamp(INT64_MAX), 'timestamp', `'infinity'`],
        [V.timestamptz(micros('2024-02-29T07:04:56.789Z', 12n)), 'timestamptz', `'2024-02-29 12:34:56.789012+05:30'`],
        [V.timestamptz(INT64_MIN), 'timestamptz', `'-infinity'`],
        [
          V.timestamptz(micros('0000-03-15T12:00:00Z') - 43n * 365n * 86400000000n - 11n * 86400000000n),
          'timestamptz',
          `'0044-03-15 12:00:00+00 BC'`,
        ],
        [V.interval(14, 3, 14706789000n), 'interval', `'1 year 2 mons 3 days 04:05:06.789'`],
        [V.interval(-10, -3, 14706789000n), 'interval', `'-1 year +2 mons -3 days +04:05:06.789'`],
        [V.interval(0, 0, -1n), 'interval', `'-00:00:00.000001'`],
        [V.json('{"a": [1, 2.50, null]}'), 'json', `'{"a": [1, 2.50, null]}'`],
        [V.json('{"b":2,"a":1}'), 'jsonb', `'{"a": 1, "b": 2}'`],
        [V.array([V.int32(1), V.null(), V.int32(3)]), 'int4[]', 'ARRAY[1, NULL, 3]'],
        [
          V.array([V.text('a"b'), V.text('c\\d'), V.null(), V.text('NULL'), V.text(''), V.text('{x,y}')]),
          'text[]',
          `ARRAY['a"b', 'c\\d', NULL, 'NULL', '', '{x,y}']`,
        ],
        [V.array([V.bytes(Uint8Array.of(0, 255)), V.null()]), 'bytea[]', `ARRAY['\\x00ff'::bytea, NULL]`],
        [
          V.array([V.timestamptz(0n), V.null(), V.timestamptz(INT64_MAX)]),
          'timestamptz[]',
          `ARRAY['1970-01-01 00:00:00+00'::timestamptz, NULL, 'infinity']`,
        ],
        [V.array([V.interval(1, -1, 0n), V.null()]), 'interval[]', `ARRAY['1 mon -1 day'::interval, NULL]`],
        [V.array([V.json('{"k": "v\\"q"}'), V.null()]), 'jsonb[]', `ARRAY['{"k": "v\\"q"}'::jsonb, NULL]`],
        [V.array([V.float64(NaN), V.float64(-Infinity), V.null()]), 'float8[]', `ARRAY['NaN'::float8, '-Infinity', NULL]`],
        [V.array([V.numeric('1.000000000000000000000000000001'), V.null()]), 'numeric[]', `ARRAY[1.000000000000000000000000000001, NULL]`],
        [V.array([]), 'int8[]', `'{}'`],
      ];
      for (const [param, type, lit] of cases) {
        await assertParamEquals(
          db,
          param,
          type,
          `(${lit})::${type}`,
          `${JSON.stringify(param.kind, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x))} as ${type}`,
        );
      }
    });
  }

  test('untyped NULL and typed NULLs come back as null_value', async () => {
    const r = await s().db.query({ sql: 'SELECT NULL AS a, NULL::int8 AS b, NULL::bytea AS c, NULL::int4[] AS d' });
    const [row] = valueRows(r.result!.rows);
    assert.deepEqual(
      row.map((v) => v.kind.case),
      ['nullValue', 'nullValue', 'nullValue', 'nullValue'],
    );
    const c = await s().db.query({ sql: 'SELECT NULL AS a, NULL::int8 AS b, NULL::bytea AS c', rowFormat: RowFormat.COMPACT });
    assert.deepEqual(compactRows(c.result!.rows, c.result!.columns), [[null, null, null]]);
  });

  test('varchar(n) reports its type modifier', async () => {
    const r = await s().db.query({ sql: "SELECT 'x'::varchar(20) AS v, 1::int4 AS i" });
    assert.deepEqual(
      r.result!.columns.map((c) => [c.typeName, c.typeOid, c.typeModifier]),
      [
        ['varchar', 1043, 24],
        ['int4', 23, -1],
      ],
    );
  });
});
