/**
 * Statement-zoo rows BEGIN ... COPY: transaction control, cursors, COPY. `p` prefixes every name.
 * @packageDocumentation
 */
import { type ZooRow, ok, pgError, refusal } from './statement-zoo.js';

const table = (name: string) => `CREATE TABLE ${name} (a int, b text)`;

/** The rows. */
export function beginRows(p: string): ZooRow[] {
  return [
    {
      command: 'BEGIN',
      sql: 'BEGIN',
      kind: 'begin',
      session: { expect: ok('BEGIN') },
      http: true,
    },
    {
      command: 'BEGIN',
      variant: 'a script that commits',
      sql: `BEGIN; INSERT INTO ${p}bg VALUES (1); COMMIT`,
      tag: 'COMMIT',
      setup: [table(`${p}bg`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}bg`],
      effect: `EXISTS (SELECT FROM ${p}bg)`,
      expect: {
        batch: refusal.txControlInBatch,
        stream: refusal.multipleCommands,
        prepare: refusal.multipleCommands,
        prepared: undefined,
        tx: refusal.txControlInTx,
      },
      session: { expect: ok('COMMIT'), effect: `EXISTS (SELECT FROM ${p}bg)` },
    },
    {
      command: 'BEGIN',
      variant: 'a script that leaves its transaction open',
      sql: `BEGIN; INSERT INTO ${p}bo VALUES (1)`,
      tag: 'INSERT',
      setup: [table(`${p}bo`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}bo`],
      // Never committed: in auto-commit the server rolls it back and says so.
      effect: `EXISTS (SELECT FROM ${p}bo)`,
      expect: {
        query: refusal.txLeftOpen,
        execute: refusal.txLeftOpen,
        batch: refusal.txControlInBatch,
        stream: refusal.multipleCommands,
        prepare: refusal.multipleCommands,
        prepared: undefined,
        tx: refusal.txControlInTx,
      },
    },
    {
      command: 'CALL',
      sql: `CALL ${p}callp(5)`,
      kind: 'aloneButBlockOk',
      setup: [table(`${p}call`), `CREATE PROCEDURE ${p}callp(x int) LANGUAGE plpgsql AS $$BEGIN INSERT INTO ${p}call VALUES (x); END$$`],
      cleanup: [`DROP PROCEDURE IF EXISTS ${p}callp(int)`, `DROP TABLE IF EXISTS ${p}call`],
      effect: `EXISTS (SELECT FROM ${p}call WHERE a = 5)`,
      http: true,
    },
    {
      command: 'CHECKPOINT',
      sql: 'CHECKPOINT',
    },
    {
      command: 'CLOSE',
      sql: `CLOSE ${p}cur`,
      kind: 'missing',
      sqlstate: '34000',
      tag: 'CLOSE CURSOR',
      txSetup: [`DECLARE ${p}cur CURSOR FOR SELECT 1`],
    },
    {
      command: 'CLUSTER',
      sql: `CLUSTER ${p}cl USING ${p}cl_pkey`,
      kind: 'aloneButBlockOk',
      setup: [`CREATE TABLE ${p}cl (a int PRIMARY KEY)`, `INSERT INTO ${p}cl SELECT generate_series(1, 10)`],
      cleanup: [`DROP TABLE IF EXISTS ${p}cl`],
      effect: `(SELECT indisclustered FROM pg_index WHERE indexrelid = to_regclass('${p}cl_pkey'))`,
    },
    {
      command: 'COMMENT',
      sql: `COMMENT ON TABLE ${p}cm IS 'zoo'`,
      setup: [table(`${p}cm`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}cm`],
      effect: `obj_description(to_regclass('${p}cm'), 'pg_class') = 'zoo'`,
    },
    {
      command: 'COMMIT',
      sql: 'COMMIT',
      kind: 'end',
      setup: [table(`${p}cmt`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}cmt`],
      session: { setup: ['BEGIN', `INSERT INTO ${p}cmt VALUES (1)`], expect: ok('COMMIT'), effect: `EXISTS (SELECT FROM ${p}cmt)` },
      http: true,
    },
    {
      command: 'COMMIT PREPARED',
      // max_prepared_transactions is 0 on both test engines: there is never one to commit.
      sql: `COMMIT PREPARED '${p}gid'`,
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
      command: 'COPY',
      sql: `COPY ${p}t TO STDOUT`,
      kind: 'copy',
      http: true,
    },
    {
      command: 'COPY',
      variant: 'FROM STDIN',
      sql: `COPY ${p}cpi FROM STDIN`,
      kind: 'copy',
      setup: [table(`${p}cpi`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}cpi`],
    },
    {
      command: 'COPY',
      variant: 'a file of the database server',
      sql: `COPY (SELECT 1) TO '/dev/null'`,
    },
  ];
}
