/**
 * The queue of a client of the embedded engine's PostgreSQL port (./pglite-session.ts): the
 * messages it sent that the engine was not sent yet (it waits for PGlite's one session, or for the
 * answers to what it sent before). The queue is bounded: beyond {@link maxPendingBytes} or
 * {@link maxPendingMessages} the client's socket is not read until the queue drained to half of
 * that, so a client that sends without reading cannot fill the server's memory.
 * @packageDocumentation
 */
import type net from 'node:net';

/** Bytes of a client's queued messages beyond which its socket is not read until they drain. */
export const maxPendingBytes = 4 * 1024 * 1024;

/** Queued messages of a client beyond which its socket is not read until they drain. */
export const maxPendingMessages = 10_000;

/** See the file comment. */
export class PendingQueue {
  private items: Buffer[] = [];
  private bytes = 0;
  private paused = false;
  private closed = false;

  constructor(private readonly socket: net.Socket) {}

  get length(): number {
    return this.items.length;
  }

  /** The message at `i` (0: the next one), or undefined. */
  at(i: number): Buffer | undefined {
    return this.items[i];
  }

  /** The index of the first message that `pred` holds for, or -1. */
  findIndex(pred: (m: Buffer) => boolean): number {
    return this.items.findIndex(pred);
  }

  /** The first `n` messages, left in the queue. */
  first(n: number): Buffer[] {
    return this.items.slice(0, n);
  }

  /** Queues a copy of `msg`; stops reading the socket beyond the bound. */
  push(msg: Buffer): void {
    this.items.push(Buffer.from(msg));
    this.bytes += msg.length;
    if (!this.paused && !this.closed && (this.bytes > maxPendingBytes || this.items.length > maxPendingMessages)) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /** Takes the next message off the queue (there must be one). */
  shift(): Buffer {
    const msg = this.items.shift()!;
    this.bytes -= msg.length;
    this.resumeIfDrained();
    return msg;
  }

  /** Drops the first `n` messages. */
  drop(n: number): void {
    for (const m of this.items.splice(0, n)) this.bytes -= m.length;
    this.resumeIfDrained();
  }

  /** Drops everything; the socket is not read again (the client is gone). */
  close(): void {
    this.closed = true;
    this.items = [];
    this.bytes = 0;
  }

  private resumeIfDrained(): void {
    if (!this.paused || this.closed) return;
    if (this.bytes > maxPendingBytes / 2 || this.items.length > maxPendingMessages / 2) return;
    this.paused = false;
    this.socket.resume();
  }
}
