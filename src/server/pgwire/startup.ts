/**
 * The start of a connection to the PostgreSQL port, before authentication: SSLRequest (answered
 * 'S' and a TLS handshake with the server's certificates when TLS is configured, 'N' otherwise),
 * GSSENCRequest (always 'N'), CancelRequest (handed to ./cancel.ts), and the StartupMessage with
 * its parameters. A newer 3.x protocol or `_pq_.` options are answered with
 * NegotiateProtocolVersion (3.0), as PostgreSQL does. A connection may send one SSLRequest and
 * one GSSENCRequest; a second of either is a protocol violation (FATAL 08P01), as on PostgreSQL.
 * @packageDocumentation
 */
import type net from 'node:net';
import tls from 'node:tls';
import { commonNameOf, type ServerTls, tlsHandshakeTimeoutMs } from '../tls.js';
import { MessageFramer } from './framing.js';
import {
  cancelRequestCode,
  cstr,
  gssEncRequestCode,
  message,
  ProtocolViolation,
  protocolVersion3,
  sslRequestCode,
  startupParams,
} from './messages.js';

/** A connection whose StartupMessage arrived. */
export interface StartedConnection {
  kind: 'startup';
  /** The socket to talk on from now on (the TLS socket after an SSLRequest). */
  socket: net.Socket;
  /** The StartupMessage's parameters, in order. */
  params: [string, string][];
  encrypted: boolean;
  /** Common name of a client certificate the TLS layer verified against the client CA. */
  certificateCommonName?: string;
  /** Bytes the client sent after its StartupMessage (it should wait; kept to be safe). */
  leftover: Buffer;
}

/** A CancelRequest: the connection carries nothing else. */
export interface CancelConnection {
  kind: 'cancel';
  processId: number;
  secretKey: number;
}

/** How long a new connection has to finish its start-up, ms. */
export const startupTimeoutMs = 10_000;

/** NegotiateProtocolVersion: the newest minor version served (0) and the options not understood. */
function negotiateProtocolVersion(unknownOptions: string[]): Buffer {
  const head = Buffer.alloc(8);
  head.writeInt32BE(protocolVersion3, 0);
  head.writeInt32BE(unknownOptions.length, 4);
  return message('v', Buffer.concat([head, ...unknownOptions.map(cstr)]));
}

/** Reads the start of a connection; rejects (and the caller drops the socket) on a violation or timeout. */
export function negotiate(raw: net.Socket, serverTls: ServerTls | undefined): Promise<StartedConnection | CancelConnection> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket = raw;
    let encrypted = false;
    let framer = new MessageFramer(0);
    let done = false;
    let sslRequested = false;
    let gssRequested = false;
    const timer = setTimeout(() => finish(new Error('the client did not finish its start-up in time')), startupTimeoutMs);
    const finish = (result: StartedConnection | CancelConnection | Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onError = (e: Error): void => finish(e);
    const onClose = (): void => finish(new Error('the client closed the connection during start-up'));
    const onData = (chunk: Buffer): void => {
      try {
        framer.push(chunk);
        for (;;) {
          const msg = framer.nextUntyped();
          if (!msg) return;
          const code = msg.readInt32BE(4);
          if (code === sslRequestCode) {
            if (encrypted) throw new ProtocolViolation('SSLRequest on an encrypted connection');
            if (sslRequested) throw new ProtocolViolation('a second SSLRequest on one connection');
            sslRequested = true;
            if (framer.pending > 0) {
              // Bytes after an SSLRequest would be read as if they came over TLS (CVE-2021-23214).
              throw new ProtocolViolation('unencrypted data after SSLRequest');
            }
            if (!serverTls) {
              socket.write('N');
              continue;
            }
            upgrade();
            return;
          }
          if (code === gssEncRequestCode) {
            if (gssRequested) throw new ProtocolViolation('a second GSSENCRequest on one connection');
            gssRequested = true;
            socket.write('N');
            continue;
          }
          if (code === cancelRequestCode) {
            if (msg.length !== 16) throw new ProtocolViolation('malformed CancelRequest');
            finish({ kind: 'cancel', processId: msg.readInt32BE(8), secretKey: msg.readInt32BE(12) });
            return;
          }
          if (code >> 16 !== 3)
            throw new ProtocolViolation(`unsupported frontend protocol ${code >> 16}.${code & 0xffff}: the server speaks 3.0`);
          const params = startupParams(msg);
          const unknown = params.filter(([k]) => k.startsWith('_pq_.')).map(([k]) => k);
          if ((code & 0xffff) !== 0 || unknown.length) socket.write(negotiateProtocolVersion(unknown));
          const leftover = framer.drain();
          const tlsSocket = socket as tls.TLSSocket;
          finish({
            kind: 'startup',
            socket,
            params: params.filter(([k]) => !k.startsWith('_pq_.')),
            encrypted,
            certificateCommonName: encrypted && tlsSocket.authorized ? commonNameOf(tlsSocket.getPeerCertificate()) : undefined,
            leftover: Buffer.from(leftover),
          });
          return;
        }
      } catch (e) {
        finish(e instanceof Error ? e : new Error(String(e)));
      }
    };
    const upgrade = (): void => {
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      const t = serverTls!;
      socket.write('S');
      const secure = new tls.TLSSocket(socket, {
        isServer: true,
        secureContext: tls.createSecureContext({ cert: t.cert, key: t.key, ca: t.clientCa, minVersion: 'TLSv1.2' }),
        requestCert: t.clientCa !== undefined,
        rejectUnauthorized: t.clientCa !== undefined,
      });
      const handshake = setTimeout(() => secure.destroy(), tlsHandshakeTimeoutMs);
      secure.once('secure', () => clearTimeout(handshake));
      socket = secure;
      encrypted = true;
      framer = new MessageFramer(0);
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('close', onClose);
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}
