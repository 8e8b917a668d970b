/**
 * Statement-zoo rows END ... VALUES. `p` prefixes every name.
 * @packageDocumentation
 */
import { type ZooRow, ok, pgError, refusal } from './statement-zoo.js';

const table = (name: string) => `CREATE TABLE ${name} (a int, b text)`;

/** The rows. */
export function restRows(p: string): ZooRow[] {
  const cursor = `DECLARE ${p}cur CURSOR FOR SELECT generate_series(1, 5) AS n`;
  return [
    {
      command: 'END',
      sql: 'END',
      kind: 'end',
      tag: 'COMMIT',
      setup: [table(`${p}end`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}end`],
      session: { setup: ['BEGIN', `INSERT INTO ${p}end VALUES (1)`], expect: ok('COMMIT'), effect: `EXISTS (SELECT FROM ${p}end)` },
    },
    {
      command: 'EXECUTE',
      sql: `EXECUTE ${p}ps(41)`,
      kind: 'missing',
      sqlstate: '26000',
      tag: 'SELECT',
      rows: 1,
      txSetup: [`PREPARE ${p}ps(int) AS SELECT $1 + 1 AS n`],
    },
    {
      command: 'EXPLAIN',
      sql: `EXPLAIN SELECT * FROM ${p}t WHERE a = 1`,
      http: true,
    },
    {
      command: 'EXPLAIN',
      variant: 'ANALYZE of an INSERT',
      sql: `EXPLAIN ANALYZE INSERT INTO ${p}exp VALUES (1, 'x')`,
      tag: 'EXPLAIN',
      setup: [table(`${p}exp`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}exp`],
      effect: `EXISTS (SELECT FROM ${p}exp)`,
    },
    {
      command: 'FETCH',
      sql: `FETCH 2 FROM ${p}cur`,
      kind: 'missing',
      sqlstate: '34000',
      rows: 2,
      txSetup: [cursor],
    },
    {
      command: 'GRANT',
      sql: `GRANT SELECT ON ${p}gr TO PUBLIC`,
      setup: [table(`${p}gr`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}gr`],
      effect: `(SELECT relacl::text FROM pg_class WHERE oid = to_regclass('${p}gr')) LIKE '%=r/%'`,
      http: true,
    },
    {
      command: 'IMPORT FOREIGN SCHEMA',
      // The wrapper has no handler (no postgres_fdw here): PostgreSQL's own error.
      sql: `IMPORT FOREIGN SCHEMA remote FROM SERVER ${p}srv INTO ${p}ifs`,
      kind: 'missing',
      sqlstate: '55000',
      setup: [`CREATE SCHEMA ${p}ifs`],
      cleanup: [`DROP SCHEMA IF EXISTS ${p}ifs CASCADE`],
      expect: { tx: pgError('55000') },
    },
    {
      command: 'INSERT',
      sql: `INSERT INTO ${p}ins VALUES (1, 'x'), (2, 'y') RETURNING a`,
      rows: 2,
      affected: 2,
      setup: [table(`${p}ins`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}ins`],
      effect: `(SELECT count(*) FROM ${p}ins) = 2`,
      http: true,
    },
    {
      command: 'LISTEN',
      sql: `LISTEN ${p}ch`,
      kind: 'listen',
      session: { expect: refusal.useListenApi },
      http: true,
    },
    {
      command: 'LOAD',
      // A library the engine has loaded already.
      sql: `LOAD 'plpgsql'`,
    },
    {
      command: 'LOCK',
      sql: `LOCK TABLE ${p}lk IN SHARE MODE`,
      // Only in a transaction block: PostgreSQL refuses it in auto-commit (a batch of one too).
      kind: 'missing',
      sqlstate: '25P01',
      tag: 'LOCK TABLE',
      setup: [table(`${p}lk`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}lk`],
    },
    {
      command: 'MERGE',
      sql: `MERGE INTO ${p}mg m USING ${p}t s ON m.a = s.a WHEN MATCHED THEN UPDATE SET b = s.b WHEN NOT MATCHED THEN INSERT VALUES (s.a, s.b)`,
      setup: [table(`${p}mg`), `INSERT INTO ${p}mg VALUES (1, 'old')`],
      cleanup: [`DROP TABLE IF EXISTS ${p}mg`],
      effect: `(SELECT string_agg(b, ',' ORDER BY a) FROM ${p}mg) = 'one,two,three'`,
      http: true,
    },
    {
      command: 'MOVE',
      sql: `MOVE 2 IN ${p}cur`,
      kind: 'missing',
      sqlstate: '34000',
      txSetup: [cursor],
    },
    {
      command: 'NOTIFY',
      sql: `NOTIFY ${p}ch, 'zoo'`,
    },
    {
      command: 'PREPARE',
      sql: `PREPARE ${p}pp(int) AS SELECT $1 + 1 AS n`,
      http: true,
    },
    {
      command: 'PREPARE TRANSACTION',
      sql: `PREPARE TRANSACTION '${p}gid'`,
      expect: {
        query: refusal.prepareTransaction,
        execute: refusal.prepareTransaction,
        batch: refusal.txControlInBatch,
        stream: refusal.prepareTransaction,
        prepare: refusal.prepareTransaction,
        prepared: undefined,
        tx: refusal.txControlInTx,
      },
      // Where the refusal points: allowed there; max_prepared_transactions is 0 on both engines.
      session: { setup: ['BEGIN'], expect: pgError('55000', /prepared transactions are disabled/) },
    },
    reassignOwned('REASSIGN OWNED', p),
    {
      command: 'REFRESH MATERIALIZED VIEW',
      sql: `REFRESH MATERIALIZED VIEW ${p}rmv`,
      setup: [
        table(`${p}rmt`),
        `CREATE MATERIALIZED VIEW ${p}rmv AS SELECT count(*)::int AS n FROM ${p}rmt`,
        `INSERT INTO ${p}rmt VALUES (1)`,
      ],
      cleanup: [`DROP MATERIALIZED VIEW IF EXISTS ${p}rmv`, `DROP TABLE IF EXISTS ${p}rmt`],
      effect: `(SELECT n FROM ${p}rmv) = 1`,
    },
    {
      command: 'REINDEX',
      // The server runs every REINDEX alone (a partitioned table's cannot run in a block).
      sql: `REINDEX TABLE ${p}ri`,
      kind: 'aloneButBlockOk',
      setup: [`CREATE TABLE ${p}ri (a int PRIMARY KEY)`],
      cleanup: [`DROP TABLE IF EXISTS ${p}ri`],
      http: true,
    },
    {
      command: 'RELEASE SAVEPOINT',
      sql: `RELEASE SAVEPOINT ${p}sp`,
      kind: 'savepoint',
      tag: 'RELEASE',
      txSetup: [`SAVEPOINT ${p}sp`],
      session: { setup: ['BEGIN', `SAVEPOINT ${p}sp`], expect: ok('RELEASE') },
    },
    {
      command: 'RESET',
      sql: 'RESET work_mem',
    },
    {
      command: 'REVOKE',
      sql: `REVOKE SELECT ON ${p}rv FROM PUBLIC`,
      setup: [table(`${p}rv`), `GRANT SELECT ON ${p}rv TO PUBLIC`],
      cleanup: [`DROP TABLE IF EXISTS ${p}rv`],
      effect: `coalesce((SELECT relacl::text FROM pg_class WHERE oid = to_regclass('${p}rv')), '') NOT LIKE '%=r/%'`,
    },
    {
      command: 'ROLLBACK',
      sql: 'ROLLBACK',
      kind: 'end',
      setup: [table(`${p}rb`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}rb`],
      session: { setup: ['BEGIN', `INSERT INTO ${p}rb VALUES (1)`], expect: ok('ROLLBACK'), effect: `NOT EXISTS (SELECT FROM ${p}rb)` },
      http: true,
    },
    {
      command: 'ROLLBACK PREPARED',
      sql: `ROLLBACK PREPARED '${p}gid'`,
      expect: {
        query: pgError('42704'),
        execute: pgError('42704'),
        batch: refusal.txControlInBatch,
        stream: refusal.mustRunAlone,
        prepared: pgError('42704'),
        tx: refusal.txControlInTx,
      },
      session: { expect: pgError('42704') },
    },
    {
      command: 'ROLLBACK TO SAVEPOINT',
      sql: `ROLLBACK TO SAVEPOINT ${p}sp`,
      kind: 'savepoint',
      tag: 'ROLLBACK',
      txSetup: [`SAVEPOINT ${p}sp`],
      session: { setup: ['BEGIN', `SAVEPOINT ${p}sp`], expect: ok('ROLLBACK') },
    },
    {
      command: 'SAVEPOINT',
      sql: `SAVEPOINT ${p}sp`,
      kind: 'savepoint',
      session: { setup: ['BEGIN'], expect: ok('SAVEPOINT') },
      http: true,
    },
    {
      command: 'SECURITY LABEL',
      // No label provider is loaded on either engine (sepgsql): PostgreSQL's own error.
      sql: `SECURITY LABEL ON TABLE ${p}t IS 'zoo'`,
      kind: 'missing',
      sqlstate: '22023',
      expect: { tx: pgError('22023') },
    },
    {
      command: 'SELECT',
      sql: `SELECT a, b FROM ${p}t ORDER BY a`,
      rows: 3,
      affected: 3,
      http: true,
    },
    {
      command: 'SELECT INTO',
      sql: `SELECT * INTO ${p}si FROM ${p}t`,
      tag: 'SELECT',
      cleanup: [`DROP TABLE IF EXISTS ${p}si`],
      effect: `to_regclass('${p}si') IS NOT NULL`,
      http: true,
    },
    {
      command: 'SET',
      sql: `SET work_mem = '8MB'`,
      http: true,
    },
    {
      command: 'SET CONSTRAINTS',
      sql: 'SET CONSTRAINTS ALL DEFERRED',
    },
    {
      command: 'SET ROLE',
      sql: `SET ROLE ${p}sr`,
      tag: 'SET',
      setup: [`CREATE ROLE ${p}sr`],
      cleanup: [`DROP ROLE IF EXISTS ${p}sr`],
      http: true,
    },
    {
      command: 'SET SESSION AUTHORIZATION',
      sql: `SET SESSION AUTHORIZATION ${p}ssa`,
      tag: 'SET',
      setup: [`CREATE ROLE ${p}ssa`],
      cleanup: [`DROP ROLE IF EXISTS ${p}ssa`],
    },
    {
      command: 'SET TRANSACTION',
      sql: 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ',
      tag: 'SET',
      expect: { batch: refusal.txControlInBatch, tx: refusal.txControlInTx },
      session: { setup: ['BEGIN'], expect: ok('SET') },
    },
    {
      command: 'SHOW',
      sql: 'SHOW work_mem',
      rows: 1,
      http: true,
    },
    {
      command: 'START TRANSACTION',
      sql: 'START TRANSACTION READ ONLY',
      kind: 'begin',
      session: { expect: ok('START TRANSACTION') },
    },
    {
      command: 'TRUNCATE',
      sql: `TRUNCATE ${p}tr`,
      tag: 'TRUNCATE TABLE',
      setup: [table(`${p}tr`), `INSERT INTO ${p}tr VALUES (1, 'x')`],
      cleanup: [`DROP TABLE IF EXISTS ${p}tr`],
      effect: `NOT EXISTS (SELECT FROM ${p}tr)`,
    },
    {
      command: 'UNLISTEN',
      sql: 'UNLISTEN *',
      kind: 'listen',
      session: { expect: refusal.useListenApi },
    },
    {
      command: 'UPDATE',
      sql: `UPDATE ${p}up SET b = 'new' WHERE a = 1`,
      affected: 1,
      setup: [table(`${p}up`), `INSERT INTO ${p}up VALUES (1, 'old'), (2, 'old')`],
      cleanup: [`DROP TABLE IF EXISTS ${p}up`],
      effect: `(SELECT b FROM ${p}up WHERE a = 1) = 'new'`,
      http: true,
    },
    {
      command: 'VACUUM',
      sql: `VACUUM ${p}vac`,
      kind: 'alone',
      setup: [`CREATE TABLE ${p}vac (a int)`, `INSERT INTO ${p}vac SELECT generate_series(1, 10)`],
      cleanup: [`DROP TABLE IF EXISTS ${p}vac`],
      effect: `(SELECT reltuples FROM pg_class WHERE oid = to_regclass('${p}vac')) = 10`,
      http: true,
    },
    {
      command: 'VALUES',
      sql: `VALUES (1, 'a'), (2, 'b')`,
      tag: 'SELECT',
      rows: 2,
    },
  ];
}

/** REASSIGN OWNED: a table of one role handed to another. */
function reassignOwned(command: string, p: string): ZooRow {
  return {
    command,
    sql: `REASSIGN OWNED BY ${p}ro1 TO ${p}ro2`,
    setup: [`CREATE ROLE ${p}ro1`, `CREATE ROLE ${p}ro2`, table(`${p}rot`), `ALTER TABLE ${p}rot OWNER TO ${p}ro1`],
    cleanup: [`DROP TABLE IF EXISTS ${p}rot`, `DROP ROLE IF EXISTS ${p}ro1`, `DROP ROLE IF EXISTS ${p}ro2`],
    effect: `(SELECT relowner FROM pg_class WHERE oid = to_regclass('${p}rot')) = to_regrole('${p}ro2')`,
  };
}
