/**
 * Running one statement-zoo row (./statement-zoo.ts) through one column: its cleanup and setup,
 * the call, the outcome against the expectation, and then what must hold after any call: the
 * server answers its health check and `SELECT 1`, no transaction is left open, the session looks
 * as it did before (settings, role, cursors, prepared statements, temporary tables, advisory
 * locks, LISTENs) and the statement's effect is visible exactly when it was served.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { Code } from '@connectrpc/connect';
import type pg from 'pg';
import { type HeliosDBClient, HeliosDBError, type PreparedStatement } from '@heliosdb/client';
import type { Column, Expect, ResolvedRow, Setup } from './statement-zoo.js';

/** What a row runs against. */
export interface ZooTarget {
  client: HeliosDBClient;
  /** A direct connection to PostgreSQL (undefined on PGlite). */
  admin: pg.Client | undefined;
  /** The application names the server's connections carry (to find them in pg_stat_activity). */
  appNames: string[];
  /** The session fingerprint before any row ran (see {@link fingerprint}). */
  baseline: Record<string, unknown>;
}

/** An outcome as seen: the command tag and row count, or the error. */
export type Seen = { ok: true; tag: string; rows: number | undefined; affected: number } | { ok: false; error: unknown };

/** The state of the session a call leaves behind, as one row (plus `effect` and the liveness checks). */
export function fingerprintSql(effect: string | undefined): string {
  return `SELECT (${effect ?? 'NULL::bool'}) AS effect, 1 AS one, txid_current_if_assigned() IS NULL AS no_xact,
    current_user::text AS cu, session_user::text AS su, current_setting('work_mem') AS work_mem,
    current_setting('search_path') AS search_path, current_setting('TimeZone') AS tz,
    current_setting('default_transaction_isolation') AS dti, current_setting('default_transaction_read_only') AS dtro,
    current_setting('statement_timeout') AS st, current_setting('application_name') AS app,
    (SELECT count(*)::int FROM pg_prepared_statements) AS prepared, (SELECT count(*)::int FROM pg_cursors) AS cursors,
    (SELECT count(*)::int FROM pg_listening_channels()) AS listening,
    (SELECT count(*)::int FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temps,
    (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory`;
}

/** The session fingerprint, without `effect`. */
export async function fingerprint(client: HeliosDBClient): Promise<Record<string, unknown>> {
  const { rows } = await client.query(fingerprintSql(undefined));
  const { effect: _e, ...rest } = rows[0];
  return rest;
}

/** Runs setup or cleanup steps; consecutive plain statements go in one call. */
export async function runSteps(client: HeliosDBClient, steps: readonly Setup[]): Promise<void> {
  let script: string[] = [];
  const flush = async () => {
    if (script.length > 0) await client.execute(script.join(';\n'));
    script = [];
  };
  for (const step of steps) {
    if (typeof step === 'string') {
      if (step.startsWith('!')) {
        // Must be alone in its call (CREATE DATABASE, DROP SUBSCRIPTION, ...).
        await flush();
        await client.execute(step.slice(1));
      } else script.push(step);
      continue;
    }
    await flush();
    const session = await client.reserve();
    try {
      for (const s of step.reserved) await session.execute(s);
    } finally {
      await session.release();
    }
  }
  await flush();
}

function seenOf(r: { command: string; rows?: unknown[]; rowCount: number }): Seen {
  return { ok: true, tag: r.command, rows: r.rows?.length, affected: r.rowCount };
}

/** Sends `row` through `column` and returns what came back; throws only when the row's own preparation fails. */
export async function send(client: HeliosDBClient, row: ResolvedRow, column: Column): Promise<Seen> {
  const sql = row.sql;
  try {
    switch (column) {
      case 'query':
        return seenOf(await client.query(sql));
      case 'execute':
        return seenOf(await client.execute(sql));
      case 'batch': {
        const r = await client.batch([{ sql }], { returnRows: true });
        const first = r.results[0];
        if (!first.ok) return { ok: false, error: first.error };
        return seenOf(first.result);
      }
      case 'stream': {
        const s = client.stream(sql);
        let n = 0;
        for await (const _ of s) n++;
        return { ok: true, tag: s.stats?.command ?? '', rows: n, affected: s.stats?.rowCount ?? -1 };
      }
      case 'prepare': {
        const p = await client.prepare(sql);
        await p.close();
        return { ok: true, tag: '', rows: undefined, affected: 0 };
      }
      case 'prepared': {
        let p: PreparedStatement | undefined;
        try {
          p = await client.prepare(sql);
        } catch (e) {
          throw new Error(`prepare failed before the prepared run: ${(e as Error).message}`);
        }
        try {
          return seenOf(await p.query());
        } finally {
          await p.close().catch(() => {});
        }
      }
      case 'tx': {
        const tx = await client.begin();
        let seen: Seen;
        try {
          for (const s of row.txSetup) await tx.execute(s);
        } catch (e) {
          await tx.rollback().catch(() => {});
          throw new Error(`txSetup failed: ${(e as Error).message}`);
        }
        try {
          seen = seenOf(await tx.query(sql));
          await tx.commit();
        } catch (e) {
          await tx.rollback().catch(() => {});
          return { ok: false, error: e };
        }
        return seen;
      }
      case 'session': {
        const s = await client.reserve();
        try {
          for (const st of row.session?.setup ?? []) await s.execute(st);
          return seenOf(await s.query(sql));
        } finally {
          await s.release();
        }
      }
    }
  } catch (e) {
    if (e instanceof HeliosDBError) return { ok: false, error: e };
    throw e;
  }
}

