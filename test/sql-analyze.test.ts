/**
 * The server's statement analysis (src/server/sql/): every command of PostgreSQL 15's reference
 * list and tricky texts get the expected facets (test/helpers/sql-corpus.ts); statement texts of
 * scripts; unparseable texts; the cache; replaceCopyStdio; parse timing. Against PostgreSQL 15
 * (HELIOSDB_TEST_POSTGRES_URL): what is marked outsideTransactionBlock is exactly what PostgreSQL
 * refuses in a transaction block, and what is marked readOnly runs in a READ ONLY transaction.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import {
  analysisCacheLimits,
  analysisCacheStats,
  analyzeSql,
  isReadOnlyAnalysis,
  isSingleStatement,
  loadSqlParser,
  NotCopyStdioError,
  replaceCopyStdio,
} from '../src/server/sql/analyze.js';
import { postgresSkipReason, postgresUrlEnv } from './helpers/backends.js';
import { corpus, type CorpusRow } from './helpers/sql-corpus.js';

/** PostgreSQL 15's "SQL Commands" reference list. */
const referenceCommands =
  `ABORT|ALTER AGGREGATE|ALTER COLLATION|ALTER CONVERSION|ALTER DATABASE|ALTER DEFAULT PRIVILEGES|ALTER DOMAIN|ALTER EVENT TRIGGER|ALTER EXTENSION|ALTER FOREIGN DATA WRAPPER|ALTER FOREIGN TABLE|ALTER FUNCTION|ALTER GROUP|ALTER INDEX|ALTER LANGUAGE|ALTER LARGE OBJECT|ALTER MATERIALIZED VIEW|ALTER OPERATOR|ALTER OPERATOR CLASS|ALTER OPERATOR FAMILY|ALTER POLICY|ALTER PROCEDURE|ALTER PUBLICATION|ALTER ROLE|ALTER ROUTINE|ALTER RULE|ALTER SCHEMA|ALTER SEQUENCE|ALTER SERVER|ALTER STATISTICS|ALTER SUBSCRIPTION|ALTER SYSTEM|ALTER TABLE|ALTER TABLESPACE|ALTER TEXT SEARCH CONFIGURATION|ALTER TEXT SEARCH DICTIONARY|ALTER TEXT SEARCH PARSER|ALTER TEXT SEARCH TEMPLATE|ALTER TRIGGER|ALTER TYPE|ALTER USER|ALTER USER MAPPING|ALTER VIEW|ANALYZE|BEGIN|CALL|CHECKPOINT|CLOSE|CLUSTER|COMMENT|COMMIT|COMMIT PREPARED|COPY|CREATE ACCESS METHOD|CREATE AGGREGATE|CREATE CAST|CREATE COLLATION|CREATE CONVERSION|CREATE DATABASE|CREATE DOMAIN|CREATE EVENT TRIGGER|CREATE EXTENSION|CREATE FOREIGN DATA WRAPPER|CREATE FOREIGN TABLE|CREATE FUNCTION|CREATE GROUP|CREATE INDEX|CREATE LANGUAGE|CREATE MATERIALIZED VIEW|CREATE OPERATOR|CREATE OPERATOR CLASS|CREATE OPERATOR FAMILY|CREATE POLICY|CREATE PROCEDURE|CREATE PUBLICATION|CREATE ROLE|CREATE RULE|CREATE SCHEMA|CREATE SEQUENCE|CREATE SERVER|CREATE STATISTICS|CREATE SUBSCRIPTION|CREATE TABLE|CREATE TABLE AS|CREATE TABLESPACE|CREATE TEXT SEARCH CONFIGURATION|CREATE TEXT SEARCH DICTIONARY|CREATE TEXT SEARCH PARSER|CREATE TEXT SEARCH TEMPLATE|CREATE TRANSFORM|CREATE TRIGGER|CREATE TYPE|CREATE USER|CREATE USER MAPPING|CREATE VIEW|DEALLOCATE|DECLARE|DELETE|DISCARD|DO|DROP ACCESS METHOD|DROP AGGREGATE|DROP CAST|DROP COLLATION|DROP CONVERSION|DROP DATABASE|DROP DOMAIN|DROP EVENT TRIGGER|DROP EXTENSION|DROP FOREIGN DATA WRAPPER|DROP FOREIGN TABLE|DROP FUNCTION|DROP GROUP|DROP INDEX|DROP LANGUAGE|DROP MATERIALIZED VIEW|DROP OPERATOR|DROP OPERATOR CLASS|DROP OPERATOR FAMILY|DROP OWNED|DROP POLICY|DROP PROCEDURE|DROP PUBLICATION|DROP ROLE|DROP ROUTINE|DROP RULE|DROP SCHEMA|DROP SEQUENCE|DROP SERVER|DROP STATISTICS|DROP SUBSCRIPTION|DROP TABLE|DROP TABLESPACE|DROP TEXT SEARCH CONFIGURATION|DROP TEXT SEARCH DICTIONARY|DROP TEXT SEARCH PARSER|DROP TEXT SEARCH TEMPLATE|DROP TRANSFORM|DROP TRIGGER|DROP TYPE|DROP USER|DROP USER MAPPING|DROP VIEW|END|EXECUTE|EXPLAIN|FETCH|GRANT|IMPORT FOREIGN SCHEMA|INSERT|LISTEN|LOAD|LOCK|MERGE|MOVE|NOTIFY|PREPARE|PREPARE TRANSACTION|REASSIGN OWNED|REFRESH MATERIALIZED VIEW|REINDEX|RELEASE SAVEPOINT|RESET|REVOKE|ROLLBACK|ROLLBACK PREPARED|ROLLBACK TO SAVEPOINT|SAVEPOINT|SECURITY LABEL|SELECT|SELECT INTO|SET|SET CONSTRAINTS|SET ROLE|SET SESSION AUTHORIZATION|SET TRANSACTION|SHOW|START TRANSACTION|TRUNCATE|UNLISTEN|UPDATE|VACUUM|VALUES`.split(
    '|',
  );

