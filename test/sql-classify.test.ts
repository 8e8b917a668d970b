/**
 * The client's lexical classifier (src/sql-classify.ts): its tokenizer, which texts are reads and
 * which may carry an idempotency key; and, against the server's analysis with PostgreSQL's parser
 * (src/server/sql/analyze.ts), that it is never looser: on the statement corpus of every SQL
 * command, on scripts made of them, and on random texts built from tricky fragments.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, test } from 'node:test';
import { analyzeSql, loadSqlParser, type SqlAnalysis } from '../src/server/sql/analyze.js';
import { isKeyableSql, isReadOnlySql, splitStatements, tokenizeSql } from '../src/client/sql-classify.js';
import { corpus } from './helpers/sql-corpus.js';

before(() => loadSqlParser());

const kinds = (sql: string, scs?: boolean) =>
  tokenizeSql(sql, { standardConformingStrings: scs }).tokens.map(
    (t) => `${t.kind}:${t.kind === 'word' || t.kind === 'quoted' || t.kind === 'param' ? t.value : t.end - t.start}`,
  );

test('tokenizer: literals, identifiers, dollar quotes, comments', () => {
  assert.deepEqual(kinds("SELECT 'it''s', E'a\\'b', \"Q\"\"x\" -- c\n/* a /* b */ c */ $1;"), [
    'word:select',
    'string:7',
    'other:1',
    'string:7',
    'other:1',
    'quoted:Q"x',
    'param:1',
    'semicolon:1',
  ]);
  assert.deepEqual(kinds('$$a;b$$ $t$ $$ $t$ a$b$ $x'), ['string:7', 'string:10', 'word:a$b$', 'other:1', 'word:x']);
  assert.deepEqual(kinds("U&'\\0041' U&\"d\" B'1' X'F' N'n' e'\\''"), [
    'string:9',
    'quoted:d',
    'string:4',
    'string:4',
    'string:4',
    'string:5',
  ]);
  assert.deepEqual(kinds("date'2020-01-01' 1.5e3x .5"), ['word:date', 'string:12', 'number:5', 'word:x', 'number:2']);
  // standard_conforming_strings off: a backslash escapes in '' too.
  assert.deepEqual(kinds("'a\\'b'", false), ['string:6']);
  assert.deepEqual(kinds("'a\\'b'", true), ['string:4', 'string:2'], "on: 'a\\' then an unterminated B'");
  assert.equal(tokenizeSql("'a\\'").backslashInString, true);
  for (const sql of ["SELECT 'x", 'SELECT "x', 'SELECT $$x', '/* /* */', "E'\\'"]) assert.equal(tokenizeSql(sql).unterminated, true, sql);
  assert.equal(tokenizeSql('SELECT 1 -- no newline').unterminated, false);
  const split = splitStatements(
    tokenizeSql('SELECT 1; ; CREATE RULE r AS ON INSERT TO t DO ALSO (DELETE FROM u; DELETE FROM v); SELECT 2').tokens,
  );
  assert.deepEqual(
    split.map((s) => s[0]!.value),
    ['select', 'create', 'select'],
  );
});

test('reads', () => {
  for (const sql of [
    'SELECT 1',
    '  select * from t where a = $1',
    '(SELECT 1) UNION (SELECT 2)',
    'VALUES (1), (2)',
    'TABLE t',
    'SHOW work_mem',
    'EXPLAIN SELECT 1',
    'EXPLAIN (COSTS off, FORMAT json) DELETE FROM t',
    'WITH x AS (SELECT 1) SELECT * FROM x',
    "SELECT 'insert into t' AS text",
    '-- insert\nSELECT 1',
    'SELECT 1; SELECT 2;',
    "SELECT ';' AS a, '/*' AS b, '--' AS c",
    'SELECT $$ ; DELETE FROM t; $$',
    "SELECT $x$ it's $$ ; UPDATE t $x$",
    "SELECT E'it\\'s; DELETE FROM t; --'",
    '/* a /* nested */ DELETE FROM t; */ SELECT 1',
    'SELECT "update", "insert" FROM t',
    'SELECT a$b$ FROM t',
    "SELECT 'C:\\temp' AS path",
  ]) {
    assert.equal(isReadOnlySql(sql), true, sql);
  }
});

