/**
 * Statement-zoo rows DEALLOCATE ... DROP VIEW. Each DROP's setup makes the object it drops; its
 * effect is that the object is gone. `p` prefixes every name.
 * @packageDocumentation
 */
import { type ZooRow, pgError } from './statement-zoo.js';

const table = (name: string) => `CREATE TABLE ${name} (a int, b text)`;
const gone = (name: string) => `to_regclass('${name}') IS NULL`;
const noRow = (catalog: string, column: string, name: string) => `NOT EXISTS (SELECT FROM ${catalog} WHERE ${column} = '${name}')`;

/** A DROP row: `sql` drops what `setup` made; `cleanup` drops it should the DROP not have. */
function drop(command: string, sql: string, setup: string[], cleanup: string[], effect: string): ZooRow {
  return { command, sql, setup, cleanup, effect };
}

/** The rows. */
export function dropRows(p: string): ZooRow[] {
  const notExisting = pgError('42704');
  return [
    {
      command: 'DEALLOCATE',
      sql: 'DEALLOCATE ALL',
      tag: 'DEALLOCATE ALL',
      txSetup: [`PREPARE ${p}ps AS SELECT 1`],
    },
    {
      command: 'DECLARE',
      // WITH HOLD outlives its transaction: the server must close it after the call.
      sql: `DECLARE ${p}dc CURSOR WITH HOLD FOR SELECT * FROM ${p}t`,
      tag: 'DECLARE CURSOR',
      http: true,
    },
    {
      command: 'DELETE',
      sql: `DELETE FROM ${p}del WHERE a = 1`,
      affected: 1,
      setup: [table(`${p}del`), `INSERT INTO ${p}del VALUES (1, 'x'), (2, 'y')`],
      cleanup: [`DROP TABLE IF EXISTS ${p}del`],
      effect: `NOT EXISTS (SELECT FROM ${p}del WHERE a = 1)`,
      http: true,
    },
    {
      command: 'DISCARD',
      sql: 'DISCARD ALL',
      kind: 'alone',
      tag: 'DISCARD ALL',
      http: true,
    },
    {
      command: 'DO',
      sql: `DO $$BEGIN INSERT INTO ${p}do VALUES (1); END$$`,
      kind: 'aloneButBlockOk',
      setup: [table(`${p}do`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}do`],
      effect: `EXISTS (SELECT FROM ${p}do)`,
      http: true,
    },
    drop(
      'DROP ACCESS METHOD',
      `DROP ACCESS METHOD ${p}dam`,
      [`CREATE ACCESS METHOD ${p}dam TYPE TABLE HANDLER heap_tableam_handler`],
      [`DROP ACCESS METHOD IF EXISTS ${p}dam`],
      noRow('pg_am', 'amname', `${p}dam`),
    ),
    drop(
      'DROP AGGREGATE',
      `DROP AGGREGATE ${p}dag(int)`,
      [`CREATE AGGREGATE ${p}dag(int) (SFUNC = int4pl, STYPE = int)`],
      [`DROP AGGREGATE IF EXISTS ${p}dag(int)`],
      `to_regprocedure('${p}dag(int)') IS NULL`,
    ),
    drop(
      'DROP CAST',
      `DROP CAST (${p}dcty AS text)`,
      [`CREATE TYPE ${p}dcty AS (x int)`, `CREATE CAST (${p}dcty AS text) WITH INOUT`],
      [`DROP TYPE IF EXISTS ${p}dcty CASCADE`],
      `NOT EXISTS (SELECT FROM pg_cast WHERE castsource = to_regtype('${p}dcty'))`,
    ),
    drop(
      'DROP COLLATION',
      `DROP COLLATION ${p}dcoll`,
      [`CREATE COLLATION ${p}dcoll FROM "C"`],
      [`DROP COLLATION IF EXISTS ${p}dcoll`],
      noRow('pg_collation', 'collname', `${p}dcoll`),
    ),
    drop(
      'DROP CONVERSION',
      `DROP CONVERSION ${p}dcv`,
      [`CREATE CONVERSION ${p}dcv FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8`],
      [`DROP CONVERSION IF EXISTS ${p}dcv`],
      noRow('pg_conversion', 'conname', `${p}dcv`),
    ),
    {
      command: 'DROP DATABASE',
      sql: `DROP DATABASE ${p}ddb`,
      kind: 'alone',
      setup: [`!CREATE DATABASE ${p}ddb TEMPLATE template0`],
      cleanup: [`!DROP DATABASE IF EXISTS ${p}ddb`],
      effect: noRow('pg_database', 'datname', `${p}ddb`),
    },
    drop(
      'DROP DOMAIN',
      `DROP DOMAIN ${p}ddom`,
      [`CREATE DOMAIN ${p}ddom AS int`],
      [`DROP DOMAIN IF EXISTS ${p}ddom`],
      `to_regtype('${p}ddom') IS NULL`,
    ),
    drop(
      'DROP EVENT TRIGGER',
      `DROP EVENT TRIGGER ${p}det`,
      [`CREATE EVENT TRIGGER ${p}det ON ddl_command_start WHEN TAG IN ('CREATE TRANSFORM') EXECUTE FUNCTION ${p}etfn()`],
      [`DROP EVENT TRIGGER IF EXISTS ${p}det`],
      noRow('pg_event_trigger', 'evtname', `${p}det`),
    ),
    {
      command: 'DROP EXTENSION',
      sql: 'DROP EXTENSION tsm_system_rows',
      setup: ['CREATE EXTENSION tsm_system_rows'],
      cleanup: ['DROP EXTENSION IF EXISTS tsm_system_rows'],
      effect: noRow('pg_extension', 'extname', 'tsm_system_rows'),
      pglite: {
        why: 'PGlite cannot create tsm_system_rows (see CREATE EXTENSION): there is none to drop',
        setup: [],
        effect: undefined,
        expect: {
          query: notExisting,
          execute: notExisting,
          batch: notExisting,
          stream: notExisting,
          prepared: notExisting,
          tx: notExisting,
        },
      },
    },
    drop(
      'DROP FOREIGN DATA WRAPPER',
      `DROP FOREIGN DATA WRAPPER ${p}dfdw`,
      [`CREATE FOREIGN DATA WRAPPER ${p}dfdw`],
      [`DROP FOREIGN DATA WRAPPER IF EXISTS ${p}dfdw`],
      noRow('pg_foreign_data_wrapper', 'fdwname', `${p}dfdw`),
    ),
    drop(
      'DROP FOREIGN TABLE',
      `DROP FOREIGN TABLE ${p}dft`,
      [`CREATE FOREIGN TABLE ${p}dft (a int) SERVER ${p}srv`],
      [`DROP FOREIGN TABLE IF EXISTS ${p}dft`],
      gone(`${p}dft`),
    ),
    drop(
      'DROP FUNCTION',
      `DROP FUNCTION ${p}df(int)`,
      [`CREATE FUNCTION ${p}df(int) RETURNS int LANGUAGE sql AS 'SELECT 1'`],
      [`DROP FUNCTION IF EXISTS ${p}df(int)`],
      `to_regprocedure('${p}df(int)') IS NULL`,
    ),
    {
      ...drop('DROP GROUP', `DROP GROUP ${p}dg`, [`CREATE GROUP ${p}dg`], [`DROP ROLE IF EXISTS ${p}dg`], `to_regrole('${p}dg') IS NULL`),
      tag: 'DROP ROLE',
    },
    drop(
      'DROP INDEX',
      `DROP INDEX ${p}di_i`,
      [table(`${p}di`), `CREATE INDEX ${p}di_i ON ${p}di (a)`],
      [`DROP TABLE IF EXISTS ${p}di`],
      gone(`${p}di_i`),
    ),
    {
      ...drop(
        'DROP INDEX',
        `DROP INDEX CONCURRENTLY ${p}dic_i`,
        [table(`${p}dic`), `CREATE INDEX ${p}dic_i ON ${p}dic (a)`],
        [`DROP TABLE IF EXISTS ${p}dic`],
        gone(`${p}dic_i`),
      ),
      variant: 'CONCURRENTLY',
      kind: 'alone',
    },
    drop(
      'DROP LANGUAGE',
      `DROP LANGUAGE ${p}dlang`,
      [`CREATE LANGUAGE ${p}dlang HANDLER plpgsql_call_handler`],
      [`DROP LANGUAGE IF EXISTS ${p}dlang`],
      noRow('pg_language', 'lanname', `${p}dlang`),
    ),
    drop(
      'DROP MATERIALIZED VIEW',
      `DROP MATERIALIZED VIEW ${p}dmv`,
      [`CREATE MATERIALIZED VIEW ${p}dmv AS SELECT 1 AS x`],
      [`DROP MATERIALIZED VIEW IF EXISTS ${p}dmv`],
      gone(`${p}dmv`),
    ),
    drop(
      'DROP OPERATOR',
      `DROP OPERATOR ${p}dop.### (int, int)`,
      [`CREATE SCHEMA ${p}dop`, `CREATE OPERATOR ${p}dop.### (LEFTARG = int, RIGHTARG = int, FUNCTION = int4pl)`],
      [`DROP SCHEMA IF EXISTS ${p}dop CASCADE`],
      `NOT EXISTS (SELECT FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE n.nspname = '${p}dop')`,
    ),
    drop(
      'DROP OPERATOR CLASS',
      `DROP OPERATOR CLASS ${p}doc.oc USING btree`,
      [
        `CREATE SCHEMA ${p}doc`,
        `CREATE OPERATOR CLASS ${p}doc.oc FOR TYPE int USING btree AS OPERATOR 1 <, FUNCTION 1 btint4cmp(int, int)`,
      ],
      [`DROP SCHEMA IF EXISTS ${p}doc CASCADE`],
      `NOT EXISTS (SELECT FROM pg_opclass c JOIN pg_namespace n ON n.oid = c.opcnamespace WHERE n.nspname = '${p}doc')`,
    ),
    drop(
      'DROP OPERATOR FAMILY',
      `DROP OPERATOR FAMILY ${p}dof.ofam USING btree`,
      [`CREATE SCHEMA ${p}dof`, `CREATE OPERATOR FAMILY ${p}dof.ofam USING btree`],
      [`DROP SCHEMA IF EXISTS ${p}dof CASCADE`],
      `NOT EXISTS (SELECT FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace WHERE n.nspname = '${p}dof')`,
    ),
    drop(
      'DROP OWNED',
      `DROP OWNED BY ${p}dor`,
      [`CREATE ROLE ${p}dor`, table(`${p}dot`), `ALTER TABLE ${p}dot OWNER TO ${p}dor`],
      [`DROP TABLE IF EXISTS ${p}dot`, `DROP ROLE IF EXISTS ${p}dor`],
      gone(`${p}dot`),
    ),
    drop(
      'DROP POLICY',
      `DROP POLICY ${p}dpo ON ${p}dpol`,
      [table(`${p}dpol`), `CREATE POLICY ${p}dpo ON ${p}dpol USING (true)`],
      [`DROP TABLE IF EXISTS ${p}dpol`],
      noRow('pg_policy', 'polname', `${p}dpo`),
    ),
    drop(
      'DROP PROCEDURE',
      `DROP PROCEDURE ${p}dpr()`,
      [`CREATE PROCEDURE ${p}dpr() LANGUAGE sql AS 'SELECT 1'`],
      [`DROP PROCEDURE IF EXISTS ${p}dpr()`],
      `to_regprocedure('${p}dpr()') IS NULL`,
    ),
    drop(
      'DROP PUBLICATION',
      `DROP PUBLICATION ${p}dpub`,
      [`CREATE PUBLICATION ${p}dpub`],
      [`DROP PUBLICATION IF EXISTS ${p}dpub`],
      noRow('pg_publication', 'pubname', `${p}dpub`),
    ),
    {
      ...drop('DROP ROLE', `DROP ROLE ${p}dr`, [`CREATE ROLE ${p}dr`], [`DROP ROLE IF EXISTS ${p}dr`], `to_regrole('${p}dr') IS NULL`),
      http: true,
    },
    drop(
      'DROP ROUTINE',
      `DROP ROUTINE ${p}drf(int)`,
      [`CREATE FUNCTION ${p}drf(int) RETURNS int LANGUAGE sql AS 'SELECT 1'`],
      [`DROP FUNCTION IF EXISTS ${p}drf(int)`],
      `to_regprocedure('${p}drf(int)') IS NULL`,
    ),
    drop(
      'DROP RULE',
      `DROP RULE ${p}dru ON ${p}drut`,
      [table(`${p}drut`), `CREATE RULE ${p}dru AS ON INSERT TO ${p}drut DO ALSO NOTIFY ${p}ch`],
      [`DROP TABLE IF EXISTS ${p}drut`],
      noRow('pg_rules', 'rulename', `${p}dru`),
    ),
    drop(
      'DROP SCHEMA',
      `DROP SCHEMA ${p}ds`,
      [`CREATE SCHEMA ${p}ds`],
      [`DROP SCHEMA IF EXISTS ${p}ds CASCADE`],
      `to_regnamespace('${p}ds') IS NULL`,
    ),
    drop('DROP SEQUENCE', `DROP SEQUENCE ${p}dsq`, [`CREATE SEQUENCE ${p}dsq`], [`DROP SEQUENCE IF EXISTS ${p}dsq`], gone(`${p}dsq`)),
    drop(
      'DROP SERVER',
      `DROP SERVER ${p}dsrv`,
      [`CREATE SERVER ${p}dsrv FOREIGN DATA WRAPPER ${p}w`],
      [`DROP SERVER IF EXISTS ${p}dsrv`],
      noRow('pg_foreign_server', 'srvname', `${p}dsrv`),
    ),
    drop(
      'DROP STATISTICS',
      `DROP STATISTICS ${p}dst`,
      [`CREATE TABLE ${p}dstt (a int, b int)`, `CREATE STATISTICS ${p}dst ON a, b FROM ${p}dstt`],
      [`DROP TABLE IF EXISTS ${p}dstt`],
      noRow('pg_statistic_ext', 'stxname', `${p}dst`),
    ),
    {
      command: 'DROP SUBSCRIPTION',
      // Without a replication slot, so that dropping it does not connect to the publisher.
      sql: `DROP SUBSCRIPTION ${p}dsub`,
      // PostgreSQL runs it in a block when the subscription has no slot, as here.
      kind: 'aloneButBlockOk',
      setup: [
        `CREATE SUBSCRIPTION ${p}dsub CONNECTION 'host=127.0.0.1 port=1 dbname=zoo' PUBLICATION zoo WITH (connect = false, slot_name = NONE)`,
      ],
      cleanup: [`!DROP SUBSCRIPTION IF EXISTS ${p}dsub`],
      effect: noRow('pg_subscription', 'subname', `${p}dsub`),
      pglite: {
        why: 'PGlite cannot make subscriptions (see CREATE SUBSCRIPTION): there is none to drop',
        setup: [],
        effect: undefined,
        expect: { query: notExisting, execute: notExisting, prepared: notExisting, tx: notExisting },
      },
    },
    { ...drop('DROP TABLE', `DROP TABLE ${p}dt`, [table(`${p}dt`)], [`DROP TABLE IF EXISTS ${p}dt`], gone(`${p}dt`)), http: true },
    {
      command: 'DROP TABLESPACE',
      sql: `DROP TABLESPACE ${p}dts`,
      kind: 'alone',
      setup: [{ reserved: ['SET allow_in_place_tablespaces = on', `CREATE TABLESPACE ${p}dts LOCATION ''`] }],
      cleanup: [`!DROP TABLESPACE IF EXISTS ${p}dts`],
      effect: noRow('pg_tablespace', 'spcname', `${p}dts`),
    },
    drop(
      'DROP TEXT SEARCH CONFIGURATION',
      `DROP TEXT SEARCH CONFIGURATION ${p}dtsc`,
      [`CREATE TEXT SEARCH CONFIGURATION ${p}dtsc (COPY = simple)`],
      [`DROP TEXT SEARCH CONFIGURATION IF EXISTS ${p}dtsc`],
      noRow('pg_ts_config', 'cfgname', `${p}dtsc`),
    ),
    drop(
      'DROP TEXT SEARCH DICTIONARY',
      `DROP TEXT SEARCH DICTIONARY ${p}dtsd`,
      [`CREATE TEXT SEARCH DICTIONARY ${p}dtsd (TEMPLATE = simple)`],
      [`DROP TEXT SEARCH DICTIONARY IF EXISTS ${p}dtsd`],
      noRow('pg_ts_dict', 'dictname', `${p}dtsd`),
    ),
    drop(
      'DROP TEXT SEARCH PARSER',
      `DROP TEXT SEARCH PARSER ${p}dtsp`,
      [`CREATE TEXT SEARCH PARSER ${p}dtsp (START = prsd_start, GETTOKEN = prsd_nexttoken, END = prsd_end, LEXTYPES = prsd_lextype)`],
      [`DROP TEXT SEARCH PARSER IF EXISTS ${p}dtsp`],
      noRow('pg_ts_parser', 'prsname', `${p}dtsp`),
    ),
    drop(
      'DROP TEXT SEARCH TEMPLATE',
      `DROP TEXT SEARCH TEMPLATE ${p}dtst`,
      [`CREATE TEXT SEARCH TEMPLATE ${p}dtst (LEXIZE = dsimple_lexize)`],
      [`DROP TEXT SEARCH TEMPLATE IF EXISTS ${p}dtst`],
      noRow('pg_ts_template', 'tmplname', `${p}dtst`),
    ),
    drop(
      'DROP TRANSFORM',
      `DROP TRANSFORM FOR ${p}dtr LANGUAGE plpgsql`,
      [
        `CREATE TYPE ${p}dtr AS ENUM ('a')`,
        `CREATE TRANSFORM FOR ${p}dtr LANGUAGE plpgsql (FROM SQL WITH FUNCTION gtsvector_compress(internal))`,
      ],
      [`DROP TYPE IF EXISTS ${p}dtr CASCADE`],
      `NOT EXISTS (SELECT FROM pg_transform WHERE trftype = to_regtype('${p}dtr'))`,
    ),
    drop(
      'DROP TRIGGER',
      `DROP TRIGGER ${p}dtg ON ${p}dtgt`,
      [table(`${p}dtgt`), `CREATE TRIGGER ${p}dtg BEFORE INSERT ON ${p}dtgt FOR EACH ROW EXECUTE FUNCTION ${p}trgfn()`],
      [`DROP TABLE IF EXISTS ${p}dtgt`],
      noRow('pg_trigger', 'tgname', `${p}dtg`),
    ),
    drop(
      'DROP TYPE',
      `DROP TYPE ${p}dty`,
      [`CREATE TYPE ${p}dty AS (x int)`],
      [`DROP TYPE IF EXISTS ${p}dty`],
      `to_regtype('${p}dty') IS NULL`,
    ),
    {
      ...drop('DROP USER', `DROP USER ${p}du`, [`CREATE USER ${p}du`], [`DROP ROLE IF EXISTS ${p}du`], `to_regrole('${p}du') IS NULL`),
      tag: 'DROP ROLE',
    },
    drop(
      'DROP USER MAPPING',
      `DROP USER MAPPING FOR CURRENT_USER SERVER ${p}dums`,
      [`CREATE SERVER ${p}dums FOREIGN DATA WRAPPER ${p}w`, `CREATE USER MAPPING FOR CURRENT_USER SERVER ${p}dums`],
      [`DROP SERVER IF EXISTS ${p}dums CASCADE`],
      `NOT EXISTS (SELECT FROM pg_user_mappings WHERE srvname = '${p}dums')`,
    ),
    drop('DROP VIEW', `DROP VIEW ${p}dv`, [`CREATE VIEW ${p}dv AS SELECT 1 AS x`], [`DROP VIEW IF EXISTS ${p}dv`], gone(`${p}dv`)),
  ];
}
