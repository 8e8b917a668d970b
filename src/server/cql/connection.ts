/**
 * One CQL client connection: frames in (./frame.ts), requests answered by stream id as they
 * finish (a driver multiplexes many), the start-up and authentication handshake, and each
 * statement run on a backend connection of the principal's login through the same call scope
 * as the other listeners (../call/scope.ts).
 * @packageDocumentation
 */
import { setMaxListeners } from 'node:events';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { PeerInfo, Principal } from '../auth/principal.js';
import { anonymous, ownerKeyOf } from '../auth/principal.js';
import type { BackendConnection } from '../backend.js';
import type { CallContext } from '../call-context.js';
import { type ScopeDeps, withConnection } from '../call/scope.js';
import { watchCredential } from '../service/credential-watch.js';
import type { Parsed, Statement, Term } from './ast.js';
import { type CqlAuth, passwordAuthenticator } from './auth.js';
import { type Bound, bindSpecs, type ColumnSpec } from './bind.js';
import type { SchemaChange } from './ddl.js';
import { CqlError, ErrorCode, invalid, toCqlError } from './errors.js';
import { type BatchItem, type CqlResult, type ExecOptions, resolveTarget, runBatch, runStatement, type Target } from './execute.js';
import {
  BodyReader,
  BodyWriter,
  encodeFrame,
  type Frame,
  FrameFlag,
  headerBytes,
  Opcode,
  peekHeader,
  ProtocolViolation,
  protocolVersion,
  type WireValue,
} from './frame.js';
import { encodePrepared, encodeResult, encodeSchemaEvent, type QueryParams, readBatch, readQueryParams } from './messages.js';
import { parseCql } from './parser.js';
import { selectColumns, tableColumns } from './planner.js';
import { type PreparedCache, type PreparedStatement, preparedId } from './prepared.js';
import { decodeValue } from './values.js';

/** What a connection needs from its listener. */
export interface ConnectionDeps {
  readonly scope: ScopeDeps;
  /** Undefined: no authentication (the server runs with --auth none). */
  readonly auth: CqlAuth | undefined;
  readonly prepared: PreparedCache;
  /** The largest frame body accepted once the connection is authenticated, bytes. */
  readonly maxFrameBytes: number;
  /** Most requests in progress on the connection; further ones wait in the socket (`--max-concurrent-streams`). */
  readonly maxInFlight: number;
  /** A connection with no request in progress this long is closed, ms (`--idle-connection-timeout-ms`). */
  readonly idleTimeoutMs: number;
  /** How long a new connection has to finish STARTUP and authentication, ms. */
  readonly handshakeTimeoutMs: number;
  /** How often an idle authenticated connection's credential is asked again, ms (`--auth-cache-ms`). */
  readonly authCacheMs: number;
  readonly dataCenter: string;
  readonly releaseVersion: string;
  readonly log: Logger;
  /** Called after a schema statement changed something (events, prepared statements). */
  onSchemaChange(c: SchemaChange): void;
}

/** The largest frame body accepted before the connection is authenticated, bytes (STARTUP, OPTIONS, AUTH_RESPONSE are small). */
export const maxUnauthenticatedFrameBytes = 64 * 1024;
/** How long a connection being ended may take to send its last answer, ms. */
const closeGraceMs = 5000;
/** Answers queued on a socket beyond which the connection reads no further requests until they are sent, bytes. */
export const maxUnsentBytes = 4 * 1024 * 1024;
const opNames: Record<number, string> = {
  7: 'QUERY',
  9: 'PREPARE',
  10: 'EXECUTE',
  11: 'REGISTER',
  13: 'BATCH',
  15: 'AUTH_RESPONSE',
};