before(async () => {
  await loadSqlParser();
  await loadSqlParser(); // idempotent
});

/** The facets a row expects, in the shape of a StatementInfo's. */
function expected(row: CorpusRow) {
  return {
    command: row.command,
    readOnly: row.readOnly ?? false,
    outsideTransactionBlock: row.outsideTransactionBlock ?? false,
    sessionState: row.sessionState ?? false,
    identityChange: row.identityChange ?? false,
    transactionControl: row.transactionControl,
    chain: row.chain,
    copy: row.copy,
    listen: row.listen,
    notify: row.notify,
    maxParam: row.maxParam ?? 0,
  };
}

test('every command of the SQL Commands reference list has a row, and each row its facets', () => {
  const covered = new Set(corpus.map((r) => r.command));
  assert.deepEqual(
    referenceCommands.filter((c) => !covered.has(c)),
    [],
    'commands without a corpus row',
  );
  for (const row of corpus) {
    const a = analyzeSql(row.sql);
    assert.equal(a.parsed, true, `${row.sql}: ${a.parseError}`);
    assert.equal(a.statements.length, 1, row.sql);
    const s = a.statements[0]!;
    const {
      command,
      readOnly,
      outsideTransactionBlock,
      sessionState,
      identityChange,
      transactionControl,
      chain,
      copy,
      listen,
      notify,
      maxParam,
    } = s;
    assert.deepEqual(
      {
        command,
        readOnly,
        outsideTransactionBlock,
        sessionState,
        identityChange,
        transactionControl,
        chain,
        copy,
        listen,
        notify,
        maxParam,
      },
      expected(row),
      row.sql,
    );
    if (row.node) assert.equal(s.node, row.node, row.sql);
    if (row.read) assert.deepEqual([...s.tables.read].sort(), [...row.read].sort(), `${row.sql}: tables read`);
    if (row.written) assert.deepEqual([...s.tables.written].sort(), [...row.written].sort(), `${row.sql}: tables written`);
    assert.equal(s.text, row.text ?? row.sql.trim(), row.sql);
  }
});

test('a script: statements in order, each with its own text (byte offsets of non-ASCII text mapped back)', () => {
  const sql = "SELECT 'é' AS e;\n  INSERT INTO t VALUES ($2, 'ü;');  /* note */ COMMIT AND CHAIN;\n-- done\n";
  const a = analyzeSql(sql);
  assert.equal(a.parsed, true);
  assert.deepEqual(
    a.statements.map((s) => [s.command, s.text, s.readOnly, s.maxParam]),
    [
      ['SELECT', "SELECT 'é' AS e", true, 0],
      ['INSERT', "INSERT INTO t VALUES ($2, 'ü;')", false, 2],
      ['COMMIT', 'COMMIT AND CHAIN', false, 0],
    ],
  );
  assert.equal(a.statements[2]!.chain, true);
  assert.equal(isSingleStatement(a), false);
  assert.equal(isReadOnlyAnalysis(a), false);
  assert.equal(isReadOnlyAnalysis(analyzeSql('SELECT 1; SHOW work_mem; VALUES (1)')), true);
  assert.equal(isSingleStatement(analyzeSql('SELECT 1;')), true);
  // The classic: a `--` inside a literal does not hide the INSERT.
  const hidden = analyzeSql("WITH s AS (SELECT '--' AS sep) INSERT INTO t SELECT 1, sep FROM s; SELECT 2");
  assert.deepEqual(
    hidden.statements.map((s) => [s.command, s.readOnly]),
    [
      ['INSERT', false],
      ['SELECT', true],
    ],
  );
});

