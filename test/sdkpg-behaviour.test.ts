/**
 * The SDK's behaviour suite over `postgres://`, straight to PostgreSQL
 * (`HELIOSDB_TEST_POSTGRES_URL`; required when CI=true, skipped loudly otherwise).
 */
import { test } from 'node:test';
import { postgresSkipReason, postgresUrlEnv } from './helpers/backends.js';
import { describePgBehaviour } from './sdkpg-behaviour-suite.js';

const url = process.env[postgresUrlEnv]?.trim();
if (url) describePgBehaviour('client behaviour over postgres:// [postgresql]', () => url, 'postgresql');
else {
  process.stderr.write(`\n*** postgres:// behaviour SKIPPED: ${postgresSkipReason} ***\n\n`);
  test('client behaviour over postgres:// [postgresql]', { skip: postgresSkipReason }, () => {});
}
