/**
 * The embedded PGlite engine in a worker thread, reached from the main thread as ordinary
 * node-postgres connections: a statement that runs for seconds blocks the worker, never the
 * server's event loop. PGlite is one session, so one connection exists at a time.
 * @packageDocumentation
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import pg from 'pg';
import type { Logger } from 'pino';
import type { FromWorker, PgErrorFields, ToWorker, WorkerInit } from './messages.js';
import { EngineSocket, type EngineLink } from './socket.js';
import { keepRowBytes } from '../pg/raw-rows.js';

/** Options of {@link startPgliteEngine}. */
export interface PgliteEngineOptions {
  /** PGlite data directory. Default: undefined, an in-memory database (empty after a restart). */
  dataDir?: string;
  /** Where the engine reports its worker's end. */
  log: Logger;
}

/** How the worker ended. */
export interface EngineExit {
  /** The worker's exit code. */
  code: number;
  /** The uncaught error that ended it, if any. */
  error?: Error;
  /** True when {@link PgliteEngine.close} or {@link PgliteEngine.restart} ended it. */
  expected: boolean;
}

/** The result of {@link PgliteEngine.copyFrom}. */
export interface CopyFromResult {
  /** Rows copied. */
  rowCount: number;
  /** Transaction status after the copy (`I` idle, `T` in a block, `E` failed block). */
  txStatus: string;
}

/**
 * The file this module was loaded from (a file: URL). Read from a stack frame rather than
 * `import.meta.url`, which the CommonJS build (esbuild, file by file) cannot express.
 */
function thisModuleUrl(): URL {
  const prepare = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  try {
    Error.prepareStackTrace = (_e, sites) => sites;
    Error.stackTraceLimit = 1;
    const sites = new Error().stack as unknown as NodeJS.CallSite[];
    const file = sites[0]?.getFileName();
    if (!file) throw new Error('cannot locate the embedded engine worker: no file name in the stack');
    const url = file.startsWith('file:') ? new URL(file) : pathToFileURL(file);
    url.search = '';
    url.hash = '';
    return url;
  } finally {
    Error.prepareStackTrace = prepare;
    Error.stackTraceLimit = limit;
  }
}

/**
 * The worker: worker.js next to engine.js in a build; under tsx (engine.ts), worker.ts through a
 * small bootstrap, because on Node 20 tsx does not register itself in worker threads (its
 * `--import tsx` is inherited but skipped there), so the bootstrap registers tsx's ESM hooks first.
 */
function newWorker(workerData: WorkerInit): Worker {
  const here = thisModuleUrl();
  const ext = /\.[cm]?[jt]s$/.exec(here.pathname)?.[0] ?? '.js';
  const file = new URL(`./worker${ext}`, here);
  if (!ext.endsWith('ts')) return new Worker(file, { workerData });
  let tsxApi: string;
  try {
    // The ESM entry of tsx/esm/api (its CommonJS one cannot register from a worker's eval code).
    const pkgPath = createRequire(here).resolve('tsx/package.json');
    const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
    tsxApi = pathToFileURL(join(dirname(pkgPath), pkg.exports['./esm/api']!.import.default)).href;
  } catch (err) {
    throw new Error(`running the embedded engine from TypeScript sources needs tsx: ${(err as Error).message}`);
  }
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(file.href)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}

/** A pg.DatabaseError carrying the fields PGlite reported. */
function databaseError(f: PgErrorFields): pg.DatabaseError {
  const err = new pg.DatabaseError(f.message, 0, 'error');
  Object.assign(err, { ...f, message: f.message });
  return err;
}

function engineGone(reason: string): Error {
  return Object.assign(new Error(`the embedded engine is not running: ${reason}; connection closed`), { code: 'ECONNRESET' });
}

/** Events of {@link PgliteEngine}. */
interface EngineEvents {
  exit: [EngineExit];
  /** A reset found these channels of its `listen` dropped and listened on them again. */
  relistened: [string[]];
}

