/**
 * Every SQLSTATE PostgreSQL defines maps to a gRPC status code other than UNKNOWN (read from the
 * installed server's errcodes.txt), and a class 08 error is a broken connection only at FATAL.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Code, type ConnectError } from '@connectrpc/connect';
import { ErrorDetailSchema } from '../../gen/heliosdb/v1/error_pb.js';
import { codeForSqlstate, toConnectError } from '../../src/server/errors.js';

/** PostgreSQL's errcodes.txt: `pg_config --sharedir`, else Debian's place for PostgreSQL 15. */
function errcodesFile(): string | undefined {
  const dirs: string[] = [];
  try {
    dirs.push(execFileSync('pg_config', ['--sharedir'], { encoding: 'utf8' }).trim());
  } catch {}
  dirs.push('/usr/share/postgresql/15');
  return dirs.map((d) => join(d, 'errcodes.txt')).find((f) => existsSync(f));
}

const file = errcodesFile();
const skip = file
  ? false
  : "PostgreSQL's errcodes.txt not found: install PostgreSQL (apt-get install postgresql-15) or put pg_config on PATH";
if (!file && process.env.CI === 'true') throw new Error(`CI=true: ${skip}`);
if (skip) console.warn(`# SKIP sqlstate-codes: ${skip}`);

/** `[sqlstate, name]` of every error (class 00 is success, 01 and 02 are warnings and no data). */
function errors(): [string, string][] {
  const out: [string, string][] = [];
  for (const line of readFileSync(file!, 'utf8').split('\n')) {
    const m = /^([0-9A-Z]{5})\s+E\s+ERRCODE_\w+\s+(\w+)/.exec(line);
    if (m) out.push([m[1]!, m[2]!]);
  }
  return out;
}

test('every SQLSTATE of errcodes.txt has a status code; none is UNKNOWN', { skip }, () => {
  const all = errors();
  assert.ok(all.length > 200, `errcodes.txt lists ${all.length} errors`);
  const unknown = all.filter(([s]) => codeForSqlstate(s) === Code.Unknown).map(([s, n]) => `${s} ${n}`);
  assert.deepEqual(unknown, []);
});

test('well-known SQLSTATEs map as the README says', () => {
  const cases: [string, Code][] = [
    ['40001', Code.Aborted],
    ['40P01', Code.Aborted],
    ['23505', Code.AlreadyExists],
    ['23503', Code.FailedPrecondition],
    ['42601', Code.InvalidArgument],
    ['22P02', Code.InvalidArgument],
    ['42P01', Code.InvalidArgument],
    ['26000', Code.InvalidArgument],
    ['34000', Code.InvalidArgument],
    ['28P01', Code.Unauthenticated],
    ['42501', Code.PermissionDenied],
    ['57014', Code.Canceled],
    ['57P01', Code.Unavailable],
    ['55000', Code.FailedPrecondition],
    ['58P01', Code.Internal],
    ['XX000', Code.Internal],
  ];
  for (const [s, code] of cases) assert.equal(Code[codeForSqlstate(s)], Code[code], s);
});

function mapped(e: object): { code: Code; retryable: boolean } {
  const ce = toConnectError(e) as ConnectError;
  return { code: ce.code, retryable: ce.findDetails(ErrorDetailSchema)[0]?.retryable ?? false };
}

test("a class 08 ERROR is the statement's own (not retryable); at FATAL it is a lost connection", () => {
  const own = mapped({ code: '08006', severity: 'ERROR', message: 'could not connect to the publisher' });
  assert.deepEqual({ code: Code[own.code], retryable: own.retryable }, { code: 'FailedPrecondition', retryable: false });
  const fatal = mapped({ code: '08006', severity: 'FATAL', message: 'connection failure' });
  assert.deepEqual({ code: Code[fatal.code], retryable: fatal.retryable }, { code: 'Unavailable', retryable: true });
  const protocol = mapped({ code: '08P01', severity: 'FATAL', message: 'protocol violation' });
  assert.equal(protocol.retryable, false);
});
