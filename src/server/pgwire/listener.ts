/**
 * The PostgreSQL wire-protocol listener (`--pg-port`): accepts connections within the listener
 * limits, runs the start-up (./startup.ts) and authentication (./authentication.ts), refuses what
 * the port cannot honour, and hands the client to the backend's session layer: a relay to a
 * PostgreSQL backend of its own (./postgres-relay.ts) or the embedded engine's scheduler
 * (./pglite-scheduler.ts). Nothing a client sends can end the server: every failure ends that
 * client's connection only.
 * @packageDocumentation
 */
import net from 'node:net';
import type { Logger } from 'pino';
import type { Backend } from '../backend.js';
import type { LoginResolver } from '../backend/logins.js';
import type { NotificationHub } from '../notifications.js';
import type { ResolvedServerOptions } from '../options.js';
import type { ServerTls } from '../tls.js';
import { authenticatePgClient, type PgAuthConversation, PgAuthError, type PgAuthDeps } from './authentication.js';
import { type BackendKey, CancelRegistry } from './cancel.js';
import { endWithFatal, type PgClient, paramOf } from './client.js';
import { MessageFramer } from './framing.js';
import { authenticationCleartextPassword, cstringAt, ProtocolViolation } from './messages.js';
import { PgliteScheduler } from './pglite-scheduler.js';
import { relayToPostgres } from './postgres-relay.js';
import { negotiate, type StartedConnection, startupTimeoutMs } from './startup.js';
import { type LeaveStartup, maxStartingPerAddress, StartingConnections } from './startup-slots.js';

/** What the listener needs. */
export interface PgWireListenerDeps {
  host: string;
  port: number;
  backend: Backend;
  logins: LoginResolver;
  /** The server's notification hub (LISTEN on the embedded engine). */
  hub?: NotificationHub;
  auth: PgAuthDeps;
  options: ResolvedServerOptions;
  serverTls: ServerTls | undefined;
  log: Logger;
}

/** A running listener. */
export interface PgWireListener {
  readonly port: number;
  /** Client connections open now. */
  connections(): number;
  /** Stops accepting, ends every client connection. */
  close(): Promise<void>;
}

/** Authentication's exchanges with the client: each request is answered by a password-type ('p') message. */
function conversationOf(started: StartedConnection, framer: MessageFramer): PgAuthConversation {
  const { socket } = started;
  const exchange = (request: Buffer): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error('the client did not answer the authentication request in time')), startupTimeoutMs);
      const done = (r: Buffer | Error): void => {
        clearTimeout(timer);
        socket.removeListener('data', onData);
        socket.removeListener('close', onClose);
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
      const onClose = (): void => done(new Error('the client closed the connection during authentication'));
      const onData = (chunk: Buffer): void => {
        try {
          framer.push(chunk);
          const msg = framer.nextTyped();
          if (!msg) return;
          if (msg[0] !== 0x70)
            throw new ProtocolViolation(`expected a password message, got message type ${JSON.stringify(String.fromCharCode(msg[0]!))}`);
          done(Buffer.from(msg));
        } catch (e) {
          done(e as Error);
        }
      };
      socket.on('data', onData);
      socket.on('close', onClose);
      socket.write(request);
      if (framer.pending) onData(Buffer.alloc(0));
    });
  return {
    exchange,
    askPassword: async () => cstringAt(await exchange(authenticationCleartextPassword()), 5)[0],
    send: (msg) => void socket.write(msg),
  };
}

