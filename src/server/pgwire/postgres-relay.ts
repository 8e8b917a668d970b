/**
 * The PostgreSQL backend of the PostgreSQL port: once the client is authenticated, its session is
 * relayed byte for byte to a backend connection of its own, opened as the principal's own login
 * role (../backend/logins.ts), so PostgreSQL itself enforces who the client is: nothing it sends
 * (RESET ROLE, SET SESSION AUTHORIZATION, functions) reaches a role that login was not granted.
 * COPY, binary formats, pipelining and NOTIFY work as on PostgreSQL, because they are PostgreSQL.
 *
 * The client's start-up parameters are passed on (the user and database are the login's; the
 * server's statement timeout comes first in `options`, so the client's own wins). The backend's
 * ParameterStatus messages go to the client; its BackendKeyData stays here, and the client gets
 * the server's own key (./cancel.ts), which a CancelRequest maps back to this backend.
 *
 * Backends are counted per login and in all (./relay-limits.ts): a client beyond a cap is refused
 * with 53300 before a backend is opened, and its count is given back however the relay ends. A
 * session idle outside a transaction for `--idle-connection-timeout-ms` is ended with FATAL 57P05
 * (./relay-idle.ts).
 * @packageDocumentation
 */
import net from 'node:net';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import type { Logger } from 'pino';
import type { LoginResolver } from '../backend/logins.js';
import { urlWithLogin } from '../backend/postgres.js';
import type { ResolvedServerOptions } from '../options.js';
import type { CancelRegistry } from './cancel.js';
import { endWithFatal, type PgClient } from './client.js';
import { authenticationOk, backendKeyData, message, parameterStatus, readyForQuery } from './messages.js';
import { RelayIdleWatch } from './relay-idle.js';
import { relayLimitsOf } from './relay-limits.js';

/** What the relay needs. */
export interface RelayDeps {
  logins: LoginResolver;
  options: ResolvedServerOptions;
  cancels: CancelRegistry;
  log: Logger;
}

/** Start-up keys that are the login's, not the client's. */
const loginKeys = new Set(['user', 'database', 'options', 'replication']);

/** Where the database listens, for cancel requests. */
function addressOf(url: string): { host: string; port: number } {
  const u = new URL(url.replace(/^postgresql:/, 'postgres:'));
  return { host: decodeURIComponent(u.hostname) || u.searchParams.get('host') || '127.0.0.1', port: Number(u.port || 5432) };
}

function sendCancel(host: string, port: number, processId: number, secretKey: number): void {
  const socket = host.startsWith('/') ? net.connect(`${host}/.s.PGSQL.${port}`) : net.connect({ host, port });
  socket.setTimeout(5000, () => socket.destroy());
  socket.on('connect', () => socket.end(serialize.cancel(processId, secretKey)));
  socket.on('error', () => {});
}

/** Relays `c` to a backend of its own until either side ends. */
export async function relayToPostgres(c: PgClient, deps: RelayDeps, registerKey: (cancel: () => void) => void): Promise<void> {
  let login: ReturnType<LoginResolver['loginOf']>;
  try {
    await deps.logins.ready(c.principal);
    login = deps.logins.loginOf(c.principal);
  } catch (e) {
    endWithFatal(c.socket, { code: '28000', message: (e as Error).message });
    return;
  }
  const slot = relayLimitsOf(deps.cancels, deps.options).take(login.user ?? '');
  if (typeof slot !== 'function') {
    endWithFatal(c.socket, { code: '53300', message: slot.refused });
    return;
  }
  try {
    await relay(c, deps, registerKey, login);
  } finally {
    slot();
  }
}

/** Terminate, sent to the backend of a session the server ends. */
const terminate = message('X', Buffer.alloc(0));

async function relay(
  c: PgClient,
  deps: RelayDeps,
  registerKey: (cancel: () => void) => void,
  login: ReturnType<LoginResolver['loginOf']>,
): Promise<void> {
  const url = deps.options.databaseUrl!;
  const clientOptions = c.params.find(([k]) => k === 'options')?.[1] ?? '';
  const passOn = c.params.filter(([k]) => !loginKeys.has(k));
  const backendClient = new pg.Client({
    connectionString: login.user ? urlWithLogin(url, login.user, login.password ?? '') : url,
    connectionTimeoutMillis: deps.options.acquireTimeoutMs,
  });
  const client = backendClient as pg.Client & {
    getStartupConf(): Record<string, string>;
    connectionParameters: { user: string; database: string };
    connection: { stream: net.Socket; on(ev: string, fn: (m: Record<string, unknown>) => void): void };
    processID: number;
    secretKey: number;
  };
  client.getStartupConf = () => {
    const conf: Record<string, string> = {
      user: client.connectionParameters.user,
      database: client.connectionParameters.database,
    };
    for (const [k, v] of passOn) conf[k] = v;
    conf.options = `-c statement_timeout=${deps.options.statementTimeoutMs}${clientOptions ? ` ${clientOptions}` : ''}`;
    return conf;
  };
  const statuses: [string, string][] = [];
  client.connection.on('parameterStatus', (m) => statuses.push([String(m.parameterName), String(m.parameterValue)]));
  client.on('error', (err) => c.log.debug({ err }, 'pg port: backend connection ended'));
  try {
    await client.connect();
  } catch (e) {
    const err = e as { code?: string; message?: string };
    const code = typeof err.code === 'string' && /^[0-9A-Z]{5}$/.test(err.code) ? err.code : '08006';
    endWithFatal(c.socket, {
      code,
      message: `the server could not open a PostgreSQL session for this client: ${err.message ?? String(e)}`,
    });
    return;
  }
  const { host, port } = addressOf(url);
  registerKey(() => sendCancel(host, port, client.processID, client.secretKey));
  const backend = client.connection.stream;
  // From here the bytes are the client's: pg's parser lets go of the socket.
  backend.removeAllListeners('data');
  c.socket.write(
    Buffer.concat([
      authenticationOk(),
      ...statuses.map(([k, v]) => parameterStatus(k, v)),
      backendKeyData(c.key.processId, c.key.secretKey),
      readyForQuery('I'),
    ]),
  );
  if (c.leftover.length) backend.write(c.leftover);
  await new Promise<void>((resolve) => {
    let ended = false;
    const end = (fatal?: { code: string; message: string }): void => {
      if (ended) return;
      ended = true;
      idle.stop();
      backend.unpipe(c.socket);
      c.socket.unpipe(backend);
      if (fatal) {
        backend.end(terminate);
        endWithFatal(c.socket, fatal);
      } else {
        c.socket.destroy();
        backend.destroy();
      }
      resolve();
    };
    const idle = new RelayIdleWatch(deps.options.idleConnectionTimeoutMs, () =>
      end({ code: '57P05', message: 'terminating connection due to idle-session timeout (--idle-connection-timeout-ms)' }),
    );
    if (c.leftover.length) idle.fromClient(c.leftover);
    backend.on('data', (chunk: Buffer) => idle.fromBackend(chunk));
    c.socket.on('data', (chunk: Buffer) => idle.fromClient(chunk));
    backend.pipe(c.socket);
    c.socket.pipe(backend);
    c.socket.on('close', () => end());
    c.socket.on('error', () => end());
    backend.on('close', () => end());
    backend.on('error', () => end());
    // A client that left while its backend was being opened.
    if (c.socket.destroyed) end();
    else idle.start();
  });
}
