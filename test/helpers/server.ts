/**
 * Starting a server for a test file and talking to it through raw Connect clients on every
 * protocol: native gRPC (HTTP/2) on the gRPC port; Connect (binary and JSON), gRPC-Web and gRPC on
 * the HTTP port.
 * @packageDocumentation
 */
import { after, before } from 'node:test';
import { randomBytes } from 'node:crypto';
import { type Client, createClient, type Transport } from '@connectrpc/connect';
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from '@connectrpc/connect-node';
import pg from 'pg';
import { Health } from '../../gen/grpc/health/v1/health_pb.js';
import { DatabaseService } from '../../gen/heliosdb/v1/database_pb.js';
import { type HeliosServer, startServer } from '../../src/server/server.js';
import type { ServerOptions } from '../../src/server/options.js';
import type { TestBackend } from './backends.js';

/** A DatabaseService client. */
export type DbClient = Client<typeof DatabaseService>;
/** A grpc.health.v1.Health client. */
export type HealthClient = Client<typeof Health>;

/** The protocols a test can reach the server with. */
export type ProtocolName = 'grpc' | 'connect' | 'connect-json' | 'grpc-web' | 'grpc-http';

/** The native gRPC listener's URL as an http:// base URL for Connect transports. */
export function grpcBaseUrl(server: HeliosServer): string {
  return server.grpcUrl.replace(/^grpc:/, 'http:');
}

/** A transport for `protocol` to `server`. */
export function transportFor(server: HeliosServer, protocol: ProtocolName): Transport {
  const httpUrl = server.httpUrl;
  if (protocol !== 'grpc' && httpUrl === undefined) throw new Error('the HTTP listener is disabled');
  switch (protocol) {
    case 'grpc':
      return createGrpcTransport({ baseUrl: grpcBaseUrl(server) });
    case 'connect':
      return createConnectTransport({ baseUrl: httpUrl!, httpVersion: '1.1', useBinaryFormat: true });
    case 'connect-json':
      return createConnectTransport({ baseUrl: httpUrl!, httpVersion: '1.1', useBinaryFormat: false });
    case 'grpc-web':
      return createGrpcWebTransport({ baseUrl: httpUrl!, httpVersion: '1.1' });
    case 'grpc-http':
      return createGrpcTransport({ baseUrl: httpUrl! });
  }
}

/** A started server with clients for it. */
export interface TestServer {
  readonly backend: TestBackend;
  readonly server: HeliosServer;
  /** DatabaseService over native gRPC (the gRPC port). */
  readonly db: DbClient;
  /** A DatabaseService client per protocol. */
  client(protocol: ProtocolName): DbClient;
  /** A Health client per protocol. */
  health(protocol: ProtocolName): HealthClient;
  /** A direct PostgreSQL connection to the same database (PostgreSQL only; undefined on PGlite). */
  readonly admin: pg.Client | undefined;
  close(): Promise<void>;
}

/** Starts a server on `backend` with small, test-friendly defaults and `options` on top. */
export async function startTestServer(backend: TestBackend, options: ServerOptions = {}): Promise<TestServer> {
  const server = await startServer({
    port: 0,
    httpPort: 0,
    logLevel: 'silent',
    databaseUrl: backend.databaseUrl,
    ...options,
  });
  let admin: pg.Client | undefined;
  if (backend.databaseUrl) {
    admin = new pg.Client({ connectionString: backend.databaseUrl, application_name: 'heliosdb-test-admin' });
    await admin.connect();
  }
  const clients = new Map<ProtocolName, DbClient>();
  const healths = new Map<ProtocolName, HealthClient>();
  const client = (protocol: ProtocolName): DbClient => {
    let c = clients.get(protocol);
    if (!c) clients.set(protocol, (c = createClient(DatabaseService, transportFor(server, protocol))));
    return c;
  };
  const health = (protocol: ProtocolName): HealthClient => {
    let c = healths.get(protocol);
    if (!c) healths.set(protocol, (c = createClient(Health, transportFor(server, protocol))));
    return c;
  };
  let closed: Promise<void> | undefined;
  return {
    backend,
    server,
    db: client('grpc'),
    client,
    health,
    admin,
    close() {
      closed ??= (async () => {
        await server.close();
        await admin?.end();
      })();
      return closed;
    },
  };
}

/**
 * Registers before/after hooks that start a server for the enclosing describe block and close it;
 * returns an accessor for the running server.
 */
export function useServer(backend: TestBackend, options: ServerOptions = {}): () => TestServer {
  let ts: TestServer | undefined;
  before(async () => {
    ts = await startTestServer(backend, options);
  });
  after(async () => {
    await ts?.close();
  });
  return () => {
    if (!ts) throw new Error('the test server is not running (did before() fail?)');
    return ts;
  };
}

/** A table name unique to this run (test files run concurrently against one database). */
export function uniqueName(prefix = 't'): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
}

/** Polls `condition` every 20 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 3000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Anything with an `after` hook: a TestContext or a SuiteContext. */
interface HasAfter {
  after(fn: () => unknown): void;
}

/**
 * Creates a uniquely named table through the server and drops it when `t` finishes. Returns the
 * table's name.
 */
export async function createTable(ts: TestServer, t: HasAfter, columns = 'id int PRIMARY KEY, v text'): Promise<string> {
  const name = uniqueName();
  await ts.db.execute({ sql: `CREATE TABLE ${name} (${columns})` });
  t.after(async () => {
    await ts.db.execute({ sql: `DROP TABLE IF EXISTS ${name} CASCADE` });
  });
  return name;
}

/** Runs `SELECT count(*)` on `table` through the server, in auto-commit or in `transactionId`. */
export async function countRows(db: DbClient, table: string, transactionId = ''): Promise<number> {
  const r = await db.query({ sql: `SELECT count(*)::int4 AS n FROM ${table}`, transactionId });
  const cell = r.result?.rows?.values[0]?.values[0]?.kind;
  if (cell?.case !== 'int32') throw new Error(`count(*) returned ${JSON.stringify(cell)}`);
  return cell.value;
}

/** Whether `p` is still pending after `ms` milliseconds. */
export async function stillPending(p: Promise<unknown>, ms: number): Promise<boolean> {
  const marker = Symbol('pending');
  const winner = await Promise.race([
    p.then(
      () => null,
      () => null,
    ),
    new Promise((r) => setTimeout(() => r(marker), ms)),
  ]);
  return winner === marker;
}