/** See the file comment. */
export class CqlConnection {
  /** Received bytes not yet taken as frames (concatenated only once a whole frame is there). */
  private chunks: Buffer[] = [];
  private buffered = 0;
  private closing = false;
  private reading = true;
  private outputFull = false;
  /** While {@link outputFull}: resolves once the socket drains or closes. */
  private room: Promise<void> | undefined;
  private openRoom: (() => void) | undefined;
  private stall: NodeJS.Timeout | undefined;
  private started = false;
  private authenticating = false;
  private principal: Principal | undefined;
  private owner = '';
  private timer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private keyspace: string | undefined;
  private inFlight = 0;
  private readonly abort = new AbortController();
  /** Registered for SCHEMA_CHANGE events. */
  schemaEvents = false;

  constructor(
    private readonly socket: Socket,
    private readonly peer: PeerInfo,
    private readonly deps: ConnectionDeps,
  ) {
    // Each request in progress listens on the connection's signal (up to maxInFlight at once).
    setMaxListeners(deps.maxInFlight + 10, this.abort.signal);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () => {
      this.closing = true;
      this.abort.abort();
      this.drained();
      clearTimeout(this.timer);
      this.unwatch?.();
    });
    socket.on('error', () => {});
    socket.on('drain', () => this.drained());
    this.arm(Math.max(1, Math.min(deps.handshakeTimeoutMs, deps.idleTimeoutMs)));
  }

  /** Closes the connection after `ms` unless re-armed or cleared. */
  private arm(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.socket.destroy(), ms);
    this.timer.unref();
  }

  /** Authenticated (or none needed): the handshake deadline ends, the idle timeout and the credential watch begin. */
  private authenticated(p: Principal): void {
    this.principal = p;
    this.owner = ownerKeyOf(p);
    this.authenticating = false;
    clearTimeout(this.timer); // the request in progress arms the idle timeout when it ends
    this.unwatch = watchCredential(p, this.deps.authCacheMs, () => this.revoked(-1));
  }

  /** The credential no longer holds: an Unauthorized error, then the connection ends. */
  private revoked(stream: number): void {
    if (this.closing) return;
    // Found by the watch of an idle connection (stream -1): no request to answer, the connection just ends.
    if (stream >= 0)
      this.sendError(
        stream,
        new CqlError(
          ErrorCode.unauthorized,
          'the credential of this connection is no longer valid (API key revoked, password changed, session ended or user deleted): connect again with a valid one',
        ),
      );
    this.closing = true;
    this.socket.end();
    this.socket.pause();
    this.arm(closeGraceMs); // a peer that does not take the last answer and close is cut
    this.chunks = [];
    this.buffered = 0;
  }

  /** Whether STARTUP and authentication are done. */
  get isAuthenticated(): boolean {
    return this.principal !== undefined;
  }

  /** Closes the connection. */
  close(): void {
    this.socket.destroy();
  }

  /** Sends a SCHEMA_CHANGE event (stream -1). */
  sendEvent(c: SchemaChange): void {
    if (this.schemaEvents && !this.closing) this.write(encodeFrame(-1, Opcode.event, encodeSchemaEvent(c)));
  }

  private send(stream: number, opcode: number, body: Buffer): void {
    this.write(encodeFrame(stream, opcode, body));
  }

  private sendError(stream: number, e: CqlError, version = protocolVersion): void {
    this.write(encodeFrame(stream, Opcode.error, e.encode(), 0, version));
  }

  /** Queues `b`; over {@link maxUnsentBytes} unsent, no further request is read until the socket drains. */
  private write(b: Buffer): void {
    if (this.socket.destroyed) return;
    this.socket.write(b);
    if (this.socket.writableLength > maxUnsentBytes && !this.outputFull) {
      this.outputFull = true;
      this.room = new Promise<void>((resolve) => {
        this.openRoom = resolve;
      });
      // A client that reads nothing for the idle timeout loses the connection.
      this.stall = setTimeout(() => this.socket.destroy(), this.deps.idleTimeoutMs);
      this.stall.unref();
      this.pump();
    }
  }

  /** The unsent answers went out (or the socket closed): requests may be read and run again. */
  private drained(): void {
    if (!this.outputFull) return;
    this.outputFull = false;
    clearTimeout(this.stall);
    this.openRoom?.();
    this.room = this.openRoom = undefined;
    this.pump();
  }

  /** A protocol error, then the connection ends (the byte stream cannot be trusted any more). */
  private fatal(stream: number, message: string): void {
    this.sendError(stream, new CqlError(ErrorCode.protocol, message));
    this.closing = true;
    this.socket.end();
    this.socket.pause();
    this.arm(closeGraceMs); // a peer that does not take the last answer and close is cut
    this.chunks = [];
    this.buffered = 0;
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.pump();
  }

  /** The first `n` received bytes as one buffer (`n` at most {@link buffered}). */
  private head(n: number): Buffer {
    if (this.chunks[0].length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0];
  }

  /** Takes the first `n` received bytes. */
  private take(n: number): Buffer {
    const all = this.head(n);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks.shift();
    if (rest.length) this.chunks.unshift(rest);
    this.buffered -= n;
    return out;
  }

  /**
   * Starts the requests that have arrived whole, while fewer than `maxInFlight` are in progress
   * and the answers not yet sent stay under {@link maxUnsentBytes}; otherwise stops reading the
   * socket (the client's further requests wait in its own buffers) until that changes.
   */
  private pump(): void {
    for (;;) {
      if (this.closing) return;
      const go = !this.outputFull && this.inFlight < this.deps.maxInFlight;
      if (go !== this.reading) {
        this.reading = go;
        if (go) this.socket.resume();
        else this.socket.pause();
      }
      if (!go || this.buffered < headerBytes) return;
      const h = peekHeader(this.head(headerBytes));
      if (!h) return;
      const limit = this.principal ? this.deps.maxFrameBytes : Math.min(this.deps.maxFrameBytes, maxUnauthenticatedFrameBytes);
      if (h.version !== protocolVersion) {
        // Drivers start at their newest version and step down when told which one this is.
        const message = `Invalid or unsupported protocol version (${h.version}); supported versions are (4/v4)`;
        if (this.started || h.length < 0 || h.length > limit) {
          this.fatal(h.stream, message);
          return;
        }
        if (this.buffered < headerBytes + h.length) return;
        this.take(headerBytes + h.length);
        this.sendError(h.stream, new CqlError(ErrorCode.protocol, message));
        continue;
      }
      if (h.length < 0 || h.length > limit) {
        this.fatal(
          h.stream,
          this.principal
            ? `frame of ${h.length} bytes exceeds the limit of ${limit}`
            : `frame of ${h.length} bytes exceeds the limit of ${limit} before the connection is authenticated`,
        );
        return;
      }
      if (this.buffered < headerBytes + h.length) return;
      const body = Buffer.from(this.take(headerBytes + h.length).subarray(headerBytes));
      if (h.flags & FrameFlag.compression) {
        this.fatal(h.stream, 'compression was not negotiated (this server offers none)');
        return;
      }
      if (h.stream < 0) {
        this.fatal(h.stream, 'negative stream ids are reserved for events');
        return;
      }
      const frame: Frame = { version: h.version, flags: h.flags, stream: h.stream, opcode: h.opcode, body };
      this.inFlight++;
      if (this.principal) clearTimeout(this.timer);
      this.handle(frame)
        .catch((e) => {
          if (e instanceof ProtocolViolation) {
            this.fatal(frame.stream, e.message);
            return;
          }
          const ce = toCqlError(e);
          if (ce.code === ErrorCode.server) this.deps.log.warn({ err: e }, 'CQL request failed');
          this.sendError(frame.stream, ce);
        })
        .finally(() => {
          this.inFlight--;
          if (this.inFlight === 0 && this.principal && !this.closing) this.arm(this.deps.idleTimeoutMs);
          this.pump();
        });
    }
  }

  private async handle(f: Frame): Promise<void> {
    const r = new BodyReader(f.body);
    if (f.flags & FrameFlag.customPayload) {
      const n = r.short();
      for (let i = 0; i < n; i++) {
        r.string();
        r.bytes();
      }
    }
    if (f.opcode === Opcode.options) {
      const supported = new Map([
        ['CQL_VERSION', ['3.4.4']],
        ['COMPRESSION', []],
        ['PROTOCOL_VERSIONS', ['4/v4']],
      ]);
      return this.send(f.stream, Opcode.supported, new BodyWriter().stringMultimap(supported).build());
    }
    if (f.opcode === Opcode.startup) {
      if (this.started) throw new ProtocolViolation('STARTUP was already sent on this connection');
      const opts = r.stringMap();
      const compression = opts.get('COMPRESSION');
      if (compression) throw new CqlError(ErrorCode.protocol, `Unknown compression algorithm: ${compression} (this server offers none)`);
      this.started = true;
      if (this.deps.auth) return this.send(f.stream, Opcode.authenticate, new BodyWriter().string(passwordAuthenticator).build());
      this.authenticated(anonymous);
      return this.send(f.stream, Opcode.ready, Buffer.alloc(0));
    }
    if (!this.started) throw new ProtocolViolation(`Unexpected message ${opNames[f.opcode] ?? f.opcode}, expecting STARTUP or OPTIONS`);
    if (f.opcode === Opcode.authResponse) {
      if (!this.deps.auth || this.principal || this.authenticating)
        throw new ProtocolViolation(
          this.principal
            ? 'Unexpected AUTH_RESPONSE: the connection is already authenticated'
            : 'Unexpected AUTH_RESPONSE: one is being checked',
        );
      this.authenticating = true;
      let p: Principal;
      try {
        p = await this.deps.auth.verify(r.bytes(), this.peer, this.abort.signal);
      } finally {
        this.authenticating = false;
      }
      this.authenticated(p);
      return this.send(f.stream, Opcode.authSuccess, new BodyWriter().bytes(null).build());
    }
    if (!(f.opcode in opNames)) throw new ProtocolViolation(`unknown or unexpected opcode 0x${f.opcode.toString(16)}`);
    if (!this.principal) throw new CqlError(ErrorCode.unauthorized, 'the connection is not authenticated yet: answer AUTHENTICATE first');
    if (this.principal.stillValid && !(await this.principal.stillValid())) return this.revoked(f.stream);
    switch (f.opcode) {
      case Opcode.register:
        if (r.stringList().includes('SCHEMA_CHANGE')) this.schemaEvents = true;
        return this.send(f.stream, Opcode.ready, Buffer.alloc(0));
      case Opcode.query: {
        const query = r.longString();
        const params = readQueryParams(r);
        const parsed = parseCql(query);
        const result = await this.run(async (conn) => {
          const target = await resolveTarget(conn, parsed.statement, this.keyspace);
          const binds = bindSpecs(parsed.statement, columnsOf(target), parsed.markers.length);
          return runStatement(conn, parsed.statement, bindValues(parsed, binds, params.values, params.names), this.options(params), target);
        });
        return this.answer(f.stream, result, false);
      }
      case Opcode.prepare: {
        const query = r.longString();
        const parsed = parseCql(query);
        const keyspace = this.keyspace;
        const p = await this.run(async (conn) => {
          const target = await resolveTarget(conn, parsed.statement, keyspace);
          const binds = bindSpecs(parsed.statement, columnsOf(target), parsed.markers.length);
          return { target, binds };
        });
        const prepared: PreparedStatement = {
          id: preparedId(keyspace, query),
          query,
          keyspace,
          parsed,
          target: p.target,
          binds: p.binds,
          pkIndexes: pkIndexes(parsed.statement, p.target),
          columns: resultColumns(parsed.statement, p.target),
        };
        this.deps.prepared.add(this.owner, prepared);
        return this.send(f.stream, Opcode.result, encodePrepared(prepared.id, prepared.binds, prepared.pkIndexes, prepared.columns));
      }
      case Opcode.execute: {
        const id = r.shortBytes();
        const params = readQueryParams(r);
        const prepared = this.deps.prepared.get(this.owner, id);
        if (!prepared)
          throw new CqlError(ErrorCode.unprepared, `Prepared query with ID ${id.toString('hex')} not found`, { id: Buffer.from(id) });
        const bound = bindValues(prepared.parsed, prepared.binds, params.values, params.names);
        const result = await this.run((conn) =>
          runStatement(
            conn,
            prepared.parsed.statement,
            bound,
            { ...this.options(params), keyspace: prepared.keyspace ?? this.keyspace },
            prepared.target,
          ),
        );
        const sameColumns = result.kind === 'rows' && result.columns.length === prepared.columns.length && prepared.columns.length > 0;
        return this.answer(f.stream, result, params.skipMetadata && sameColumns);
      }
      case Opcode.batch: {
        const b = readBatch(r);
        const type = b.type === 0 ? 'logged' : b.type === 1 ? 'unlogged' : b.type === 2 ? 'counter' : undefined;
        if (!type) throw new ProtocolViolation(`invalid BATCH type ${b.type}`);
        const opts = this.options({ pageSize: -1, pagingState: null });
        const result = await this.run(async (conn) => {
          const items: BatchItem[] = [];
          // Each table is looked up once per batch, however many of its statements it holds.
          const targets = new Map<string, Promise<Target>>();
          for (const e of b.entries) {
            if (e.id) {
              const prepared = this.deps.prepared.get(this.owner, e.id);
              if (!prepared)
                throw new CqlError(ErrorCode.unprepared, `Prepared query with ID ${e.id.toString('hex')} not found`, {
                  id: Buffer.from(e.id),
                });
              const meta = prepared.target.kind === 'table' ? prepared.target.meta : undefined;
              items.push({
                statement: prepared.parsed.statement,
                bound: bindValues(prepared.parsed, prepared.binds, e.values, undefined),
                meta,
              });
            } else {
              const parsed = parseCql(e.query ?? '');
              const st = parsed.statement;
              const key =
                st.kind === 'insert' || st.kind === 'update' || st.kind === 'delete'
                  ? JSON.stringify([st.table.keyspace ?? this.keyspace ?? null, st.table.name])
                  : undefined;
              let pending = key === undefined ? undefined : targets.get(key);
              if (!pending) {
                pending = resolveTarget(conn, st, this.keyspace);
                if (key !== undefined) targets.set(key, pending);
              }
              const target = await pending;
              const binds = bindSpecs(parsed.statement, columnsOf(target), parsed.markers.length);
              items.push({
                statement: parsed.statement,
                bound: bindValues(parsed, binds, e.values, undefined),
                meta: target.kind === 'table' ? target.meta : undefined,
              });
            }
          }
          return runBatch(conn, type, items, opts);
        });
        return this.answer(f.stream, result, false);
      }
      default:
        throw new ProtocolViolation(`unknown or unexpected opcode 0x${f.opcode.toString(16)}`);
    }
  }

  private options(params: Pick<QueryParams, 'pageSize' | 'pagingState'>): ExecOptions {
    return {
      keyspace: this.keyspace,
      pageSize: params.pageSize,
      pagingState: params.pagingState,
      readOnly: this.principal?.readOnly ?? false,
      system: { localAddress: localAddressOf(this.socket), dataCenter: this.deps.dataCenter, releaseVersion: this.deps.releaseVersion },
    };
  }

  private answer(stream: number, result: CqlResult, skipMetadata: boolean): void {
    if (result.kind === 'setKeyspace') this.keyspace = result.keyspace;
    if (result.kind === 'schemaChange') this.deps.onSchemaChange(result.change);
    this.send(stream, Opcode.result, encodeResult(result, skipMetadata));
  }

  /** Runs `fn` on a backend connection of the principal's login (../call/scope.ts). */
  private async run<T>(fn: (conn: BackendConnection) => Promise<T>): Promise<T> {
    const ctx: CallContext = { signal: this.abort.signal, requestHeader: { get: () => null }, principal: this.principal, peer: this.peer };
    for (;;) {
      // Requests already read wait to run while the client leaves answers unread (checked again
      // once a backend connection is had: the answers of those before may have filled it meanwhile).
      while (this.room) await this.room;
      // A refusal of ours is an answer, not a broken connection: it leaves the scope as a value.
      const out = await withConnection(this.deps.scope, ctx, '', async (conn) => {
        if (this.room) return { wait: true as const };
        try {
          return { ok: await fn(conn) };
        } catch (e) {
          if (e instanceof CqlError) return { refused: e };
          throw e;
        }
      });
      if ('wait' in out) continue;
      if ('refused' in out) throw out.refused;
      return out.ok;
    }
  }
}

