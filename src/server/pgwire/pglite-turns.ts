/**
 * What the scheduler of the embedded engine's PostgreSQL port (./pglite-scheduler.ts) sends
 * PGlite's one session between clients' turns: the reset when the session passes to another
 * client, what fails the extended exchange of a client that left before its Sync, and the settings
 * a client's start-up asks for.
 * @packageDocumentation
 */
import { quoteLiteral } from '../sql-quote.js';
import { cstr, message, parseOptionsParam, syncMessage } from './messages.js';
import { refusalSql } from './statement-rules.js';

/** Start-up keys that are no settings. */
const notSettings = new Set(['user', 'database', 'options', 'replication', 'fallback_application_name']);

/**
 * What ends the extended exchange of a client that left before its Sync: a statement that fails
 * (the exchange's implicit transaction is rolled back, not committed), then the Sync.
 */
export const failAndSync = Buffer.concat([
  message('P', Buffer.concat([cstr(''), cstr(refusalSql({ code: '08006', message: 'the client left before Sync' })), Buffer.alloc(2)])),
  message('B', Buffer.concat([cstr(''), cstr(''), Buffer.alloc(6)])),
  message('E', Buffer.concat([cstr(''), Buffer.alloc(4)])),
  syncMessage,
]);

/** The settings a client's start-up asks for, as PGlite's worker reads them (../pglite/socket.ts). */
export function startupSettings(params: [string, string][]): [string, string][] {
  const settings: [string, string][] = [...parseOptionsParam(params.find(([k]) => k === 'options')?.[1] ?? '')];
  for (const [k, v] of params) if (!notSettings.has(k)) settings.push([k, v]);
  const fallback = params.find(([k]) => k === 'fallback_application_name');
  if (fallback && !params.some(([k]) => k === 'application_name')) settings.push(['application_name', fallback[1]]);
  return settings;
}

/**
 * What clears the session when it passes to another client: the transaction block of a client
 * that left, the role and settings, temporary objects, session advisory locks, and the LISTENs
 * that are not the server's own (`serverChannels`, which a statement in a DO block or function
 * may have added to).
 */
export function resetSql(rollback: boolean, serverChannels: string[]): string {
  const keep = `ARRAY[${serverChannels.map(quoteLiteral).join(', ')}]::text[]`;
  return (
    `${rollback ? 'ROLLBACK; ' : ''}SET SESSION AUTHORIZATION postgres; RESET ALL; DISCARD TEMP; SELECT pg_advisory_unlock_all(); ` +
    `DO $heliosdb$DECLARE c text; BEGIN FOR c IN SELECT pg_listening_channels() LOOP IF NOT c = ANY (${keep}) THEN EXECUTE format('UNLISTEN %I', c); END IF; END LOOP; END$heliosdb$`
  );
}