test('not reads', () => {
  for (const sql of [
    'INSERT INTO t VALUES (1)',
    'UPDATE t SET a = 1',
    'DELETE FROM t',
    'MERGE INTO t USING u ON true WHEN MATCHED THEN DELETE',
    "WITH s AS (SELECT '--' AS sep) INSERT INTO t SELECT * FROM s",
    'WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d',
    'SELECT * INTO t2 FROM t',
    'SELECT * FROM t FOR UPDATE',
    'SELECT * FROM t FOR NO KEY UPDATE',
    'SELECT * FROM t FOR SHARE',
    'SELECT * FROM t FOR KEY SHARE',
    'EXPLAIN ANALYZE DELETE FROM t',
    'EXPLAIN ANALYSE SELECT 1',
    'EXPLAIN (FORMAT json, ANALYZE) SELECT 1',
    'EXPLAIN ("analyze") SELECT 1',
    "SELECT nextval('s')",
    `SELECT "nextval"('s')`,
    "SELECT setval('s', 1)",
    'SELECT 1; DELETE FROM t',
    'CREATE TABLE t (a int)',
    'CALL p()',
    'DO $$BEGIN END$$',
    'COPY t TO STDOUT',
    'LOCK t',
    'FETCH NEXT FROM c',
    'DECLARE c CURSOR FOR SELECT 1',
    'SET x = 1',
    '',
    '   ',
    '-- only a comment',
    "SELECT 'unterminated",
    'SELECT 1 /* unterminated',
    // Read under standard_conforming_strings on, a DELETE under off: both readings must be reads.
    "SELECT 'a\\', '; DELETE FROM t; --'",
  ]) {
    assert.equal(isReadOnlySql(sql), false, sql);
  }
});

test('idempotency keys: transaction control and what cannot run in a transaction block never carry one', () => {
  for (const sql of [
    'INSERT INTO t VALUES (1)',
    'UPDATE t SET a = 1; DELETE FROM u',
    'CREATE INDEX i ON t (a)',
    'REFRESH MATERIALIZED VIEW CONCURRENTLY mv',
    'ALTER TYPE e ADD VALUE $$x$$',
    "INSERT INTO t VALUES ('COMMIT; VACUUM')",
    'CREATE TEXT SEARCH PARSER p (START = a, GETTOKEN = b, END = c, LEXTYPES = d)',
    'SET work_mem = 1000',
    'PREPARE p AS SELECT 1',
    'NOTIFY c',
    '',
  ]) {
    assert.equal(isKeyableSql(sql), true, sql);
  }
  for (const sql of [
    'BEGIN',
    'START TRANSACTION',
    'COMMIT',
    'END',
    'ROLLBACK',
    'ABORT',
    'SAVEPOINT s',
    'RELEASE s',
    "PREPARE TRANSACTION 'x'",
    "COMMIT PREPARED 'x'",
    "ROLLBACK PREPARED 'x'",
    'INSERT INTO t VALUES (1); COMMIT',
    'SET TRANSACTION READ WRITE',
    'SET LOCAL TRANSACTION ISOLATION LEVEL SERIALIZABLE',
    'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE',
    'SET transaction_read_only = off',
    'SET LOCAL "transaction_isolation" = serializable',
    'SET default_transaction_read_only = off',
    'VACUUM t',
    'CREATE INDEX CONCURRENTLY i ON t (a)',
    'CREATE UNIQUE INDEX CONCURRENTLY i ON t (a)',
    'DROP INDEX CONCURRENTLY i',
    'REINDEX TABLE t',
    'CLUSTER',
    'ALTER TABLE pt DETACH PARTITION p CONCURRENTLY',
    'ALTER DATABASE d SET TABLESPACE ts',
    'ALTER SYSTEM SET work_mem = 1',
    'CREATE DATABASE d',
    'DROP DATABASE d',
    'CREATE TABLESPACE ts LOCATION $$/x$$',
    'DROP TABLESPACE ts',
    "CREATE SUBSCRIPTION s CONNECTION '' PUBLICATION p",
    'ALTER SUBSCRIPTION s REFRESH PUBLICATION',
    'DROP SUBSCRIPTION s',
    'DISCARD ALL',
    'CALL p()',
    'DO $$BEGIN COMMIT; END$$',
    'COPY t FROM STDIN',
    'LISTEN c',
    'UNLISTEN *',
    'LOCK t',
    'CHECKPOINT',
    "INSERT INTO t VALUES ('x", // unterminated: nothing is sure
  ]) {
    assert.equal(isKeyableSql(sql), false, sql);
  }
});

