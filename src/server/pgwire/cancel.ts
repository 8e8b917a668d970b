/**
 * Backend key data the PostgreSQL port issues itself (a process id and a random secret per client
 * connection), and the CancelRequests that name them: each key maps to what cancels that client's
 * work (a CancelRequest to its own PostgreSQL backend, or the embedded engine's scheduler). A
 * request with a wrong secret does nothing, as in PostgreSQL.
 * @packageDocumentation
 */
import { randomInt, timingSafeEqual } from 'node:crypto';

/** What cancelling a client's work does. */
export type CancelHandler = () => void;

interface Entry {
  secret: number;
  cancel: CancelHandler;
}

/** A key handed to a client in BackendKeyData. */
export interface BackendKey {
  processId: number;
  secretKey: number;
}

/** See the file comment. */
export class CancelRegistry {
  private readonly entries = new Map<number, Entry>();
  private next = randomInt(1, 1 << 20);

  /** Issues a key for a new client connection; {@link release} it when the connection ends. */
  issue(cancel: CancelHandler): BackendKey {
    let pid = this.next;
    while (this.entries.has(pid)) pid = (pid % 0x7ffffffe) + 1;
    this.next = (pid % 0x7ffffffe) + 1;
    const secretKey = randomInt(1, 0x7fffffff);
    this.entries.set(pid, { secret: secretKey, cancel });
    return { processId: pid, secretKey };
  }

  /** Forgets a key. */
  release(key: BackendKey): void {
    const e = this.entries.get(key.processId);
    if (e && e.secret === key.secretKey) this.entries.delete(key.processId);
  }

  /** Handles a CancelRequest: true when the key was known and its work asked to stop. */
  cancel(processId: number, secretKey: number): boolean {
    const e = this.entries.get(processId);
    if (!e) return false;
    const a = Buffer.alloc(4);
    const b = Buffer.alloc(4);
    a.writeInt32BE(e.secret);
    b.writeInt32BE(secretKey | 0);
    if (!timingSafeEqual(a, b)) return false;
    try {
      e.cancel();
    } catch {
      // A cancel never fails the server.
    }
    return true;
  }

  /** Keys in use. */
  get size(): number {
    return this.entries.size;
  }
}
