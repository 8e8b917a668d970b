/** The row codec's pure parts: parameters out, values and PostgreSQL text back, without a server. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DecodeError, ParameterError } from '../../src/client/errors.js';
import { parseArrayLiteral } from '../../src/client/protocol/array-literal.js';
import {
  formatInterval,
  formatTimestampMicros,
  parseInterval,
  parseTimestampMicros,
  parseTimestampMs,
} from '../../src/client/protocol/datetime.js';
import { valueToJs } from '../../src/client/protocol/decode-values.js';
import { Oid } from '../../src/client/protocol/oids.js';
import { toParam, toParams } from '../../src/client/protocol/params.js';

test('parameters: each JavaScript type becomes the documented Value kind', () => {
  const kind = (v: unknown) => toParam(v).kind.case;
  assert.deepEqual(
    [
      null,
      undefined,
      true,
      1,
      2 ** 40,
      1.5,
      Number.NaN,
      1n,
      2n ** 70n,
      's',
      new Date(0),
      new Uint8Array(1),
      new ArrayBuffer(2),
      [1],
      { a: 1 },
    ].map(kind),
    [
      'nullValue',
      'nullValue',
      'bool',
      'int32',
      'int64',
      'float64',
      'float64',
      'int64',
      'numeric',
      'text',
      'timestamptz',
      'bytes',
      'bytes',
      'array',
      'json',
    ],
  );
  assert.equal(toParam(2n ** 70n).kind.value, (2n ** 70n).toString());
});

test('parameters: what cannot be sent throws ParameterError naming the parameter', () => {
  const cyclic: unknown[] = [];
  cyclic.push(cyclic);
  for (const [v, where] of [
    [new Map(), '$1'],
    [new Set(), '$1'],
    [() => 1, '$1'],
    [Symbol('x'), '$1'],
    [new Date(Number.NaN), '$1'],
    [[1, [new Map()]], '$1[1][0]'],
    [cyclic, '$1[0]'],
  ] as [unknown, string][]) {
    assert.throws(
      () => toParam(v),
      (err: unknown) => err instanceof ParameterError && err.message.includes(where),
      `${String(where)}: a ParameterError that names the parameter`,
    );
  }
  for (const lone of [5, { id: 1 }, new Map([[1, 2]]), 'x'])
    assert.throws(() => toParams(lone as never), ParameterError, `${String(lone)} as the parameter list`);
  assert.deepEqual(toParams(undefined), []);
});

test('array literals: nesting, quoting, NULL, dimension bounds; malformed text throws, never loops', () => {
  assert.deepEqual(parseArrayLiteral('{}'), []);
  assert.deepEqual(parseArrayLiteral('{1,NULL,"NULL","a\\"b",{x,y}}'), ['1', null, 'NULL', 'a"b', ['x', 'y']]);
  assert.deepEqual(parseArrayLiteral('[0:1]={a,b}'), ['a', 'b']);
  for (const bad of ['{"abc', '{', '{a', '{a,', '"', '{{a}', '[1:2]{a}', 'x', ''])
    assert.throws(() => parseArrayLiteral(bad), DecodeError, JSON.stringify(bad));
});

test('timestamps and intervals: text round-trips exactly, infinities and BC dates included', () => {
  for (const [text, utc] of [
    ['2024-02-29 23:59:59.999999', false],
    ['1970-01-01 00:00:00', false],
    ['0044-03-15 12:00:00 BC', false],
    ['2000-01-01 00:00:00+00', true],
  ] as [string, boolean][]) {
    const micros = parseTimestampMicros(text);
    assert.notEqual(micros, undefined, text);
    assert.equal(parseTimestampMicros(formatTimestampMicros(micros!, utc)), micros, text);
  }
  assert.equal(parseTimestampMs('1970-01-01 00:00:01.5+00'), 1500);
  assert.equal(parseTimestampMicros('not a time'), undefined);
  const iv = parseInterval('1 year 2 mons -3 days +04:05:06.789');
  assert.deepEqual(iv, { months: 14, days: -3, micros: 14706789000n });
  assert.equal(formatInterval(iv!), '14 mons -3 days 14706.789000 seconds');
  assert.equal(parseInterval('04:99:00'), undefined);
  assert.equal(parseInterval('P1Y'), undefined, 'other IntervalStyles are not guessed at');
});

test('values: int8 modes, oid as number, arrays by element type', async () => {
  const { create } = await import('@bufbuild/protobuf');
  const { ValueSchema } = await import('../../gen/heliosdb/v1/value_pb.js');
  const i64 = create(ValueSchema, { kind: { case: 'int64', value: 9007199254740993n } });
  assert.equal(valueToJs(i64, Oid.int8, 'bigint'), 9007199254740993n);
  assert.equal(valueToJs(i64, Oid.int8, 'string'), '9007199254740993');
  assert.equal(valueToJs(create(ValueSchema, { kind: { case: 'int64', value: 26n } }), Oid.oid, 'bigint'), 26);
  assert.equal(valueToJs(create(ValueSchema, {}), Oid.int4, 'bigint'), null);
});