/** What the server's analysis allows: every statement a read; no statement transaction control or outside a block. */
function serverSays(a: SqlAnalysis): { read: boolean; keyable: boolean } {
  return {
    read: a.parsed && a.statements.length > 0 && a.statements.every((s) => s.readOnly),
    keyable: !a.parsed || a.statements.every((s) => !s.outsideTransactionBlock && !s.transactionControl),
  };
}

/**
 * The client is never looser than the server: a text it calls a read is one the server's parser
 * calls a read in every statement (or one PostgreSQL cannot parse, which then never runs), and a
 * text it lets carry a key has no statement the server finds unkeyable.
 */
function assertNeverLooser(sql: string): void {
  const server = serverSays(analyzeSql(sql));
  const parsed = analyzeSql(sql).parsed;
  if (isReadOnlySql(sql)) assert.ok(server.read || !parsed, `the client calls a read what the server does not: ${JSON.stringify(sql)}`);
  if (isKeyableSql(sql)) assert.ok(server.keyable, `the client would key what the server finds unkeyable: ${JSON.stringify(sql)}`);
}

test('differential: the corpus of every SQL command, alone and in scripts', () => {
  const stricter: string[] = [];
  for (const row of corpus) {
    assertNeverLooser(row.sql);
    if (serverSays(analyzeSql(row.sql)).read && !isReadOnlySql(row.sql)) stricter.push(row.sql);
  }
  // Where the client is stricter than the server, on purpose: any ANALYZE in an EXPLAIN, the
  // text that reads differently without standard_conforming_strings, nextval.
  assert.deepEqual(stricter, [
    'EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM t',
    'EXPLAIN (ANALYZE off) DELETE FROM t',
    "SELECT 'a\\', '; DELETE FROM t; --'",
    "SELECT nextval('seq')",
  ]);
  // Scripts: each statement before and after a few others (reads and writes).
  const others = ['SELECT 1', 'DELETE FROM t', 'COMMIT', "SELECT '--;'"];
  for (const row of corpus) {
    for (const o of others) {
      assertNeverLooser(`${row.sql}; ${o}`);
      assertNeverLooser(`${o};\n${row.sql}`);
    }
  }
});

/** xorshift32: the same "random" texts on every run. */
function randomSource(state: number): (n: number) => number {
  return (n) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
}