/** See the file comment; made by {@link startPgliteEngine}. */
export class PgliteEngine extends EventEmitter<EngineEvents> {
  private worker: Worker | undefined;
  private running = false;
  private stopping = false;
  private lastExit: EngineExit | undefined;
  private conn = 0;
  private current: { conn: number; socket: EngineSocket } | undefined;
  private copyId = 0;
  private readonly copies = new Map<number, { resolve: (r: CopyFromResult) => void; reject: (e: Error) => void }>();
  private engineVersion = '';
  private readonly link: EngineLink = {
    open: (socket) => {
      if (!this.running) return engineGone(this.exitReason());
      if (this.current) {
        return new Error('the embedded engine is one session and a connection to it is already open: close that one first');
      }
      this.current = { conn: ++this.conn, socket };
      return this.conn;
    },
    startup: (conn, settings) => this.post({ t: 'open', conn, settings }),
    send: (conn, data) => this.post({ t: 'proto', conn, data }),
    close: (conn) => {
      if (this.current?.conn !== conn) return;
      this.current = undefined;
      this.post({ t: 'close', conn });
    },
  };

  /** @internal Use {@link startPgliteEngine}. */
  constructor(private readonly opts: PgliteEngineOptions) {
    super();
  }

  /** The data directory; undefined in memory. */
  get dataDir(): string | undefined {
    return this.opts.dataDir;
  }

  /** The engine's `SELECT version()`. */
  get version(): string {
    return this.engineVersion;
  }

  /** True while the worker runs. */
  get isRunning(): boolean {
    return this.running;
  }

  /** True while a connection holds the engine's one session. */
  get isConnected(): boolean {
    return this.current !== undefined;
  }

  /** @internal Starts the worker; resolves once PGlite is ready. */
  async start(): Promise<void> {
    const init: WorkerInit = { dataDir: this.opts.dataDir };
    const worker = newWorker(init);
    this.worker = worker;
    let error: Error | undefined;
    await new Promise<void>((resolve, reject) => {
      let ready = false;
      worker.on('message', (msg: FromWorker) => {
        if (msg.t === 'ready') {
          ready = true;
          this.running = true;
          this.engineVersion = msg.version;
          resolve();
        } else if (msg.t === 'startFailed') {
          reject(new Error(`the embedded engine failed to start: ${msg.error.message}`));
          void worker.terminate();
        } else {
          this.dispatch(msg);
        }
      });
      worker.on('error', (err) => {
        error = err;
      });
      worker.on('exit', (code) => {
        if (this.worker === worker) this.exited(code, error);
        if (!ready) reject(error ?? new Error(`the embedded engine worker exited with code ${code} while starting`));
      });
    });
  }

  /** Config for a pg.Client or pg.Pool whose connections go to this engine. */
  clientConfig(config: pg.ClientConfig = {}): pg.ClientConfig {
    return {
      user: 'postgres',
      database: 'postgres',
      host: 'pglite',
      port: 5432,
      ...config,
      stream: () => new EngineSocket(this.link),
    } as pg.ClientConfig;
  }

  /**
   * Opens the engine's one connection: a connected pg.Client. Fails while another one is open;
   * `client.end()` gives the session back, reset (rolled back, `DISCARD ALL`) for the next one.
   */
  async connect(config: pg.ClientConfig = {}): Promise<pg.Client> {
    const client = new pg.Client(this.clientConfig(config));
    keepRowBytes(client);
    await client.connect();
    return client;
  }

  /**
   * Runs `sql`, a `COPY ... FROM '/dev/blob'`, with `data` as its input (PGlite's own way: COPY FROM
   * STDIN through the protocol would end the engine). Runs in order with the open connection's
   * protocol traffic, between two of its messages, as part of its session (inside its
   * transaction block, if one is open); never inside an extended-protocol exchange. Rejects with
   * a pg.DatabaseError on a database error.
   */
  copyFrom(sql: string, data: Uint8Array): Promise<CopyFromResult> {
    return new Promise((resolve, reject) => {
      const run = (): void => {
        if (!this.running) {
          reject(engineGone(this.exitReason()));
          return;
        }
        const id = ++this.copyId;
        this.copies.set(id, { resolve, reject });
        this.post({ t: 'copyFrom', id, sql, data });
      };
      if (this.current) this.current.socket.betweenMessages({ run, abort: reject });
      else run();
    });
  }