/** A one-line description of an outcome (for failure messages and discovery). */
export function describeSeen(seen: Seen): string {
  if (seen.ok) return `served tag=${JSON.stringify(seen.tag)} rows=${seen.rows} affected=${seen.affected}`;
  const e = seen.error as HeliosDBError;
  const message = String(e?.message).replace(/\s+/g, ' ').slice(0, 160);
  return `${e?.constructor?.name} code=${e?.code} reason=${e?.reason} sqlstate=${e?.sqlstate} grpc=${e?.grpcCode === undefined ? '?' : Code[e.grpcCode]} retryable=${e?.retryable}: ${message}`;
}

/** Asserts `seen` is `expected`. */
export function assertOutcome(seen: Seen, expected: Expect, column: Column): void {
  if (expected.ok) {
    assert.ok(seen.ok, `expected served, got ${describeSeen(seen)}`);
    if (column !== 'prepare' && expected.tag !== undefined) assert.equal(seen.tag, expected.tag, 'command tag');
    if (column !== 'prepare' && column !== 'execute' && expected.rows !== undefined)
      assert.equal(seen.rows, expected.rows, 'rows returned');
    if (column !== 'prepare' && expected.affected !== undefined)
      assert.equal(seen.affected, expected.affected, 'rows the command tag counts');
    return;
  }
  assert.ok(
    !seen.ok,
    `expected ${expected.cls.name} ${expected.code}${expected.sqlstate ? ` ${expected.sqlstate}` : ''}, but it was ${describeSeen(seen)}`,
  );
  const e = seen.error as HeliosDBError;
  const what = describeSeen(seen);
  assert.ok(e instanceof expected.cls, `expected ${expected.cls.name}, got ${what}`);
  assert.equal(e.code, expected.code, `error code (${what})`);
  assert.ok(e.message.length > 10, `the error says why (${what})`);
  if (expected.message) assert.match(e.message, expected.message);
  if (expected.sqlstate) {
    const states = typeof expected.sqlstate === 'string' ? [expected.sqlstate] : expected.sqlstate;
    assert.ok(states.includes(e.sqlstate ?? ''), `SQLSTATE ${states.join(' or ')} (${what})`);
    return;
  }
  // The server's own refusal: its reason, and a status of its own (never the transport's catch-alls).
  assert.equal(e.reason, expected.code, `reason (${what})`);
  assert.ok(e.grpcCode !== Code.Internal && e.grpcCode !== Code.Unknown, `a typed status, not ${Code[e.grpcCode]} (${what})`);
}

/** What must hold after every call; `effect` is whether the statement's work must be visible. */
export async function assertAfter(target: ZooTarget, effectSql: string | undefined, effect: boolean): Promise<void> {
  const { client, admin } = target;
  assert.equal(await client.healthCheck({ timeoutMs: 3000 }), true, 'the server answers its health check');
  const { rows } = await client.query(fingerprintSql(effectSql === undefined ? undefined : `coalesce((${effectSql}), false)`));
  const { effect: seenEffect, ...state } = rows[0];
  assert.equal(state.one, 1, 'SELECT 1');
  assert.equal(state.no_xact, true, 'no transaction left open');
  assert.deepEqual(state, target.baseline, 'the session is as it was (nothing left behind)');
  if (effectSql)
    assert.equal(seenEffect, effect, effect ? 'the statement did its work' : 'the statement had no effect (it was not run, or failed)');
  if (admin) {
    const r = await admin.query(
      `SELECT application_name, state, query, now() - xact_start AS age, now() - state_change AS idle FROM pg_stat_activity WHERE application_name = ANY($1) AND state LIKE 'idle in transaction%'`,
      [target.appNames],
    );
    assert.equal(r.rows.length, 0, `no connection of the server is idle in a transaction: ${JSON.stringify(r.rows)}`);
  }
}