test('differential: random texts from tricky fragments', () => {
  const fragments = [
    'SELECT',
    'select',
    '1',
    '*',
    'FROM t',
    'WHERE',
    'a =',
    '$1',
    ',',
    '(',
    ')',
    ';',
    ';',
    "'--'",
    "'a''b'",
    "E'\\''",
    "'\\'",
    "'",
    '$$;$$',
    "$x$ ' ; DELETE FROM t $x$",
    '$$',
    '--c\n',
    '-- DELETE FROM t\n',
    '/* /* */ */',
    '/*',
    '*/',
    '"q""x"',
    '"',
    'INSERT INTO t VALUES (1)',
    'DELETE FROM t',
    'UPDATE t SET a = 1',
    'FOR UPDATE',
    'FOR SHARE',
    'WITH x AS (',
    'SELECT * FROM x',
    'INTO',
    "nextval('s')",
    'TABLE t',
    'VALUES (1)',
    'SHOW x',
    'EXPLAIN',
    'ANALYZE',
    '(ANALYZE)',
    'COMMIT',
    'BEGIN',
    'VACUUM',
    'CREATE INDEX CONCURRENTLY i ON t (a)',
    'SET transaction_read_only = off',
    "U&'\\0041'",
    'a$b$',
    'e',
    "N'x'",
    'CALL p()',
    'DO',
    'COPY t TO STDOUT',
    'UNION',
    'RETURNING *',
    'x',
    '.',
    '::text',
  ];
  const random = randomSource(0x2545f491);
  let parsedReads = 0;
  for (let i = 0; i < 4000; i++) {
    const parts: string[] = [];
    const n = 1 + random(8);
    for (let j = 0; j < n; j++) parts.push(fragments[random(fragments.length)]!, random(3) === 0 ? '' : ' ');
    const sql = parts.join('');
    assertNeverLooser(sql);
    if (isReadOnlySql(sql) && analyzeSql(sql).parsed) parsedReads++;
  }
  assert.ok(parsedReads > 50, `the random texts include reads (${parsedReads})`);
});

test('differential: random select lists of literals and comments, with writes between them', () => {
  // Each piece is valid where a select-list item (or the space between items) may stand, so that
  // most texts parse, and a lexer that misreads one quote hides or reveals what follows.
  const items = [
    "'x'",
    "'--'",
    "';'",
    "'/*'",
    "'a''b'",
    "E'\\''",
    "E'\\\\'",
    "'\\'",
    "'; DELETE FROM t; --'",
    "E'\\'; DELETE FROM t; --'",
    '$$;$$',
    "$$'$$",
    "$q$ $$ ' $q$",
    '"c"',
    '"c""d"',
    "U&'\\0041'",
    "B'1'",
    "X'f'",
    "N'n'",
    '$1',
    'a$b$',
    '1',
    'x.y',
  ];
  const gaps = [' ', ', ', ' /* c */ ', " /* ' */ ", ' /* /* n */ ; DELETE FROM t */ ', " -- it's\n", ' --\n', ', "it\'s", '];
  const tails = ['', ';', '; DELETE FROM t', '; SELECT 2', '; COMMIT', "; INSERT INTO t VALUES ('x')", ' FOR UPDATE', ' -- done', " -- '"];
  const random = randomSource(0x1b873593);
  let reads = 0;
  let writes = 0;
  for (let i = 0; i < 6000; i++) {
    let sql = 'SELECT ' + items[random(items.length)]!;
    const n = random(4);
    for (let j = 0; j < n; j++) sql += gaps[random(gaps.length)]! + items[random(items.length)]!;
    sql += tails[random(tails.length)]!;
    if (random(4) === 0) sql += gaps[random(gaps.length)]! + items[random(items.length)]! + tails[random(tails.length)]!;
    assertNeverLooser(sql);
    const a = analyzeSql(sql);
    if (a.parsed && isReadOnlySql(sql)) reads++;
    if (a.parsed && !serverSays(a).read) writes++;
  }
  assert.ok(reads > 500 && writes > 500, `reads ${reads}, writes ${writes}`);
});

test('browser-safe: the classifier imports nothing', () => {
  const source = readFileSync(new URL('../src/client/sql-classify.ts', import.meta.url), 'utf8');
  assert.doesNotMatch(source, /^\s*import\s/m);
  assert.doesNotMatch(source, /node:|require\(/);
});