function localAddressOf(socket: Socket): string {
  const a = socket.localAddress ?? '127.0.0.1';
  return a.startsWith('::ffff:') ? a.slice(7) : a === '::1' ? '127.0.0.1' : a;
}

function columnsOf(target: Target) {
  if (target.kind === 'table') return tableColumns(target.meta);
  if (target.kind === 'system') {
    const [keyspace, name] = target.name.split('.');
    return { keyspace, name, typeOf: (c: string) => target.table.columns.find((x) => x.name === c)?.type };
  }
  return undefined;
}

/** Decodes the values of a request by the statement's marker types (by position, or by name). */
function bindValues(
  parsed: Parsed,
  binds: readonly ColumnSpec[],
  values: readonly WireValue[],
  names: readonly string[] | undefined,
): Bound[] {
  let ordered: WireValue[];
  if (names) {
    const byName = new Map(names.map((n, i) => [n, values[i]]));
    ordered = binds.map((b) => {
      if (!byName.has(b.name)) throw invalid(`Invalid query: no value given for bind marker ${b.name}`);
      return byName.get(b.name)!;
    });
  } else {
    if (values.length !== parsed.markers.length)
      throw invalid(`There were ${parsed.markers.length} markers(?) in CQL but ${values.length} bound variables`);
    ordered = [...values];
  }
  return ordered.map((v, i) => (v === 'unset' ? 'unset' : v === null ? null : decodeValue(binds[i].type, v)));
}

