/**
 * Request/response over Node's IPC channel, usable from either end (a ChildProcess or `process`).
 * @packageDocumentation
 */
import type { IpcMessage } from './types.js';

/** The part of ChildProcess / process that IPC needs. */
export interface IpcEnd {
  send?(message: unknown, callback?: (error: Error | null) => void): boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

export type Handler = (args: unknown) => unknown;

/** See the file comment. */
export class Ipc {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listener: (m: unknown) => void;
  /** Events (one-way messages) by name. */
  onEvent: (name: string, value: unknown) => void = () => {};

  constructor(
    private readonly end: IpcEnd,
    private readonly handlers: Record<string, Handler> = {},
  ) {
    this.listener = (raw) => this.handle(raw as IpcMessage);
    end.on('message', this.listener);
  }

  private send(m: IpcMessage): void {
    if (!this.end.send) throw new Error('no IPC channel: run this file through bench/run.ts');
    this.end.send(m);
  }

  private handle(m: IpcMessage): void {
    if (!m || typeof m !== 'object') return;
    if (m.type === 'response') {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(m.error));
      else p.resolve(m.value);
    } else if (m.type === 'request') {
      const h = this.handlers[m.method];
      if (!h) {
        this.send({ type: 'response', id: m.id, error: `no handler for ${m.method}` });
        return;
      }
      Promise.resolve()
        .then(() => h(m.args))
        .then(
          (value) => this.send({ type: 'response', id: m.id, value }),
          (e: unknown) => this.send({ type: 'response', id: m.id, error: e instanceof Error ? e.message : String(e) }),
        );
    } else if (m.type === 'event') {
      this.onEvent(m.name, m.value);
    }
  }

  /** Calls a handler on the other end. */
  request<T = unknown>(method: string, args?: unknown): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.send({ type: 'request', id, method, args });
    });
  }

  /** Sends a one-way message. */
  emit(name: string, value?: unknown): void {
    this.send({ type: 'event', name, value });
  }

  /** Fails every pending request (the other end went away). */
  failPending(reason: string): void {
    for (const p of this.pending.values()) p.reject(new Error(reason));
    this.pending.clear();
  }

  close(): void {
    this.end.off('message', this.listener);
  }
}