/** Starts the listener. */
export async function startPgWireListener(deps: PgWireListenerDeps): Promise<PgWireListener> {
  const { log, options } = deps;
  const cancels = new CancelRegistry();
  const sockets = new Set<net.Socket>();
  const accepted = new Set<net.Socket>();
  const starting = new StartingConnections();
  const scheduler =
    deps.backend.engine === 'pglite'
      ? new PgliteScheduler({ backend: deps.backend, logins: deps.logins, hub: deps.hub, options, log })
      : undefined;
  let nextId = 0;

  const serve = async (raw: net.Socket, leaveStartup: LeaveStartup): Promise<void> => {
    const negotiated = await negotiate(raw, deps.serverTls);
    if (negotiated.kind === 'cancel') {
      cancels.cancel(negotiated.processId, negotiated.secretKey);
      raw.end();
      return;
    }
    const started = negotiated;
    const { socket } = started;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (deps.serverTls && !started.encrypted) {
      endWithFatal(socket, {
        code: '28000',
        message: 'this server requires TLS on every connection: connect with sslmode=require (or verify-full)',
      });
      return;
    }
    if (paramOf(started, 'replication') && !/^(false|off|no|0)$/i.test(paramOf(started, 'replication')!)) {
      endWithFatal(socket, { code: '0A000', message: 'replication connections are not supported by the HeliosDB PostgreSQL port' });
      return;
    }
    const framer = new MessageFramer(options.maxMessageBytes);
    framer.push(started.leftover);
    const peer = {
      address: (started.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
      encrypted: started.encrypted,
      certificateCommonName: started.certificateCommonName,
    };
    let principal: PgClient['principal'];
    try {
      principal = await authenticatePgClient(deps.auth, peer, paramOf(started, 'user') ?? '', conversationOf(started, framer));
    } catch (e) {
      if (e instanceof PgAuthError) endWithFatal(socket, { code: e.sqlstate, message: e.message });
      else if (e instanceof ProtocolViolation) endWithFatal(socket, { code: '08P01', message: e.message });
      else socket.destroy();
      return;
    }
    if (principal.readOnly) {
      endWithFatal(socket, {
        code: '28000',
        message:
          "read-only API keys are refused on the PostgreSQL port: the raw protocol lets a client change its session's read-only setting, so the server could not hold it to reads; use the key over gRPC or HTTP",
      });
      return;
    }
    leaveStartup();
    let cancel: () => void = () => {};
    const key: BackendKey = cancels.issue(() => cancel());
    socket.once('close', () => cancels.release(key));
    const id = ++nextId;
    const client: PgClient = {
      id,
      socket,
      params: started.params,
      principal,
      key,
      leftover: framer.drain(),
      log: log.child({ pgClient: id }),
    };
    if (scheduler) await scheduler.serve(client, (fn) => (cancel = fn));
    else await relayToPostgres(client, { logins: deps.logins, options, cancels, log }, (fn) => (cancel = fn));
  };

  const server = net.createServer({ noDelay: true }, (raw) => {
    raw.on('error', () => {});
    if (accepted.size >= options.maxConnections) {
      endWithFatal(raw, { code: '53300', message: 'sorry, too many clients already (--max-connections)' });
      return;
    }
    const leaveStartup = starting.enter((raw.remoteAddress ?? '').replace(/^::ffff:/, ''));
    if (!leaveStartup) {
      endWithFatal(raw, {
        code: '53300',
        message: `sorry, too many connections from this address still starting up (at most ${maxStartingPerAddress})`,
      });
      return;
    }
    raw.once('close', leaveStartup);
    accepted.add(raw);
    raw.once('close', () => accepted.delete(raw));
    raw.setKeepAlive(true, 60_000);
    serve(raw, leaveStartup).catch((err) => {
      log.debug({ err }, 'pg port: connection ended during start-up');
      if (err instanceof ProtocolViolation) endWithFatal(raw, { code: '08P01', message: err.message });
      else raw.destroy();
    });
  });
  server.on('error', (err) => log.error({ err }, 'pg port listener failed'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(deps.port, deps.host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections: () => accepted.size,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets)
        endWithFatal(s, { code: '57P01', message: 'terminating connection due to administrator command (the server is shutting down)' });
      for (const s of sockets) s.destroy();
      for (const s of accepted) s.destroy();
      await scheduler?.close();
      await closed;
    },
  };
}
