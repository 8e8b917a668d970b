/**
 * The stream a pg.Client talks to instead of a TCP socket: it plays the server side of the
 * start-up handshake itself and forwards the client's later messages, whole, to the embedded
 * engine's worker; the worker's raw output is pushed back for pg to parse. Messages the client
 * writes in one synchronous run (pg writes Parse, Bind, Describe, Execute and Sync one by one)
 * travel together, as one batch the engine runs in one call.
 * @packageDocumentation
 */
import { randomInt } from 'node:crypto';
import { Duplex } from 'node:stream';
import type { PgErrorFields } from './messages.js';
import {
  authenticationOk,
  backendKeyData,
  cancelRequestCode,
  continuesExchange,
  errorResponse,
  Framer,
  gssEncRequestCode,
  parameterStatus,
  parseOptionsParam,
  protocolVersion3,
  readyForQuery,
  sslRequestCode,
  startupParams,
} from './wire.js';

/** What a socket needs from the engine. */
export interface EngineLink {
  /** Claims the engine's one session; returns the connection number, or why it cannot. */
  open(socket: EngineSocket): number | Error;
  /** Posts the client's start-up settings for `conn`. */
  startup(conn: number, settings: [string, string][]): void;
  /** Posts whole frontend messages of `conn`. */
  send(conn: number, data: Uint8Array): void;
  /** Gives the session back (the client is gone). */
  close(conn: number): void;
}

/** Work that must run between two protocol messages, never inside an extended exchange. */
export interface BetweenMessages {
  run(): void;
  abort(err: Error): void;
}

/** Start-up keys that are no settings. */
const notSettings = new Set(['user', 'database', 'options', 'replication', 'fallback_application_name']);

/** See the file comment. */
export class EngineSocket extends Duplex {
  private conn: number | undefined;
  private state: 'new' | 'startup' | 'ready' | 'closed' = 'new';
  private readonly framer = new Framer();
  private batch: Buffer[] = [];
  private flushScheduled = false;
  private inExchange = false;
  private waiting: BetweenMessages[] = [];

  constructor(private readonly link: EngineLink) {
    super({ allowHalfOpen: false });
  }

  /** Like net.Socket#connect: claims the session, then emits `connect` (or `error`). */
  connect(_port?: unknown, _host?: unknown): this {
    if (this.state !== 'new') return this;
    const conn = this.link.open(this);
    if (conn instanceof Error) {
      this.state = 'closed';
      process.nextTick(() => this.destroy(conn));
      return this;
    }
    this.conn = conn;
    this.state = 'startup';
    process.nextTick(() => this.emit('connect'));
    return this;
  }

  // net.Socket methods pg calls; nothing to do without a network.
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  /**
   * Runs `work` now when the client is between messages, else right after the Sync that ends its
   * current extended-protocol exchange is forwarded; aborts it when the connection ends first.
   */
  betweenMessages(work: BetweenMessages): void {
    if (this.state === 'closed') {
      work.abort(connectionClosed());
      return;
    }
    this.flush();
    if (this.inExchange) this.waiting.push(work);
    else work.run();
  }

  /** Raw backend bytes from the engine. */
  receive(data: Uint8Array): void {
    if (this.state === 'closed') return;
    this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  /** The engine's answer to the start-up: the handshake, or a FATAL error and the end. */
  opened(params: [string, string][] | undefined, error: PgErrorFields | undefined): void {
    if (this.state === 'closed') return;
    if (error || !params) {
      this.fatal({
        severity: 'FATAL',
        code: error?.code ?? 'XX000',
        message: error?.message ?? 'start-up failed',
        detail: error?.detail,
        hint: error?.hint,
      });
      return;
    }
    const out = [
      authenticationOk(),
      ...params.map(([k, v]) => parameterStatus(k, v)),
      backendKeyData(this.conn!, randomInt(1, 2 ** 31 - 1)),
      readyForQuery('I'),
    ];
    this.push(Buffer.concat(out));
  }

  /** The engine went away: pg sees a connection error. */
  fail(err: Error): void {
    if (this.state === 'closed') return;
    this.destroy(err);
  }

  override _read(): void {
    // Data is pushed as the engine produces it; pg reads it as it comes.
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    try {
      this.framer.push(chunk);
      this.consume();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.release();
    this.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.release();
    cb(err);
  }

  private consume(): void {
    while (this.state === 'startup') {
      const msg = this.framer.nextUntyped();
      if (!msg) return;
      this.startupMessage(msg);
    }
    while (this.state === 'ready') {
      const msg = this.framer.nextTyped();
      if (!msg) return;
      const type = String.fromCharCode(msg[0]!);
      if (type === 'X') {
        // Terminate: hand the session back at once, so the next connection can open.
        this.flush();
        this.release();
        this.push(null);
        return;
      }
      // Copied: pg's writer may reuse its buffer once write() returns.
      this.batch.push(Buffer.from(msg));
      if (type === 'S') {
        this.inExchange = false;
        this.flush();
      } else {
        if (continuesExchange(type)) this.inExchange = true;
        this.scheduleFlush();
      }
    }
  }

  private startupMessage(msg: Buffer): void {
    const code = msg.readInt32BE(4);
    if (code === sslRequestCode || code === gssEncRequestCode) {
      this.push(Buffer.from('N'));
      return;
    }
    if (code === cancelRequestCode) {
      // Nothing can interrupt the engine; a cancel connection just ends.
      this.release();
      this.push(null);
      return;
    }
    if (code !== protocolVersion3) {
      this.fatal({
        severity: 'FATAL',
        code: '0A000',
        message: `unsupported frontend protocol ${code >> 16}.${code & 0xffff}: the embedded engine speaks 3.0`,
      });
      return;
    }
    const params = startupParams(msg);
    const settings: [string, string][] = [];
    let options: [string, string][];
    try {
      options = parseOptionsParam(params.find(([k]) => k === 'options')?.[1] ?? '');
    } catch (err) {
      this.fatal({ severity: 'FATAL', code: '42601', message: (err as Error).message });
      return;
    }
    settings.push(...options);
    for (const [k, v] of params) if (!notSettings.has(k) && !k.startsWith('_pq_.')) settings.push([k, v]);
    const fallback = params.find(([k]) => k === 'fallback_application_name');
    if (fallback && !params.some(([k]) => k === 'application_name')) settings.push(['application_name', fallback[1]]);
    this.state = 'ready';
    this.link.startup(this.conn!, settings);
  }

  private fatal(e: { severity: string; code: string; message: string; detail?: string; hint?: string }): void {
    this.push(errorResponse(e));
    this.release();
    this.push(null);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.batch.length > 0 && this.conn !== undefined && this.state !== 'closed') {
      const data = this.batch.length === 1 ? this.batch[0]! : Buffer.concat(this.batch);
      this.link.send(this.conn, data);
    }
    this.batch = [];
    if (!this.inExchange && this.waiting.length > 0) {
      const waiting = this.waiting;
      this.waiting = [];
      for (const w of waiting) w.run();
    }
  }

  private release(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.batch = [];
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w.abort(connectionClosed());
    if (this.conn !== undefined) this.link.close(this.conn);
  }
}

function connectionClosed(): Error {
  return Object.assign(new Error('the embedded engine connection closed'), { code: 'ECONNRESET' });
}
