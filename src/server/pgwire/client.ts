/**
 * One authenticated client of the PostgreSQL port, as the backend sessions see it: its socket,
 * start-up parameters, principal and backend key, and how to end it with a FATAL error.
 * @packageDocumentation
 */
import type net from 'node:net';
import type { Logger } from 'pino';
import type { Principal } from '../auth/principal.js';
import type { BackendKey } from './cancel.js';
import { type ErrorFields, errorResponse } from './messages.js';

/** See the file comment. */
export interface PgClient {
  /** A number for logs and statement names, unique in this server. */
  readonly id: number;
  readonly socket: net.Socket;
  /** The StartupMessage's parameters (without `_pq_.` options). */
  readonly params: [string, string][];
  readonly principal: Principal;
  /** The key this client's CancelRequests carry. */
  readonly key: BackendKey;
  /** Bytes the client sent after authentication that no one read yet. */
  readonly leftover: Buffer;
  readonly log: Logger;
}

/** The value of a start-up parameter, or undefined. */
export function paramOf(c: { params: [string, string][] }, name: string): string | undefined {
  return c.params.find(([k]) => k === name)?.[1];
}

/** Writes a FATAL error and ends the connection. */
export function endWithFatal(socket: net.Socket, e: Omit<ErrorFields, 'severity'>): void {
  if (socket.destroyed) return;
  socket.end(errorResponse({ ...e, severity: 'FATAL' }));
  // A client that never reads must not keep the socket open.
  setTimeout(() => socket.destroy(), 5000).unref();
}
