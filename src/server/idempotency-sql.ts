/**
 * The idempotency records' SQL: the table, the SECURITY DEFINER functions through which callers'
 * login roles record their keys, the grants, and the statements ./idempotency.ts runs.
 * @packageDocumentation
 */

/** The table idempotency records are kept in. */
export const idempotencyTable = 'heliosdb.idempotency_keys';

/** The largest response a keyed call's record holds (above any unary answer at the default message limit). */
const maxStoredResponseBytes = 64 * 1024 * 1024;

/**
 * Creates the idempotency table and the functions through which callers' own login roles record
 * keys (safe to run concurrently and repeatedly). Callers never touch the table: each function is
 * SECURITY DEFINER and prefixes the owner with `session_user`, the caller's login role, which no
 * SQL can change; so a caller can read or write only records of its own login.
 */
export const idempotencySchemaSql = `
BEGIN;
SELECT pg_advisory_xact_lock(7700772);
CREATE SCHEMA IF NOT EXISTS heliosdb;
CREATE TABLE IF NOT EXISTS ${idempotencyTable} (
  owner text NOT NULL,
  key text NOT NULL,
  fingerprint text NOT NULL,
  state text NOT NULL CHECK (state IN ('running', 'done', 'abandoned')),
  response bytea,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (owner, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_at ON ${idempotencyTable} (created_at);
REVOKE ALL ON ${idempotencyTable} FROM PUBLIC;
CREATE OR REPLACE FUNCTION heliosdb.idempotency_claim(p_owner text, p_key text, p_fingerprint text, p_window_ms float8)
RETURNS TABLE (claimed boolean, state text, fingerprint text, response bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE o text := session_user || '/' || p_owner; n int;
BEGIN
  IF length(p_owner) > 64 OR length(p_key) > 200 OR length(p_fingerprint) > 64 THEN
    RAISE EXCEPTION 'heliosdb.idempotency_claim: an argument is longer than the server ever sends' USING ERRCODE = '22001';
  END IF;
  INSERT INTO ${idempotencyTable} AS k (owner, key, fingerprint, state) VALUES (o, p_key, p_fingerprint, 'running')
  ON CONFLICT (owner, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 'running', response = NULL, created_at = now()
  WHERE k.created_at < now() - p_window_ms * interval '1 millisecond';
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN QUERY SELECT n > 0, k.state, k.fingerprint, k.response FROM ${idempotencyTable} k WHERE k.owner = o AND k.key = p_key;
END $f$;
CREATE OR REPLACE FUNCTION heliosdb.idempotency_done(p_owner text, p_key text, p_response bytea) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
  IF octet_length(p_response) > ${maxStoredResponseBytes} THEN
    RAISE EXCEPTION 'heliosdb.idempotency_done: a response larger than the server ever stores' USING ERRCODE = '22001';
  END IF;
  UPDATE ${idempotencyTable} SET state = 'done', response = p_response WHERE owner = session_user || '/' || p_owner AND key = p_key;
END $f$;
CREATE OR REPLACE FUNCTION heliosdb.idempotency_forget(p_owner text, p_key text) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
  DELETE FROM ${idempotencyTable} WHERE owner = session_user || '/' || p_owner AND key = p_key AND state = 'running'
$f$;
CREATE OR REPLACE FUNCTION heliosdb.idempotency_record(p_owner text, p_key text, p_fingerprint text, p_window_ms float8, p_response bytea) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE n int;
BEGIN
  IF length(p_owner) > 64 OR length(p_key) > 200 OR length(p_fingerprint) > 64 OR octet_length(p_response) > ${maxStoredResponseBytes} THEN
    RAISE EXCEPTION 'heliosdb.idempotency_record: an argument is longer than the server ever sends' USING ERRCODE = '22001';
  END IF;
  INSERT INTO ${idempotencyTable} AS k (owner, key, fingerprint, state, response) VALUES (session_user || '/' || p_owner, p_key, p_fingerprint, 'done', p_response)
  ON CONFLICT (owner, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = EXCLUDED.state, response = EXCLUDED.response, created_at = now()
  WHERE k.created_at < now() - p_window_ms * interval '1 millisecond';
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n > 0;
END $f$;
COMMIT;
`;

/**
 * Every role may call the functions: each sees only the records of its own login
 * (`session_user`), and callers' statements run as the user's role (`current_user`), whichever
 * that is. The tables stay private.
 */
export const idempotencyGrantsSql = `GRANT USAGE ON SCHEMA heliosdb TO PUBLIC;
GRANT EXECUTE ON FUNCTION heliosdb.idempotency_claim(text, text, text, float8), heliosdb.idempotency_done(text, text, bytea),
  heliosdb.idempotency_forget(text, text), heliosdb.idempotency_record(text, text, text, float8, bytea) TO PUBLIC`;

/** Through the functions, on the caller's connection: $1 owner, $2 key, ... */
export const claimSql = 'SELECT claimed, state, fingerprint, response FROM heliosdb.idempotency_claim($1, $2, $3, $4::float8)';
export const doneSql = 'SELECT heliosdb.idempotency_done($1, $2, $3::bytea)';
export const forgetSql = 'SELECT heliosdb.idempotency_forget($1, $2)';
export const recordSql = 'SELECT heliosdb.idempotency_record($1, $2, $3, $4::float8, $5::bytea)';
/** Directly, on the server's own connection, with the full owner (login role/principal). */
export const lookupSql = `SELECT state, fingerprint, response FROM ${idempotencyTable} WHERE owner = $1 AND key = $2`;
export const tombstoneSql = `INSERT INTO ${idempotencyTable} AS k (owner, key, fingerprint, state) VALUES ($1, $2, $3, 'abandoned')
ON CONFLICT (owner, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = EXCLUDED.state, response = NULL, created_at = now()
WHERE k.created_at < now() - $4::float8 * interval '1 millisecond' RETURNING 1`;
export const sweepSql = `DELETE FROM ${idempotencyTable} WHERE created_at < now() - $1::float8 * interval '1 millisecond'`;

/**
 * Whether the idempotency functions exist in their current version (the one that bounds its
 * arguments): column `ok`; `present` when some version exists.
 */
export const idempotencyCurrentSql = `SELECT coalesce((SELECT position('22001' in prosrc) > 0 FROM pg_catalog.pg_proc
  WHERE oid = to_regprocedure('heliosdb.idempotency_record(text, text, text, float8, bytea)')), false) AS ok,
  to_regprocedure('heliosdb.idempotency_record(text, text, text, float8, bytea)') IS NOT NULL AS present`;
