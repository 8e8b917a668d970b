/**
 * Low-level clients for the connection-limit tests: silent TCP sockets, a raw HTTP/2 client that
 * writes frames itself (so it can ignore the server's SETTINGS, as a hostile client would), and
 * gRPC health Watch streams over Node's HTTP/2 client.
 * @packageDocumentation
 */
import http2 from 'node:http2';
import net from 'node:net';

/** Resolves once `cond()` holds; rejects after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A TCP connection that sends nothing, and what the server did to it. */
export interface SilentSocket {
  readonly socket: net.Socket;
  readonly openedAt: number;
  /** When the server closed it (undefined while open). */
  closedAt: number | undefined;
  bytesReceived: number;
}

/** Opens a silent TCP connection to 127.0.0.1:`port`; resolves once it is connected. */
export async function silentSocket(port: number): Promise<SilentSocket> {
  const socket = net.connect(port, '127.0.0.1');
  const s: SilentSocket = { socket, openedAt: 0, closedAt: undefined, bytesReceived: 0 };
  socket.on('data', (b) => (s.bytesReceived += b.length));
  socket.on('error', () => {});
  socket.on('close', () => (s.closedAt = Date.now()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  (s as { openedAt: number }).openedAt = Date.now();
  return s;
}

/** An HTTP/1.1 keep-alive exchange on a raw socket (Node's Agent closes sockets on its own). */
export interface H1Exchange {
  readonly socket: net.Socket;
  status: number;
  /** When the whole response had come. */
  endedAt: number;
  /** Resolves when the connection closes, with the time. */
  readonly closed: Promise<number>;
}

/** Sends one keep-alive JSON POST to `path` on a new connection; resolves after its response. */
export async function h1Post(port: number, path: string, body: unknown): Promise<H1Exchange> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now())));
  const payload = Buffer.from(JSON.stringify(body));
  socket.write(
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\n\r\n`,
  );
  socket.write(payload);
  let text = '';
  return new Promise((resolve, reject) => {
    socket.on('data', (d) => {
      text += d.toString('latin1');
      const head = text.indexOf('\r\n\r\n');
      if (head < 0) return;
      const length = Number(/content-length: *(\d+)/i.exec(text.slice(0, head))?.[1] ?? NaN);
      if (text.length >= head + 4 + length) resolve({ socket, status: Number(text.slice(9, 12)), endedAt: Date.now(), closed });
    });
    void closed.then(() => reject(new Error(`connection closed before the response: ${JSON.stringify(text)}`)));
  });
}

/** The 5-byte gRPC length prefix and `message`. */
export function grpcFrame(message: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** One HTTP/2 frame. */
function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

function hpackString(s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([b.length]), b]);
}

/** A HEADERS block (HPACK, static table and literals only) for a gRPC POST to `path`. */
function grpcHeaderBlock(path: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x83, 0x86]), // :method POST, :scheme http (static 3 and 6)
    Buffer.from([0x04]), // :path, literal without indexing, name from static 4
    hpackString(path),
    Buffer.from([0x01]), // :authority (static 1)
    hpackString('127.0.0.1'),
    Buffer.from([0x0f, 0x10]), // content-type (static 31)
    hpackString('application/grpc'),
    Buffer.from([0x00]), // a new name
    hpackString('te'),
    hpackString('trailers'),
  ]);
}

/** What a raw HTTP/2 client saw. */
export interface RawH2Outcome {
  /** The server's SETTINGS_MAX_CONCURRENT_STREAMS (undefined when it sent none). */
  maxConcurrentStreams: number | undefined;
  /** Streams the server answered with HEADERS. */
  answered: number[];
  /** Streams the server reset, with their error codes. */
  reset: Map<number, number>;
  /** The GOAWAY error code, if one came. */
  goawayCode: number | undefined;
  closed: boolean;
}

/**
 * Opens `streams` gRPC streams to `path` on one connection at once, ignoring the server's stream
 * limit (after acknowledging it), then waits `waitMs` and reports what the server did.
 */
export async function rawH2Flood(port: number, path: string, streams: number, waitMs: number): Promise<RawH2Outcome> {
  const out: RawH2Outcome = { maxConcurrentStreams: undefined, answered: [], reset: new Map(), goawayCode: undefined, closed: false };
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.on('close', () => (out.closed = true));
  let buf = Buffer.alloc(0);
  let settingsSeen: () => void = () => {};
  const settings = new Promise<void>((r) => (settingsSeen = r));
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const [type, flags] = [buf[3], buf[4]];
      const id = buf.readUInt32BE(5) & 0x7fffffff;
      const p = buf.subarray(9, 9 + len);
      if (type === 4 && (flags & 1) === 0) {
        for (let i = 0; i + 6 <= p.length; i += 6) if (p.readUInt16BE(i) === 3) out.maxConcurrentStreams = p.readUInt32BE(i + 2);
        socket.write(frame(4, 1, 0, Buffer.alloc(0))); // SETTINGS ack
        settingsSeen();
      } else if (type === 1) out.answered.push(id);
      else if (type === 3) out.reset.set(id, p.readUInt32BE(0));
      else if (type === 7) out.goawayCode = p.readUInt32BE(4);
      buf = buf.subarray(9 + len);
    }
  });
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))]));
  await settings;
  await new Promise((r) => setTimeout(r, 20)); // let the server see the ack first
  const block = grpcHeaderBlock(path);
  const body = grpcFrame();
  const frames: Buffer[] = [];
  for (let i = 0; i < streams; i++) {
    frames.push(frame(1, 0x4, 1 + 2 * i, block), frame(0, 0x1, 1 + 2 * i, body)); // END_HEADERS; END_STREAM
  }
  socket.write(Buffer.concat(frames));
  await new Promise((r) => setTimeout(r, waitMs));
  socket.destroy();
  return out;
}

/** A health Watch stream over Node's HTTP/2 client, and how the server answered it. */
export interface WatchStream {
  readonly stream: http2.ClientHttp2Stream;
  /** `serving` once a message came; else the grpc-status the server ended it with. */
  outcome: 'serving' | number | undefined;
}

/** Opens a grpc.health.v1.Health/Watch stream (service "") on `session`. */
export function watchStream(session: http2.ClientHttp2Session): WatchStream {
  const stream = session.request({
    ':method': 'POST',
    ':path': '/grpc.health.v1.Health/Watch',
    'content-type': 'application/grpc',
    te: 'trailers',
  });
  const w: WatchStream = { stream, outcome: undefined };
  const status = (h: http2.IncomingHttpHeaders) => {
    if (h['grpc-status'] !== undefined && w.outcome === undefined) w.outcome = Number(h['grpc-status']);
  };
  stream.on('response', status);
  stream.on('trailers', status);
  stream.on('data', () => {
    if (w.outcome === undefined) w.outcome = 'serving';
  });
  stream.on('error', () => {});
  stream.end(grpcFrame());
  return w;
}

/** An HTTP/2 cleartext session to 127.0.0.1:`port`, once the server's SETTINGS came. */
export async function h2Session(port: number): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', () => resolve());
    session.once('error', reject);
  });
  return session;
}
