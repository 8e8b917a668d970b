/**
 * Which INSERTs executeMany may run as one `INSERT ... SELECT * FROM unnest(...)` per chunk,
 * decided on PostgreSQL's parse tree, the text it becomes, and the array literal of a column.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { loadSqlParser } from '../../src/server/sql/analyze.js';
import { arrayLiteral, planUnnestInsert, unnestInsertText } from '../../src/server/sql/unnest-insert.js';

before(() => loadSqlParser());

test('single-row VALUES of bare parameters are rewritten, the text around them kept', () => {
  const plan = planUnnestInsert('INSERT INTO "Odd table" (b, a) OVERRIDING SYSTEM VALUE VALUES ($2, $1);');
  assert.ok(plan);
  assert.deepEqual(plan.order, [2, 1]);
  assert.equal(
    unnestInsertText(plan, ['pg_catalog."int4"[]', 'pg_catalog."text"[]']),
    'INSERT INTO "Odd table" (b, a) OVERRIDING SYSTEM VALUE SELECT * FROM ROWS FROM ' +
      '(pg_catalog.unnest($2::pg_catalog."text"[]), pg_catalog.unnest($1::pg_catalog."int4"[]))',
  );
  const unicode = planUnnestInsert('insert into t_é (x)values($1)');
  assert.ok(unicode, 'byte offsets after non-ASCII text are handled');
  assert.equal(
    unnestInsertText(unicode, ['pg_catalog."int4"[]']),
    'insert into t_é (x)SELECT * FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog."int4"[]))',
  );
});

test('everything whose meaning would change in one statement keeps the per-set path', () => {
  for (const sql of [
    'INSERT INTO t VALUES ($1, now())',
    'INSERT INTO t VALUES ($1::int, $2)',
    'INSERT INTO t VALUES ($1, $1)',
    'INSERT INTO t VALUES ($1, $3)',
    'INSERT INTO t VALUES ($1), ($2)',
    'INSERT INTO t VALUES ($1) RETURNING id',
    'INSERT INTO t VALUES ($1) ON CONFLICT DO NOTHING',
    'INSERT INTO t VALUES ($1) ON CONFLICT (id) DO UPDATE SET v = excluded.v',
    'WITH x AS (SELECT 1) INSERT INTO t VALUES ($1)',
    'INSERT INTO t SELECT $1',
    'INSERT INTO t DEFAULT VALUES',
    'INSERT INTO t VALUES ($1); INSERT INTO t VALUES ($1)',
    'UPDATE t SET v = $1',
    'INSERT INTO t VALUES (/* c */ $1)',
    'INSERT INTO t VALUES ($1 /* c */)',
    'not sql at all',
  ]) {
    assert.equal(planUnnestInsert(sql), undefined, sql);
  }
});

test('array literals quote every element; NULL stays NULL', () => {
  assert.equal(arrayLiteral(['a', null, '', 'x"y', 'b\\c', '{1,2}', 'NULL']), '{"a",NULL,"","x\\"y","b\\\\c","{1,2}","NULL"}');
});