  /**
   * Clears the open connection's session with `sql` (a script without results) in the worker,
   * before anything posted later, without waiting for it: call it between two of the
   * connection's exchanges (after its ReadyForQuery). Of `listen` (channels the server listens on
   * in the session), those the session no longer listens on are listened on again and reported
   * with the `relistened` event.
   */
  resetSession(sql: string, listen?: readonly string[]): void {
    const channels = listen && listen.length > 0 ? [...listen] : undefined;
    const run = (): void => this.post({ t: 'reset', sql, listen: channels });
    if (this.current) this.current.socket.betweenMessages({ run, abort: () => {} });
    else run();
  }

  /**
   * Stops the worker if it runs and starts a fresh one on the same data directory (in memory:
   * an empty database). The open connection, if any, fails.
   */
  async restart(): Promise<void> {
    await this.stop();
    this.lastExit = undefined;
    await this.start();
  }

  /** Ends the open connection and stops the worker (PGlite closes its data directory cleanly). */
  async close(): Promise<void> {
    await this.stop();
  }

  /** @internal Test hook: ends the worker abruptly (`exit`: process.exit(1); `copy-from-stdin`: PGlite's own exit). */
  crashForTest(how: 'exit' | 'copy-from-stdin' = 'exit'): void {
    this.post({ t: 'crash', how });
  }

  private async stop(): Promise<void> {
    const worker = this.worker;
    if (!worker || !this.running) return;
    this.stopping = true;
    try {
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      this.current?.socket.fail(engineGone('the engine is shutting down'));
      this.post({ t: 'shutdown' });
      const timer = setTimeout(() => void worker.terminate(), 10_000);
      await exited;
      clearTimeout(timer);
    } finally {
      this.stopping = false;
    }
  }

  private post(msg: ToWorker): void {
    if (this.running) this.worker?.postMessage(msg);
  }

  private dispatch(msg: FromWorker): void {
    switch (msg.t) {
      case 'data':
        if (this.current?.conn === msg.conn) this.current.socket.receive(msg.data);
        break;
      case 'opened':
        if (this.current?.conn === msg.conn) this.current.socket.opened(msg.params, msg.error);
        break;
      case 'copied': {
        const waiter = this.copies.get(msg.id);
        this.copies.delete(msg.id);
        if (!waiter) break;
        if (msg.error) waiter.reject(databaseError(msg.error));
        else waiter.resolve({ rowCount: msg.rowCount, txStatus: msg.txStatus });
        break;
      }
      case 'relistened':
        this.emit('relistened', msg.channels);
        break;
      default:
        break;
    }
  }

  private exitReason(): string {
    const e = this.lastExit;
    if (!e) return 'not started';
    return e.expected ? 'it was closed' : `its worker exited with code ${e.code}${e.error ? ` (${e.error.message})` : ''}`;
  }

  private exited(code: number, error: Error | undefined): void {
    const wasRunning = this.running;
    this.running = false;
    this.worker = undefined;
    const exit: EngineExit = { code, expected: this.stopping, ...(error ? { error } : {}) };
    this.lastExit = exit;
    const gone = engineGone(this.exitReason());
    const current = this.current;
    this.current = undefined;
    current?.socket.fail(gone);
    for (const w of this.copies.values()) w.reject(gone);
    this.copies.clear();
    if (!wasRunning) return;
    if (!exit.expected) {
      this.opts.log.error(
        { code, err: error, dataDir: this.opts.dataDir ?? 'memory://' },
        this.opts.dataDir ? 'the embedded engine worker exited' : 'the embedded engine worker exited: its in-memory database is gone',
      );
    }
    this.emit('exit', exit);
  }
}

/** Starts the embedded engine's worker; resolves once PGlite is ready. */
export async function startPgliteEngine(opts: PgliteEngineOptions): Promise<PgliteEngine> {
  const engine = new PgliteEngine(opts);
  await engine.start();
  return engine;
}
