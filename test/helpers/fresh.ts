/**
 * Brand-new servers for the fresh-server suite: each has done nothing when the test gets it, on a
 * database that has nothing of the server's in it yet.
 *
 * - PostgreSQL: a new database (`CREATE DATABASE ... TEMPLATE template0`) per server, dropped when
 *   the test ends, so the server's start-up creates its schema there for the first time; tables a
 *   feature needs before its first call are made by a direct administrator connection, not the
 *   server.
 * - PGlite: the default in-memory engine; or, when the test needs tables that exist before the
 *   server's first call, a copy of a data directory made once by a standalone PGlite (not the
 *   server) with those tables in it.
 *
 * Results are checked outside the client under test: through the administrator connection on
 * PostgreSQL, through a separate client (after the feature ran) on PGlite.
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { Interceptor } from '@connectrpc/connect';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { type ConnectionConfig, createClient, type HeliosDBClient } from '@heliosdb/client';
import { type HeliosServer, type StartServerOptions, startServer } from '../../src/server/server.js';
import type { TestBackend } from './backends.js';

/** Tables that exist before a `withTables` server's first call: `(id int PRIMARY KEY, v text)`. */
export const premadeTables = ['fresh_keyed', 'fresh_copy', 'fresh_many'] as const;

const premadeSql = premadeTables.map((t) => `CREATE TABLE ${t} (id int PRIMARY KEY, v text);`).join('\n');

/** The transports a client can reach a server with. */
export type FreshTransport = 'grpc' | 'http';

/** One RPC a client sent, as its interceptors saw it. */
export interface SentCall {
  /** The RPC's name, e.g. `BeginTransaction`. */
  method: string;
  /** The request's idempotency key after the call ('' when none; undefined for streaming requests). */
  idempotencyKey: string | undefined;
}

/** A client under test and the RPCs it sent, in order. */
export interface FreshClient {
  client: HeliosDBClient;
  calls: SentCall[];
}

