/**
 * The CQL listener's pure parts: value codecs round trip (varint, decimal, inet, date, time,
 * collections), the lexer's constants and identifiers, the parser's statements and refusals.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CqlError } from '../src/server/cql/errors.js';
import { tokenize } from '../src/server/cql/lexer.js';
import { parseCql } from '../src/server/cql/parser.js';
import { type CqlType, parseTypeText, t } from '../src/server/cql/types.js';
import { type CqlValue, decodeValue, encodeValue } from '../src/server/cql/values.js';

const roundTrip = (type: CqlType, v: CqlValue) => decodeValue(type, encodeValue(type, v)!);

test('values round trip through their wire bytes', () => {
  for (const v of [0n, 1n, -1n, 127n, 128n, -128n, -129n, 2n ** 70n, -(2n ** 70n)]) assert.equal(roundTrip(t('varint'), v), v);
  assert.deepEqual(encodeValue(t('varint'), 128n), Buffer.from([0x00, 0x80]));
  for (const v of ['0', '1.5', '-12.345', '100', '0.001']) assert.equal(roundTrip(t('decimal'), v), v);
  assert.equal(roundTrip(t('inet'), '10.1.2.3'), '10.1.2.3');
  assert.equal(roundTrip(t('inet'), '::1'), '0:0:0:0:0:0:0:1');
  assert.equal(roundTrip(t('date'), '2026-12-02'), '2026-12-02');
  assert.equal(roundTrip(t('date'), '1969-07-20'), '1969-07-20');
  assert.equal(roundTrip(t('timestamp'), -1n), -1n);
  assert.deepEqual(roundTrip({ kind: 'list', element: t('int') }, [1, -2, 3]), [1, -2, 3]);
  assert.deepEqual(roundTrip({ kind: 'map', key: t('text'), value: t('bigint') }, [['a', 1n]]), [['a', 1n]]);
  assert.throws(() => decodeValue(t('int'), Buffer.alloc(3)), CqlError);
  assert.throws(() => decodeValue({ kind: 'list', element: t('int') }, Buffer.from([0, 0, 0, 9, 0, 0])), CqlError);
});

test('the lexer folds unquoted identifiers, keeps quoted ones, and reads constants', () => {
  const tk = tokenize(
    `SELECT "MiXed", Plain FROM t WHERE a = 'it''s' AND b = -1.5e3 AND c = 0xCAFE AND d = 123e4567-e89b-12d3-a456-426614174000 AND e = ? AND f = :Named -- comment`,
  );
  const texts = tk.map((x) => ('text' in x ? x.text : x.type === 'marker' ? `?${x.name ?? ''}` : x.type));
  assert.deepEqual(texts.slice(0, 4), ['select', 'MiXed', ',', 'plain']);
  assert.ok(texts.includes("it's"));
  assert.ok(texts.includes('-1.5e3'));
  assert.ok(texts.includes('cafe'));
  assert.ok(texts.includes('123e4567-e89b-12d3-a456-426614174000'));
  assert.ok(texts.includes('?') && texts.includes('?named'));
  assert.equal(tk.at(-1)?.type, 'end');
  assert.throws(() => tokenize("SELECT 'open"), CqlError);
});

test('the parser reads the statements and names what it refuses', () => {
  const ct = parseCql(
    "CREATE TABLE IF NOT EXISTS ks.t (a int, b text, c timestamp, v map<text, int>, PRIMARY KEY ((a, b), c)) WITH CLUSTERING ORDER BY (c DESC) AND comment = 'x'",
  );
  assert.equal(ct.statement.kind, 'createTable');
  if (ct.statement.kind === 'createTable') {
    assert.deepEqual(ct.statement.partitionKey, ['a', 'b']);
    assert.deepEqual(ct.statement.clustering, ['c']);
    assert.deepEqual(ct.statement.order, { c: 'DESC' });
    assert.deepEqual(ct.statement.columns[3].type, parseTypeText('map<text,int>'));
  }
  const up = parseCql("UPDATE t SET n = n + ?, l = [1] + l, m = m - {'k'} WHERE a = ? AND b = :b IF EXISTS");
  assert.equal(up.markers.length, 3);
  if (up.statement.kind === 'update') {
    assert.deepEqual(
      up.statement.set.map((s) => s.op),
      ['add', 'prepend', 'subtract'],
    );
    assert.equal(up.statement.ifExists, true);
  }
  const b = parseCql('BEGIN UNLOGGED BATCH INSERT INTO t (a) VALUES (1); DELETE FROM t WHERE a = 2; APPLY BATCH');
  assert.equal(b.statement.kind === 'batch' && b.statement.statements.length, 2);
  assert.equal(parseCql('CREATE INDEX ON t (v)').statement.kind, 'unsupported');
  assert.throws(
    () => parseCql('SELECT FROM'),
    (e: unknown) => e instanceof CqlError && e.code === 0x2000,
  );
  assert.throws(
    () => parseCql('INSERT INTO t (a, b) VALUES (1)'),
    (e: unknown) => e instanceof CqlError && e.code === 0x2000,
  );
});