test('empty, comment-only and unparseable texts', () => {
  for (const sql of ['', '   \n', '-- only a comment', '/* a /* nested */ comment */', ';']) {
    const a = analyzeSql(sql);
    assert.deepEqual({ parsed: a.parsed, n: a.statements.length }, { parsed: true, n: 0 }, JSON.stringify(sql));
    assert.equal(isReadOnlyAnalysis(a), false);
  }
  for (const [sql, message] of [
    ['SELEC 1', /syntax error at or near "SELEC"/],
    ["SELECT 'unterminated", /unterminated quoted string/],
    ['SELECT 1; SELECT (2', /syntax error at end of input/],
    ['/* unterminated comment', /unterminated \/\* comment/],
    ['SELECT 1\0; DELETE FROM t', /NUL/],
  ] as const) {
    const a = analyzeSql(sql);
    assert.equal(a.parsed, false, sql);
    assert.match(a.parseError ?? '', message, sql);
    assert.deepEqual(a.statements, [], sql);
  }
});

test('the cache: one frozen answer per text, bounded', () => {
  const a = analyzeSql('SELECT 42 AS cached');
  assert.equal(analyzeSql('SELECT 42 AS cached'), a);
  assert.ok(Object.isFrozen(a) && Object.isFrozen(a.statements[0]) && Object.isFrozen(a.statements[0]!.tables.read));
  for (let i = 0; i < analysisCacheLimits.entries + 50; i++) analyzeSql(`SELECT ${i} AS n`);
  assert.equal(analysisCacheStats().size, analysisCacheLimits.entries);
  const long = `SELECT 1 -- ${'x'.repeat(analysisCacheLimits.maxTextLength)}`;
  assert.notEqual(analyzeSql(long), analyzeSql(long), 'long texts are not remembered');
});

test('replaceCopyStdio: STDIN / STDOUT become the file, the rest stays', () => {
  assert.equal(replaceCopyStdio('COPY t FROM STDIN', '/dev/blob'), "COPY t FROM '/dev/blob'");
  assert.equal(
    replaceCopyStdio('copy "from" (a, "stdin") from stdin with (format csv, header) where a > 0', '/dev/blob'),
    `copy "from" (a, "stdin") from '/dev/blob' with (format csv, header) where a > 0`,
  );
  assert.equal(
    replaceCopyStdio("COPY (SELECT 'to stdout', é FROM t) TO /* out */ STDOUT (FORMAT binary);", '/dev/blob'),
    "COPY (SELECT 'to stdout', é FROM t) TO /* out */ '/dev/blob' (FORMAT binary);",
  );
  assert.equal(replaceCopyStdio('COPY BINARY t TO STDOUT', "/tmp/it's"), "COPY BINARY t TO '/tmp/it''s'");
  assert.equal(replaceCopyStdio('COPY t TO STDOUT', 'C:\\x'), "COPY t TO E'C:\\\\x'");
  for (const [sql, message] of [
    ["COPY t FROM '/etc/passwd'", /file name/],
    ["COPY t TO PROGRAM 'sh'", /PROGRAM/],
    ['COPY t FROM STDIN; SELECT 1', /2 statements/],
    ['SELECT 1', /got SELECT/],
    ['COPY t FROM', /parse/],
  ] as const) {
    assert.throws(
      () => replaceCopyStdio(sql, '/dev/blob'),
      (e: unknown) => e instanceof NotCopyStdioError && message.test(e.message),
      sql,
    );
  }
  // The rewritten text is still one COPY, now from a file.
  assert.deepEqual(analyzeSql(replaceCopyStdio('COPY t FROM STDIN', '/dev/blob')).statements[0]!.copy, {
    from: true,
    client: false,
    program: false,
  });
});

test('parse timing', (t) => {
  const texts = [
    'SELECT 1',
    "SELECT a, b FROM t WHERE a = $1 AND b LIKE 'x%' ORDER BY a LIMIT 10",
    'WITH x AS (SELECT a, count(*) FROM t JOIN u USING (a) GROUP BY a) SELECT * FROM x WHERE a IN (SELECT a FROM u) FOR UPDATE',
  ];
  for (const sql of texts) {
    const n = 2000;
    // Unique texts, so that the cache does not answer.
    const start = performance.now();
    for (let i = 0; i < n; i++) analyzeSql(`${sql} -- ${i}`);
    const perCall = ((performance.now() - start) / n) * 1000;
    const hitStart = performance.now();
    for (let i = 0; i < n; i++) analyzeSql(`${sql} -- ${n - 1}`);
    const perHit = ((performance.now() - hitStart) / n) * 1000;
    t.diagnostic(`${sql.length} chars: ${perCall.toFixed(1)} us per analysis, ${perHit.toFixed(2)} us per cache hit`);
    assert.ok(perCall < 2000, `analysis took ${perCall} us`);
  }
});

