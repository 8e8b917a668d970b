/**
 * The database backends every server behaviour is tested against: embedded PGlite always, and
 * PostgreSQL when `HELIOSDB_TEST_POSTGRES_URL` is set. On CI (`CI=true`) a missing PostgreSQL URL
 * fails the suite; on a developer machine the PostgreSQL variant is skipped, loudly.
 * @packageDocumentation
 */
import { describe, test } from 'node:test';

/** Environment variable naming the PostgreSQL database the tests may use. */
export const postgresUrlEnv = 'HELIOSDB_TEST_POSTGRES_URL';

/** One database backend of the server. */
export interface TestBackend {
  /** `pglite` or `postgresql`, as GetServerInfo reports it. */
  readonly name: 'pglite' | 'postgresql';
  /** The server's `databaseUrl`; undefined for PGlite. */
  readonly databaseUrl: string | undefined;
}

const postgresUrl = process.env[postgresUrlEnv]?.trim() || undefined;
const onCi = process.env.CI === 'true';

if (onCi && !postgresUrl) {
  throw new Error(
    `${postgresUrlEnv} is not set, but CI=true: the server tests must run against PostgreSQL on CI. ` +
      `Set ${postgresUrlEnv}=postgres://user@host:5432/database.`,
  );
}

/** Why the PostgreSQL variant is skipped, or undefined when it runs. */
export const postgresSkipReason: string | undefined = postgresUrl
  ? undefined
  : `set ${postgresUrlEnv}=postgres://postgres@127.0.0.1:5432/test to run against PostgreSQL`;

/** The backends that run in this environment. */
export const backends: readonly TestBackend[] = [
  { name: 'pglite', databaseUrl: undefined },
  ...(postgresUrl ? [{ name: 'postgresql' as const, databaseUrl: postgresUrl }] : []),
];

let warned = false;

/**
 * Declares `describe(title [backend])` for every backend, and a visibly skipped test for
 * PostgreSQL when it is not configured.
 */
export function describeEachBackend(title: string, body: (backend: TestBackend) => void): void {
  for (const backend of backends) {
    describe(`${title} [${backend.name}]`, () => body(backend));
  }
  if (postgresSkipReason) {
    if (!warned) {
      warned = true;
      process.stderr.write(`\n*** PostgreSQL server tests SKIPPED: ${postgresSkipReason} ***\n\n`);
    }
    test(`${title} [postgresql]`, { skip: postgresSkipReason }, () => {});
  }
}