/** For each partition key column, the marker that gives its value (what drivers route by); empty when not all do. */
function pkIndexes(s: Statement, target: Target): number[] {
  if (target.kind !== 'table') return [];
  const markerOf = (term: Term | undefined) => (term?.kind === 'marker' ? term.index : undefined);
  const found = target.meta.partitionKey.map((k) => {
    if (s.kind === 'insert') return markerOf(s.values[s.columns.indexOf(k)]);
    if (s.kind === 'select' || s.kind === 'update' || s.kind === 'delete') {
      const r = s.where.find((x) => x.column === k && x.op === '=');
      return r && !Array.isArray(r.value) ? markerOf(r.value as Term) : undefined;
    }
    return undefined;
  });
  return found.every((x) => x !== undefined) ? (found as number[]) : [];
}

/** The columns a prepared statement's rows have (none for writes; `[applied]` comes with the rows). */
function resultColumns(s: Statement, target: Target): ColumnSpec[] {
  if (s.kind !== 'select') return [];
  if (target.kind === 'table') return selectColumns(target.meta, s);
  if (target.kind === 'system') {
    const [keyspace, table] = target.name.split('.');
    const cols =
      s.selectors === '*'
        ? target.table.columns
        : s.selectors.map(
            (x) =>
              target.table.columns.find((c) => x.kind === 'column' && c.name === x.name) ?? {
                name: 'count',
                type: { kind: 'bigint' as const },
              },
          );
    return cols.map((c) => ({ keyspace, table, name: c.name, type: c.type }));
  }
  return [];
}
