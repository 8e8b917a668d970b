/**
 * Authentication over TLS: an API key for a service, a password for a person, the server's
 * certificate checked against your CA (verify-full), and what a refused call looks like.
 *
 *   HELIOSDB_URL=grpcs://localhost:7700 HELIOSDB_CA_FILE=ca.crt APP_API_KEY=... \
 *   APP_USER=alice APP_PASSWORD=... npx tsx examples/tls-auth.ts
 *
 * (Not HELIOSDB_API_KEY / HELIOSDB_USER / HELIOSDB_PASSWORD: every client would read those.)
 * The server runs with `--tls-cert server.crt --tls-key server.key --auth required`; docs/security.md
 * shows how to make the certificates, users and keys.
 */
import { readFileSync } from 'node:fs';
import { AuthenticationError, createClient } from '@heliosdb/client';

const url = process.env.HELIOSDB_URL ?? 'grpcs://localhost:7700';
const ssl = { ca: readFileSync(process.env.HELIOSDB_CA_FILE ?? 'ca.crt') };

// A service: an API key (read-only keys cannot write by any route).
{
  await using service = createClient({ url, ssl, apiKey: process.env.APP_API_KEY });
  const { rows } = await service.query('SELECT current_user AS role');
  console.log('api key: runs as', rows[0].role);
}

// A person: user name and password, exchanged once for a session token (never sent in clear).
{
  await using person = createClient({ url, ssl, user: process.env.APP_USER, password: process.env.APP_PASSWORD });
  await person.query('SELECT 1');
  console.log('password: logged in as', process.env.APP_USER);
}

// No credentials: refused with a typed error.
{
  await using anonymous = createClient({ url, ssl, retry: false });
  try {
    await anonymous.query('SELECT 1');
  } catch (e) {
    if (!(e instanceof AuthenticationError)) throw e;
    console.log('no credentials:', e.code);
  }
}