/** A brand-new server. */
export interface FreshServer {
  readonly server: HeliosServer;
  /** How long `startServer` took, ms. */
  readonly startMs: number;
  /** Direct administrator connection to the server's database (PostgreSQL only). */
  readonly admin: pg.Client | undefined;
  /** The name of the server's fresh database (PostgreSQL only). */
  readonly database: string | undefined;
  /** A new client on `transport` that records its RPCs; closed with the server. */
  client(transport: FreshTransport, config?: ConnectionConfig): FreshClient;
  /** Runs SQL outside the clients under test (see the file comment); rows as objects. */
  verify(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  /** `count(*)` of `table`, through {@link verify}. */
  count(table: string): Promise<number>;
  /** Credentials {@link verify}'s client uses on PGlite (a server with authentication required). Default none. */
  verifyAs(config: ConnectionConfig): void;
  /** Runs `fn` when the test ends, before the clients and the server close. */
  onCleanup(fn: () => Promise<void>): void;
}

/** Options of {@link freshServer}. */
export interface FreshOptions {
  /** Make {@link premadeTables} before the server starts. Default false. */
  withTables?: boolean;
  /** More server options (on top of port 0, httpPort 0, silent logs, the backend's URL). */
  server?: StartServerOptions;
  /** Runs on the fresh database before the server starts (PostgreSQL only); its result is passed on. */
  beforeStart?: (admin: pg.Client, databaseUrl: string) => Promise<StartServerOptions | undefined>;
  /**
   * A server on the same database before this one: started, given a client for `fn`, closed; the
   * server under test then starts on what it left (PGlite: a data directory, empty or with the
   * tables). Default none.
   */
  previousServer?: (client: HeliosDBClient) => Promise<void>;
  /** Runs after the fresh database was dropped, on a connection to the test database (PostgreSQL only): drop roles here. */
  afterDrop?: (maintenance: pg.Client) => Promise<void>;
}

let templateDir: string | undefined;
let scratch: string | undefined;

function scratchDir(): string {
  scratch ??= mkdtempSync(join(tmpdir(), 'heliosdb-fresh-'));
  return scratch;
}

/** Removes the data directories this module made (call once, after every test). */
export function removeFreshScratch(): void {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
  templateDir = undefined;
}

/** A data directory with {@link premadeTables}, made once by a standalone PGlite, copied per server. */
async function pgliteDataDirWithTables(): Promise<string> {
  if (!templateDir) {
    const dir = join(scratchDir(), 'template');
    const db = new PGlite(dir);
    await db.exec(premadeSql);
    await db.close();
    templateDir = dir;
  }
  const copy = join(scratchDir(), `data-${randomBytes(4).toString('hex')}`);
  cpSync(templateDir, copy, { recursive: true });
  return copy;
}

/** A client interceptor recording each RPC and its idempotency key (read after the call, once the retry layer set it). */
function recorder(calls: SentCall[]): Interceptor {
  return (next) => async (req) => {
    const entry: SentCall = { method: req.method.name, idempotencyKey: undefined };
    calls.push(entry);
    try {
      return await next(req);
    } finally {
      if (!req.stream) entry.idempotencyKey = String((req.message as { idempotencyKey?: unknown }).idempotencyKey ?? '');
    }
  };
}

/** Starts a brand-new server on `backend` for test `t`; everything it made is removed when `t` ends. */
export async function freshServer(t: TestContext, backend: TestBackend, options: FreshOptions = {}): Promise<FreshServer> {
  const cleanups: (() => Promise<void>)[] = [];
  t.after(async () => {
    for (const c of cleanups.reverse()) await c().catch((e) => t.diagnostic(`cleanup failed: ${(e as Error).message}`));
  });
  let serverOptions: StartServerOptions = { port: 0, httpPort: 0, logLevel: 'silent', ...options.server };
  let admin: pg.Client | undefined;
  let database: string | undefined;
  if (backend.databaseUrl) {
    database = `hdb_fresh_${process.pid}_${randomBytes(4).toString('hex')}`;
    const maintenance = new pg.Client({ connectionString: backend.databaseUrl, application_name: 'heliosdb-fresh-admin' });
    await maintenance.connect();
    await maintenance.query(`CREATE DATABASE ${database} TEMPLATE template0`);
    await maintenance.end();
    const dbName = database;
    cleanups.push(async () => {
      const m = new pg.Client({ connectionString: backend.databaseUrl, application_name: 'heliosdb-fresh-admin' });
      await m.connect();
      try {
        await m.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
        await options.afterDrop?.(m);
      } finally {
        await m.end();
      }
    });
    const url = new URL(backend.databaseUrl);
    url.pathname = `/${database}`;
    admin = new pg.Client({ connectionString: url.toString(), application_name: 'heliosdb-fresh-admin' });
    await admin.connect();
    const a = admin;
    cleanups.push(() => a.end());
    if (options.withTables) await admin.query(premadeSql);
    serverOptions.databaseUrl = url.toString();
    const extra = await options.beforeStart?.(admin, url.toString());
    if (extra) serverOptions = { ...serverOptions, ...extra };
  } else if (options.withTables || options.previousServer) {
    const dir = options.withTables ? await pgliteDataDirWithTables() : join(scratchDir(), `data-${randomBytes(4).toString('hex')}`);
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    serverOptions.dataDir = dir;
  }
  if (options.previousServer) {
    const previous = await startServer(serverOptions);
    try {
      const c = createClient({ url: previous.grpcUrl, minConnections: 1 });
      try {
        await options.previousServer(c);
      } finally {
        await c.close();
      }
    } finally {
      await previous.close();
    }
  }
  const t0 = performance.now();
  const server = await startServer(serverOptions);
  const startMs = performance.now() - t0;
  cleanups.push(() => server.close());

  const clients: HeliosDBClient[] = [];
  cleanups.push(async () => {
    await Promise.all(clients.map((c) => c.close()));
  });
  const client = (transport: FreshTransport, config: ConnectionConfig = {}): FreshClient => {
    const calls: SentCall[] = [];
    const url = transport === 'grpc' ? server.grpcUrl : server.httpUrl;
    if (!url) throw new Error('the HTTP listener is off');
    const c = createClient({ url, ...config, interceptors: [recorder(calls), ...(config.interceptors ?? [])] });
    clients.push(c);
    return { client: c, calls };
  };
  let checker: HeliosDBClient | undefined;
  let checkerConfig: ConnectionConfig = {};
  const verify = async (sql: string, params?: unknown[]): Promise<Record<string, unknown>[]> => {
    if (admin) return (await admin.query(sql, params)).rows;
    checker ??= client('grpc', { minConnections: 1, applicationName: 'fresh-verify', ...checkerConfig }).client;
    return (await checker.query(sql, params)).rows;
  };
  return {
    server,
    startMs,
    admin,
    database,
    client,
    verify,
    onCleanup(fn) {
      cleanups.push(fn);
    },
    verifyAs(config) {
      checkerConfig = config;
    },
    async count(table) {
      const [row] = await verify(`SELECT count(*)::int AS n FROM ${table}`);
      return Number(row?.n);
    },
  };
}

/** Longest a feature's first use may take on a fresh server (connecting included), ms. */
export const featureLimitMs = 5000;
/**
 * Per test: the server's start, the feature, the checks and the cleanup. Generous, because an
 * embedded engine takes 2 s to start on a quiet machine and over 20 s on a loaded one; a hang of
 * the feature itself fails at {@link featureLimitMs}.
 */
export const freshTestOptions = { timeout: 120_000 };

/**
 * Runs `fn` as `label` and reports its time; fails when it takes {@link featureLimitMs} or longer
 * (a hang fails at the limit instead of waiting for it to end).
 */
export async function within<T>(t: TestContext, label: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${label}: still running after ${featureLimitMs} ms on a fresh server (hung)`)),
      featureLimitMs,
    );
  });
  try {
    const out = await Promise.race([fn(), hang]);
    const ms = performance.now() - t0;
    t.diagnostic(`${label}: ${ms.toFixed(0)} ms`);
    if (ms >= featureLimitMs) throw new Error(`${label} took ${ms.toFixed(0)} ms (limit ${featureLimitMs} ms)`);
    return out;
  } finally {
    clearTimeout(timer);
  }
}

/** The RPC names of `calls`, in order. */
export const methodsOf = (calls: SentCall[]): string[] => calls.map((c) => c.method);

/** Records of idempotency key `key` in the server's database. */
export async function keyRecords(f: Pick<FreshServer, 'verify'>, key: string): Promise<number> {
  return Number((await f.verify('SELECT count(*)::int AS n FROM heliosdb.idempotency_keys WHERE key = $1', [key]))[0]?.n);
}

/** Whether `table` exists in the server's database. */
export async function tableExists(f: Pick<FreshServer, 'verify'>, table: string): Promise<boolean> {
  return (await f.verify(`SELECT to_regclass('${table}') IS NOT NULL AS e`))[0]?.e === true;
}
