/**
 * Statement-zoo rows CREATE ACCESS METHOD ... CREATE VIEW. `p` prefixes every name.
 * @packageDocumentation
 */
import { type ZooRow, pgError } from './statement-zoo.js';

const table = (name: string) => `CREATE TABLE ${name} (a int, b text)`;
const exists = (name: string) => `to_regclass('${name}') IS NOT NULL`;

/** PGlite has no walreceiver library: the first load fails with 58P01, later ones with XX000. */
const noWalReceiver = pgError(['58P01', 'XX000'], /libpqwalreceiver/);
/** PostgreSQL cannot reach the publisher: a statement error (08006) on a working connection. */
const noPublisher = pgError('08006', /could not connect to the publisher/);

/** The rows. */
export function createRows(p: string): ZooRow[] {
  return [
    {
      command: 'CREATE ACCESS METHOD',
      sql: `CREATE ACCESS METHOD ${p}am TYPE TABLE HANDLER heap_tableam_handler`,
      cleanup: [`DROP ACCESS METHOD IF EXISTS ${p}am`],
      effect: `EXISTS (SELECT FROM pg_am WHERE amname = '${p}am')`,
    },
    {
      command: 'CREATE AGGREGATE',
      sql: `CREATE AGGREGATE ${p}cag(int) (SFUNC = int4pl, STYPE = int)`,
      cleanup: [`DROP AGGREGATE IF EXISTS ${p}cag(int)`],
      effect: `to_regprocedure('${p}cag(int)') IS NOT NULL`,
    },
    {
      command: 'CREATE CAST',
      sql: `CREATE CAST (${p}cty AS text) WITH INOUT`,
      setup: [`CREATE TYPE ${p}cty AS (x int)`],
      cleanup: [`DROP TYPE IF EXISTS ${p}cty CASCADE`],
      effect: `EXISTS (SELECT FROM pg_cast WHERE castsource = to_regtype('${p}cty') AND casttarget = 'text'::regtype)`,
    },
    {
      command: 'CREATE COLLATION',
      sql: `CREATE COLLATION ${p}cc FROM "C"`,
      cleanup: [`DROP COLLATION IF EXISTS ${p}cc`],
      effect: `EXISTS (SELECT FROM pg_collation WHERE collname = '${p}cc')`,
    },
    {
      command: 'CREATE CONVERSION',
      sql: `CREATE CONVERSION ${p}ccv FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8`,
      cleanup: [`DROP CONVERSION IF EXISTS ${p}ccv`],
      effect: `EXISTS (SELECT FROM pg_conversion WHERE conname = '${p}ccv')`,
    },
    {
      command: 'CREATE DATABASE',
      sql: `CREATE DATABASE ${p}cdb TEMPLATE template0`,
      kind: 'alone',
      cleanup: [`!DROP DATABASE IF EXISTS ${p}cdb`],
      effect: `EXISTS (SELECT FROM pg_database WHERE datname = '${p}cdb')`,
      http: true,
    },
    {
      command: 'CREATE DOMAIN',
      sql: `CREATE DOMAIN ${p}cdom AS int CHECK (VALUE > 0)`,
      cleanup: [`DROP DOMAIN IF EXISTS ${p}cdom`],
      effect: `to_regtype('${p}cdom') IS NOT NULL`,
    },
    {
      command: 'CREATE EVENT TRIGGER',
      sql: `CREATE EVENT TRIGGER ${p}cet ON ddl_command_start WHEN TAG IN ('CREATE TRANSFORM') EXECUTE FUNCTION ${p}etfn()`,
      cleanup: [`DROP EVENT TRIGGER IF EXISTS ${p}cet`],
      effect: `EXISTS (SELECT FROM pg_event_trigger WHERE evtname = '${p}cet')`,
    },
    {
      command: 'CREATE EXTENSION',
      sql: 'CREATE EXTENSION tsm_system_rows',
      cleanup: ['DROP EXTENSION IF EXISTS tsm_system_rows'],
      effect: `EXISTS (SELECT FROM pg_extension WHERE extname = 'tsm_system_rows')`,
      pglite: {
        why: 'PGlite ships only plpgsql unless extensions are bundled into the engine: PostgreSQL says it is not available',
        expect: {
          query: pgError('0A000'),
          execute: pgError('0A000'),
          batch: pgError('0A000'),
          stream: pgError('0A000'),
          prepared: pgError('0A000'),
          tx: pgError('0A000'),
        },
      },
    },
    {
      command: 'CREATE FOREIGN DATA WRAPPER',
      sql: `CREATE FOREIGN DATA WRAPPER ${p}cfdw`,
      cleanup: [`DROP FOREIGN DATA WRAPPER IF EXISTS ${p}cfdw`],
      effect: `EXISTS (SELECT FROM pg_foreign_data_wrapper WHERE fdwname = '${p}cfdw')`,
    },
    {
      command: 'CREATE FOREIGN TABLE',
      sql: `CREATE FOREIGN TABLE ${p}cft (a int) SERVER ${p}srv`,
      cleanup: [`DROP FOREIGN TABLE IF EXISTS ${p}cft`],
      effect: exists(`${p}cft`),
    },
    {
      command: 'CREATE FUNCTION',
      sql: `CREATE FUNCTION ${p}cf(int) RETURNS int LANGUAGE sql AS 'SELECT $1 * 2'`,
      cleanup: [`DROP FUNCTION IF EXISTS ${p}cf(int)`],
      effect: `to_regprocedure('${p}cf(int)') IS NOT NULL`,
      http: true,
    },
    {
      command: 'CREATE GROUP',
      sql: `CREATE GROUP ${p}cg`,
      tag: 'CREATE ROLE',
      cleanup: [`DROP ROLE IF EXISTS ${p}cg`],
      effect: `to_regrole('${p}cg') IS NOT NULL`,
    },
    {
      command: 'CREATE INDEX',
      sql: `CREATE INDEX ${p}ci_i ON ${p}ci (a)`,
      setup: [table(`${p}ci`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}ci`],
      effect: exists(`${p}ci_i`),
    },
    {
      command: 'CREATE INDEX',
      variant: 'CONCURRENTLY',
      sql: `CREATE INDEX CONCURRENTLY ${p}cic_i ON ${p}cic (a)`,
      kind: 'alone',
      setup: [table(`${p}cic`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}cic`],
      effect: exists(`${p}cic_i`),
      http: true,
    },
    {
      command: 'CREATE LANGUAGE',
      sql: `CREATE LANGUAGE ${p}clang HANDLER plpgsql_call_handler`,
      cleanup: [`DROP LANGUAGE IF EXISTS ${p}clang`],
      effect: `EXISTS (SELECT FROM pg_language WHERE lanname = '${p}clang')`,
    },
    {
      command: 'CREATE MATERIALIZED VIEW',
      sql: `CREATE MATERIALIZED VIEW ${p}cmv AS SELECT * FROM ${p}t`,
      tag: 'SELECT',
      cleanup: [`DROP MATERIALIZED VIEW IF EXISTS ${p}cmv`],
      effect: exists(`${p}cmv`),
    },
    {
      command: 'CREATE OPERATOR',
      sql: `CREATE OPERATOR ${p}cop.### (LEFTARG = int, RIGHTARG = int, FUNCTION = int4pl)`,
      setup: [`CREATE SCHEMA ${p}cop`],
      cleanup: [`DROP SCHEMA IF EXISTS ${p}cop CASCADE`],
      effect: `EXISTS (SELECT FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE n.nspname = '${p}cop')`,
    },
    {
      command: 'CREATE OPERATOR CLASS',
      sql: `CREATE OPERATOR CLASS ${p}coc.oc FOR TYPE int USING btree AS OPERATOR 1 <, FUNCTION 1 btint4cmp(int, int)`,
      setup: [`CREATE SCHEMA ${p}coc`],
      cleanup: [`DROP SCHEMA IF EXISTS ${p}coc CASCADE`],
      effect: `EXISTS (SELECT FROM pg_opclass c JOIN pg_namespace n ON n.oid = c.opcnamespace WHERE n.nspname = '${p}coc')`,
    },
    {
      command: 'CREATE OPERATOR FAMILY',
      sql: `CREATE OPERATOR FAMILY ${p}cof.ofam USING btree`,
      setup: [`CREATE SCHEMA ${p}cof`],
      cleanup: [`DROP SCHEMA IF EXISTS ${p}cof CASCADE`],
      effect: `EXISTS (SELECT FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace WHERE n.nspname = '${p}cof')`,
    },
    {
      command: 'CREATE POLICY',
      sql: `CREATE POLICY ${p}cpo ON ${p}cpol USING (a > 0)`,
      setup: [table(`${p}cpol`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}cpol`],
      effect: `EXISTS (SELECT FROM pg_policy WHERE polname = '${p}cpo')`,
    },
    {
      command: 'CREATE PROCEDURE',
      sql: `CREATE PROCEDURE ${p}cpr() LANGUAGE plpgsql AS $$BEGIN COMMIT; END$$`,
      cleanup: [`DROP PROCEDURE IF EXISTS ${p}cpr()`],
      effect: `to_regprocedure('${p}cpr()') IS NOT NULL`,
    },
    {
      command: 'CREATE PUBLICATION',
      sql: `CREATE PUBLICATION ${p}cpub FOR TABLE ${p}cpubt`,
      setup: [`CREATE TABLE ${p}cpubt (a int PRIMARY KEY)`],
      cleanup: [`DROP PUBLICATION IF EXISTS ${p}cpub`, `DROP TABLE IF EXISTS ${p}cpubt`],
      effect: `EXISTS (SELECT FROM pg_publication WHERE pubname = '${p}cpub')`,
    },
    {
      command: 'CREATE ROLE',
      sql: `CREATE ROLE ${p}cr`,
      cleanup: [`DROP ROLE IF EXISTS ${p}cr`],
      effect: `to_regrole('${p}cr') IS NOT NULL`,
      http: true,
    },
    {
      command: 'CREATE RULE',
      sql: `CREATE RULE ${p}crr AS ON INSERT TO ${p}crt DO ALSO INSERT INTO ${p}crl VALUES (NEW.a)`,
      setup: [table(`${p}crt`), table(`${p}crl`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}crt`, `DROP TABLE IF EXISTS ${p}crl`],
      effect: `EXISTS (SELECT FROM pg_rules WHERE rulename = '${p}crr')`,
    },
    {
      command: 'CREATE SCHEMA',
      sql: `CREATE SCHEMA ${p}cs CREATE TABLE t2 (a int)`,
      cleanup: [`DROP SCHEMA IF EXISTS ${p}cs CASCADE`],
      effect: exists(`${p}cs.t2`),
    },
    {
      command: 'CREATE SEQUENCE',
      sql: `CREATE SEQUENCE ${p}csq`,
      cleanup: [`DROP SEQUENCE IF EXISTS ${p}csq`],
      effect: exists(`${p}csq`),
    },
    {
      command: 'CREATE SERVER',
      sql: `CREATE SERVER ${p}cserv FOREIGN DATA WRAPPER ${p}w`,
      cleanup: [`DROP SERVER IF EXISTS ${p}cserv`],
      effect: `EXISTS (SELECT FROM pg_foreign_server WHERE srvname = '${p}cserv')`,
    },
    {
      command: 'CREATE STATISTICS',
      sql: `CREATE STATISTICS ${p}cst ON a, b FROM ${p}cstt`,
      setup: [`CREATE TABLE ${p}cstt (a int, b int)`],
      cleanup: [`DROP TABLE IF EXISTS ${p}cstt`],
      effect: `EXISTS (SELECT FROM pg_statistic_ext WHERE stxname = '${p}cst')`,
    },
    {
      command: 'CREATE SUBSCRIPTION',
      // Without connecting: there is no publisher on the test machine.
      sql: `CREATE SUBSCRIPTION ${p}csub CONNECTION 'host=127.0.0.1 port=1 dbname=zoo' PUBLICATION zoo WITH (connect = false, slot_name = NONE)`,
      cleanup: [`!DROP SUBSCRIPTION IF EXISTS ${p}csub`],
      effect: `EXISTS (SELECT FROM pg_subscription WHERE subname = '${p}csub')`,
      pglite: {
        why: 'PGlite has no logical replication: the walreceiver library is not there (58P01 the first time, XX000 "incompatible library" after)',
        effect: undefined,
        expect: {
          query: noWalReceiver,
          execute: noWalReceiver,
          batch: noWalReceiver,
          stream: noWalReceiver,
          prepared: noWalReceiver,
          tx: noWalReceiver,
        },
      },
    },
    {
      command: 'CREATE SUBSCRIPTION',
      variant: 'connecting to a publisher that is not there',
      sql: `CREATE SUBSCRIPTION ${p}csub2 CONNECTION 'host=127.0.0.1 port=1 dbname=zoo connect_timeout=2' PUBLICATION zoo`,
      kind: 'alone',
      cleanup: [`!DROP SUBSCRIPTION IF EXISTS ${p}csub2`],
      effect: `EXISTS (SELECT FROM pg_subscription WHERE subname = '${p}csub2')`,
      postgresql: {
        why: 'the publisher cannot be reached: PostgreSQL fails the statement with 08006, a statement error on a working connection',
        expect: { query: noPublisher, execute: noPublisher, prepared: noPublisher },
      },
      pglite: {
        why: 'PGlite has no logical replication (see above)',
        effect: undefined,
        expect: { query: noWalReceiver, execute: noWalReceiver, prepared: noWalReceiver },
      },
    },
    {
      command: 'CREATE TABLE',
      sql: `CREATE TABLE ${p}ct (a int PRIMARY KEY REFERENCES ${p}t, b text NOT NULL)`,
      cleanup: [`DROP TABLE IF EXISTS ${p}ct`],
      effect: exists(`${p}ct`),
      http: true,
    },
    {
      command: 'CREATE TABLE AS',
      sql: `CREATE TABLE ${p}cta AS SELECT * FROM ${p}t`,
      tag: 'SELECT',
      cleanup: [`DROP TABLE IF EXISTS ${p}cta`],
      affected: 3,
      effect: exists(`${p}cta`),
    },
    {
      command: 'CREATE TABLESPACE',
      // A directory that does not exist: PostgreSQL's own error (an in-place tablespace needs a
      // session setting, which auto-commit calls do not keep; the fixture makes one that way).
      sql: `CREATE TABLESPACE ${p}cts LOCATION '/nonexistent/${p}cts'`,
      kind: 'alone',
      cleanup: [`!DROP TABLESPACE IF EXISTS ${p}cts`],
      expect: { query: pgError('58P01'), execute: pgError('58P01'), prepared: pgError('58P01') },
      session: { setup: ['SET allow_in_place_tablespaces = on'], expect: pgError('58P01') },
    },
    {
      command: 'CREATE TEXT SEARCH CONFIGURATION',
      sql: `CREATE TEXT SEARCH CONFIGURATION ${p}ctsc (COPY = simple)`,
      cleanup: [`DROP TEXT SEARCH CONFIGURATION IF EXISTS ${p}ctsc`],
      effect: `EXISTS (SELECT FROM pg_ts_config WHERE cfgname = '${p}ctsc')`,
    },
    {
      command: 'CREATE TEXT SEARCH DICTIONARY',
      sql: `CREATE TEXT SEARCH DICTIONARY ${p}ctsd (TEMPLATE = simple)`,
      cleanup: [`DROP TEXT SEARCH DICTIONARY IF EXISTS ${p}ctsd`],
      effect: `EXISTS (SELECT FROM pg_ts_dict WHERE dictname = '${p}ctsd')`,
    },
    {
      command: 'CREATE TEXT SEARCH PARSER',
      sql: `CREATE TEXT SEARCH PARSER ${p}ctsp (START = prsd_start, GETTOKEN = prsd_nexttoken, END = prsd_end, LEXTYPES = prsd_lextype)`,
      cleanup: [`DROP TEXT SEARCH PARSER IF EXISTS ${p}ctsp`],
      effect: `EXISTS (SELECT FROM pg_ts_parser WHERE prsname = '${p}ctsp')`,
    },
    {
      command: 'CREATE TEXT SEARCH TEMPLATE',
      sql: `CREATE TEXT SEARCH TEMPLATE ${p}ctst (INIT = dsimple_init, LEXIZE = dsimple_lexize)`,
      cleanup: [`DROP TEXT SEARCH TEMPLATE IF EXISTS ${p}ctst`],
      effect: `EXISTS (SELECT FROM pg_ts_template WHERE tmplname = '${p}ctst')`,
    },
    {
      command: 'CREATE TRANSFORM',
      // A FROM SQL function must take and return internal: a built-in one will do.
      sql: `CREATE TRANSFORM FOR ${p}ctr LANGUAGE plpgsql (FROM SQL WITH FUNCTION gtsvector_compress(internal))`,
      setup: [`CREATE TYPE ${p}ctr AS ENUM ('a')`],
      cleanup: [`DROP TYPE IF EXISTS ${p}ctr CASCADE`],
      effect: `EXISTS (SELECT FROM pg_transform WHERE trftype = to_regtype('${p}ctr'))`,
    },
    {
      command: 'CREATE TRIGGER',
      sql: `CREATE TRIGGER ${p}ctg BEFORE INSERT ON ${p}ctgt FOR EACH ROW EXECUTE FUNCTION ${p}trgfn()`,
      setup: [table(`${p}ctgt`)],
      cleanup: [`DROP TABLE IF EXISTS ${p}ctgt`],
      effect: `EXISTS (SELECT FROM pg_trigger WHERE tgname = '${p}ctg')`,
    },
    {
      command: 'CREATE TYPE',
      sql: `CREATE TYPE ${p}cty2 AS (x int, y text)`,
      cleanup: [`DROP TYPE IF EXISTS ${p}cty2`],
      effect: `to_regtype('${p}cty2') IS NOT NULL`,
    },
    {
      command: 'CREATE USER',
      sql: `CREATE USER ${p}cu`,
      tag: 'CREATE ROLE',
      cleanup: [`DROP ROLE IF EXISTS ${p}cu`],
      effect: `(SELECT rolcanlogin FROM pg_roles WHERE rolname = '${p}cu')`,
    },
    {
      command: 'CREATE USER MAPPING',
      sql: `CREATE USER MAPPING FOR CURRENT_USER SERVER ${p}cums`,
      setup: [`CREATE SERVER ${p}cums FOREIGN DATA WRAPPER ${p}w`],
      cleanup: [`DROP SERVER IF EXISTS ${p}cums CASCADE`],
      effect: `EXISTS (SELECT FROM pg_user_mappings WHERE srvname = '${p}cums')`,
    },
    {
      command: 'CREATE VIEW',
      sql: `CREATE VIEW ${p}cv AS SELECT * FROM ${p}t`,
      cleanup: [`DROP VIEW IF EXISTS ${p}cv`],
      effect: exists(`${p}cv`),
    },
  ];
}
