/**
 * The objects every statement-zoo row may use, named with the run's prefix: a table `<p>t`
 * (a int PRIMARY KEY, b text; rows 1..3), trigger and event-trigger functions, a foreign-data
 * wrapper `<p>w` with a server `<p>srv`, a database `<p>db` and an in-place tablespace `<p>ts`.
 * Rows create what else they need themselves. {@link leftoverSql} counts what a run may have
 * left anywhere in the cluster.
 * @packageDocumentation
 */
import type { Setup } from './statement-zoo.js';

/** Creates the fixture. */
export function fixtureSetup(p: string): Setup[] {
  return [
    `CREATE TABLE ${p}t (a int PRIMARY KEY, b text)`,
    `INSERT INTO ${p}t VALUES (1, 'one'), (2, 'two'), (3, 'three')`,
    `CREATE FUNCTION ${p}trgfn() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'`,
    `CREATE FUNCTION ${p}etfn() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END'`,
    `CREATE FOREIGN DATA WRAPPER ${p}w`,
    `CREATE SERVER ${p}srv FOREIGN DATA WRAPPER ${p}w`,
    `!CREATE DATABASE ${p}db TEMPLATE template0`,
    // An in-place tablespace (a directory under pg_tblspc) needs a developer setting of the session.
    { reserved: ['SET allow_in_place_tablespaces = on', `CREATE TABLESPACE ${p}ts LOCATION ''`] },
  ];
}

/** Drops the fixture (idempotent). */
export function fixtureCleanup(p: string): Setup[] {
  return [
    `DROP TABLE IF EXISTS ${p}t CASCADE`,
    `DROP FUNCTION IF EXISTS ${p}trgfn() CASCADE`,
    `DROP FUNCTION IF EXISTS ${p}etfn() CASCADE`,
    `DROP FOREIGN DATA WRAPPER IF EXISTS ${p}w CASCADE`,
    `!DROP DATABASE IF EXISTS ${p}db`,
    `!DROP TABLESPACE IF EXISTS ${p}ts`,
  ];
}

/** One row, column `n`: how many objects, roles, databases, ... named `<p>...` exist anywhere. */
export function leftoverSql(p: string): string {
  const like = `'${p.replace(/_/g, '\\_')}%'`;
  const counts = [
    ['pg_class', 'relname'],
    ['pg_proc', 'proname'],
    ['pg_type', 'typname'],
    ['pg_namespace', 'nspname'],
    ['pg_roles', 'rolname'],
    ['pg_database', 'datname'],
    ['pg_tablespace', 'spcname'],
    ['pg_event_trigger', 'evtname'],
    ['pg_foreign_data_wrapper', 'fdwname'],
    ['pg_foreign_server', 'srvname'],
    ['pg_publication', 'pubname'],
    ['pg_subscription', 'subname'],
    ['pg_language', 'lanname'],
    ['pg_am', 'amname'],
    ['pg_collation', 'collname'],
    ['pg_conversion', 'conname'],
    ['pg_ts_config', 'cfgname'],
    ['pg_ts_dict', 'dictname'],
    ['pg_ts_parser', 'prsname'],
    ['pg_ts_template', 'tmplname'],
    ['pg_statistic_ext', 'stxname'],
    ['pg_policy', 'polname'],
    ['pg_trigger', 'tgname'],
    ['pg_rewrite', 'rulename'],
    ['pg_prepared_xacts', 'gid'],
  ].map(([table, column]) => `(SELECT count(*) FROM ${table} WHERE ${column}::text LIKE ${like})`);
  return `SELECT (${counts.join(' + ')})::int AS n`;
}
