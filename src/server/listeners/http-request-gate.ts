/**
 * The HTTP listener's gate for requests still receiving their body (see ./incomplete-requests.ts):
 * it counts them before the Connect handler runs, refuses HTTP/2 streams over the cap with
 * RST_STREAM REFUSED_STREAM (HTTP/1.1: 503), and resets an HTTP/2 stream whose request sends
 * nothing for the stall timeout while the server waits for it.
 * @packageDocumentation
 */
import type http from 'node:http';
import http2 from 'node:http2';
import type { Logger } from 'pino';
import { IncompleteRequests } from './incomplete-requests.js';

type H1Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
type H2Handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

/** Options of {@link httpRequestGate}. */
export interface HttpRequestGateOptions {
  /** Requests receiving their body at once before connections that have one are refused more. */
  maxIncompleteRequests: number;
  /** An HTTP/2 request that sends nothing for this long while the server waits for it is reset, ms. */
  stallMs: number;
  log: Logger;
}

/** The gate of one HTTP listener: wraps its HTTP/1.1 and HTTP/2 request handlers. */
export interface HttpRequestGate {
  h1(next: H1Handler): H1Handler;
  h2(next: H2Handler): H2Handler;
  /** Requests receiving their body now. */
  readonly incomplete: number;
}

/** Builds the gate of one HTTP listener. */
export function httpRequestGate(opts: HttpRequestGateOptions): HttpRequestGate {
  const requests = new IncompleteRequests<object>(opts.maxIncompleteRequests, 'http', opts.log);
  /** The counted streams of each session, with the functions that stop counting them. */
  const counted = new WeakMap<http2.Http2Session, Map<http2.ServerHttp2Stream, () => void>>();

  /**
   * Stops counting the streams of `session` whose request has arrived whole (END_STREAM) though
   * the handler has not read all of it yet: a client that sends several whole requests at once
   * is not refused because the handlers of the first ones have not got to their end.
   */
  const sweep = (session: http2.Http2Session) => {
    for (const [stream, done] of counted.get(session) ?? []) if (stream.state.remoteClose) done();
  };

  return {
    get incomplete() {
      return requests.count;
    },

    h1: (next) => (req, res) => {
      const socket = req.socket;
      if (!requests.admit(socket)) {
        res.writeHead(503, { 'Content-Type': 'text/plain', Connection: 'close', 'Retry-After': '1' });
        res.end('too many requests in progress');
        return;
      }
      // Node's requestTimeout (the listener's) bounds how long the body may take.
      let counted = true;
      const release = () => {
        if (counted) requests.release(socket);
        counted = false;
      };
      req.once('end', release);
      req.once('close', release);
      next(req, res);
    },

    h2: (next) => (req, res) => {
      const stream = req.stream;
      const session = stream.session;
      if (stream.endAfterHeaders || !session) {
        next(req, res);
        return;
      }
      let admitted = requests.admit(session);
      if (!admitted) {
        sweep(session);
        admitted = requests.admit(session);
      }
      if (!admitted) {
        // A client sending several requests at once writes their HEADERS before their bodies:
        // the rest of what has arrived is read first, and a request found whole then is served
        // (not counted: it receives nothing more). Otherwise it is refused before the handler
        // runs, and the client may retry it (REFUSED_STREAM: nothing was processed).
        setImmediate(() => {
          if (stream.destroyed || stream.closed) return;
          if (stream.state.remoteClose) next(req, res);
          else stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        });
        return;
      }
      let streams = counted.get(session);
      if (!streams) counted.set(session, (streams = new Map()));
      const done = () => {
        if (!streams.delete(stream)) return;
        requests.release(session);
        stream.removeListener('timeout', onStall);
        stream.setTimeout(0);
      };
      // Node's stream timeout is restarted by every read from the network (whether the handler
      // has consumed the data or not) and every write: it fires after that long without either.
      const onStall = () => {
        if (stream.destroyed || stream.closed) return;
        if (stream.state.remoteClose) {
          done(); // the whole request arrived; the handler reads it at its own pace
          return;
        }
        const answered = stream.writableFinished;
        // Unread data, or reading paused by the handler: the client is waiting for the server.
        if (!answered && (stream.readableLength > 0 || req.readableLength > 0 || stream.isPaused())) {
          stream.setTimeout(opts.stallMs);
          return;
        }
        // An answered request whose client keeps sending nothing: NO_ERROR asks it to stop (RFC 9113 8.1).
        stream.close(answered ? http2.constants.NGHTTP2_NO_ERROR : http2.constants.NGHTTP2_CANCEL);
      };
      streams.set(stream, done);
      stream.setTimeout(opts.stallMs);
      stream.on('timeout', onStall);
      stream.once('end', done);
      stream.once('close', done);
      next(req, res);
    },
  };
}