describe('against PostgreSQL 15', { skip: postgresSkipReason }, () => {
  const schema = `sqlan_${process.pid}_${Date.now()}`;
  let client: pg.Client;

  before(async () => {
    client = new pg.Client({ connectionString: process.env[postgresUrlEnv] });
    await client.connect();
    client.on('notice', () => {});
    await client.query(`CREATE SCHEMA ${schema}; SET search_path = ${schema};
      CREATE TABLE t (a int PRIMARY KEY, b text); CREATE TABLE u (a int, b text); CREATE INDEX ti ON t (b);
      CREATE VIEW v AS SELECT * FROM t; CREATE MATERIALIZED VIEW mv AS SELECT a FROM t; CREATE UNIQUE INDEX mvi ON mv (a);
      CREATE SEQUENCE seq; CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql AS 'SELECT x';
      CREATE PROCEDURE pr() LANGUAGE sql AS 'SELECT 1'; CREATE TYPE ty AS (x int); CREATE TYPE en AS ENUM ('a'); CREATE DOMAIN dom AS int;
      CREATE TABLE pt (a int) PARTITION BY RANGE (a); CREATE TABLE p1 PARTITION OF pt FOR VALUES FROM (0) TO (10); CREATE INDEX pti ON pt (a);
      RESET search_path`);
  });

  after(async () => {
    await client.query(`DROP SCHEMA ${schema} CASCADE`);
    await client.end();
  });

  /** The SQLSTATE a row's statement fails with inside `begin` (undefined when it succeeds); always rolled back. */
  async function sqlstateIn(begin: string, row: CorpusRow): Promise<string | undefined> {
    await client.query(begin);
    try {
      await client.query(`SET LOCAL search_path = ${schema}`);
      if (row.setup) await client.query(row.setup);
      await client.query(row.sql);
      return undefined;
    } catch (e) {
      return (e as { code?: string }).code;
    } finally {
      await client.query('ROLLBACK');
    }
  }

  test('outsideTransactionBlock is what PostgreSQL refuses in a transaction block (25001)', async () => {
    const mismatches: string[] = [];
    for (const row of corpus) {
      if (row.pg === false) continue;
      const code = await sqlstateIn('BEGIN', row);
      const refused = code === '25001';
      const want = analyzeSql(row.sql).statements[0]!.outsideTransactionBlock && !row.conservative;
      if (refused !== want)
        mismatches.push(`${row.sql}: PostgreSQL ${refused ? 'refuses' : 'runs'} it in a block (SQLSTATE ${code ?? 'none'})`);
    }
    assert.deepEqual(mismatches, []);
  });

  test('readOnly statements run in a READ ONLY transaction; writes are refused there (25006)', async () => {
    const mismatches: string[] = [];
    for (const row of corpus) {
      const readOnly = analyzeSql(row.sql).statements[0]!.readOnly;
      if (row.pg === false || !(readOnly || row.refusedReadOnly)) continue;
      const code = await sqlstateIn('BEGIN READ ONLY', row);
      if ((code === '25006') !== (row.refusedReadOnly ?? false))
        mismatches.push(`${row.sql}: SQLSTATE ${code ?? 'none'} in a READ ONLY transaction`);
      // What PostgreSQL refuses there the analysis must not call a read, except a function that writes (nextval).
      if (code === '25006' && readOnly && !/nextval/.test(row.sql))
        mismatches.push(`${row.sql}: readOnly, but PostgreSQL refuses it in a READ ONLY transaction`);
    }
    assert.deepEqual(mismatches, []);
  });

  test('SET transaction_read_only = off at the start of a READ ONLY transaction lets a write through (why it is transaction control)', async () => {
    await client.query(`BEGIN READ ONLY; SET LOCAL search_path = ${schema}`);
    await client.query('SET transaction_read_only = off');
    await client.query("INSERT INTO t VALUES (1, 'x')");
    const { rows } = await client.query('SELECT count(*)::int AS n FROM t');
    await client.query('ROLLBACK');
    assert.equal(rows[0].n, 1);
    assert.equal(analyzeSql('SET transaction_read_only = off').statements[0]!.transactionControl, 'setTransaction');
  });
});
