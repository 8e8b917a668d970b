/**
 * `heliosdb user`, `heliosdb apikey` and `heliosdb auth init`: users and API keys in the
 * `heliosdb` schema of a PostgreSQL database (`--database-url` or `HELIOSDB_DATABASE_URL`), run as
 * a role that may create the schema (an administrator, not the server's authenticator).
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { pgRunner } from '../auth/setup.js';
import { SqlAuthStore } from '../auth/store.js';

/** The commands' usage lines. */
export const adminUsage = `  heliosdb auth init [--grant-to LOGIN_ROLE]
                           create (or upgrade) the heliosdb schema and the server key, and give
                           every user its PostgreSQL login role; --grant-to: let a server that
                           logs in as another role than yours use the schema
  heliosdb user create NAME --role ROLE [--password-stdin] [--replace]
                           a user whose statements run as PostgreSQL role ROLE, under a login role
                           of its own; with a password read from standard input (first line) for
                           Login; --replace changes an existing user (its sessions end)
  heliosdb user delete NAME  the user, its keys and sessions, and its login role
  heliosdb apikey create --user NAME [--read-only]
                           prints the new key once (it is stored only as a hash) and its id
  heliosdb apikey revoke ID
  (each takes --database-url URL, default HELIOSDB_DATABASE_URL)`;

interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

const valueFlags = new Set(['--database-url', '--role', '--user', '--grant-to']);

function parse(args: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    if (eq > 0) flags.set(a.slice(0, eq), a.slice(eq + 1));
    else if (valueFlags.has(a)) {
      const v = args[++i];
      if (v === undefined) throw new Error(`flag ${a} needs a value`);
      flags.set(a, v);
    } else flags.set(a, true);
  }
  return { positional, flags };
}

function str(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

function readPasswordFromStdin(): string {
  const text = readFileSync(0, 'utf8');
  const line = text.split(/\r?\n/)[0];
  if (!line) throw new Error('--password-stdin: standard input is empty');
  return line;
}

/** Runs `heliosdb <command> ...args`; prints results to stdout. */
export async function adminCommand(command: string, args: string[], env: Record<string, string | undefined> = process.env): Promise<void> {
  const p = parse(args);
  const url = str(p, '--database-url') ?? env.HELIOSDB_DATABASE_URL;
  if (!url)
    throw new Error(
      `heliosdb ${command} needs --database-url (or HELIOSDB_DATABASE_URL): users and keys live in the server's PostgreSQL database`,
    );
  const known = new Set(['--database-url', '--role', '--user', '--grant-to', '--password-stdin', '--replace', '--read-only']);
  for (const f of p.flags.keys()) if (!known.has(f)) throw new Error(`unknown flag ${f}\n\n${adminUsage}`);
  const client = new pg.Client({ connectionString: url, application_name: 'heliosdb-admin' });
  await client.connect();
  try {
    const store = new SqlAuthStore(pgRunner(client));
    const [sub, arg] = p.positional;
    if (command === 'auth' && sub === 'init') {
      await store.ensureSchema();
      const users = await store.provisionAllLogins();
      const grantTo = str(p, '--grant-to');
      if (grantTo) await store.grantTo(grantTo);
      console.log(
        `heliosdb schema ready (${users} user${users === 1 ? '' : 's'} with login roles)${grantTo ? `; ${grantTo} may read users and keys, keep sessions and record idempotency keys` : ''}`,
      );
    } else if (command === 'user' && sub === 'create' && arg) {
      const role = str(p, '--role');
      if (!role) throw new Error('heliosdb user create needs --role ROLE (the PostgreSQL role its statements run as)');
      const password = p.flags.get('--password-stdin') ? readPasswordFromStdin() : undefined;
      await store.createUser({ name: arg, role, password, replace: p.flags.has('--replace') });
      console.log(`user ${arg} (role ${role}${password === undefined ? ', no password' : ', password set'})`);
    } else if (command === 'user' && sub === 'delete' && arg) {
      if (!(await store.deleteUser(arg))) throw new Error(`no user ${arg}`);
      console.log(`user ${arg} deleted, with its API keys and sessions`);
    } else if (command === 'apikey' && sub === 'create') {
      const user = str(p, '--user');
      if (!user) throw new Error('heliosdb apikey create needs --user NAME');
      const { id, key } = await store.createApiKey({ user, readOnly: p.flags.has('--read-only') });
      console.log(key);
      console.error(
        `API key ${id} for ${user}${p.flags.has('--read-only') ? ' (read-only)' : ''}: the line above is shown once; store it now`,
      );
    } else if (command === 'apikey' && sub === 'revoke' && arg) {
      if (!(await store.revokeApiKey(arg))) throw new Error(`no unrevoked API key ${arg}`);
      console.log(`API key ${arg} revoked`);
    } else {
      throw new Error(`unknown command: heliosdb ${command} ${p.positional.join(' ')}\n\n${adminUsage}`);
    }
  } finally {
    await client.end();
  }
}
