/**
 * The prepared statements the server remembers, per principal: a client that prepared a
 * statement may run it by id alone. Bounded (the least recently used are forgotten first, by count
 * and by bytes) and expiring, so no principal can grow the server's memory; a forgotten statement
 * costs nothing, since the client sends its SQL with every execution and the server prepares it
 * again.
 * @packageDocumentation
 */

interface Entry {
  sql: string;
  lastUsed: number;
}

/** Most SQL text remembered per principal, bytes (UTF-16 length, approximately). */
const maxBytesPerPrincipal = 16 * 1024 * 1024;
/** Most principals remembered at once. */
const maxPrincipals = 10_000;

/** See the file comment. */
export class PreparedRegistry {
  private readonly owners = new Map<string, { entries: Map<string, Entry>; bytes: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly maxPerPrincipal: number,
    private readonly ttlMs: number,
  ) {
    this.timer = setInterval(() => this.sweep(), Math.max(1000, Math.min(ttlMs, 60_000)));
    this.timer.unref();
  }

  /** Remembers `sql` under `id` for `owner`. */
  remember(owner: string, id: string, sql: string): void {
    if (this.maxPerPrincipal <= 0) return;
    let o = this.owners.get(owner);
    if (!o) {
      if (this.owners.size >= maxPrincipals) this.owners.delete(this.owners.keys().next().value!);
      this.owners.set(owner, (o = { entries: new Map(), bytes: 0 }));
    }
    const old = o.entries.get(id);
    if (old) {
      o.entries.delete(id);
      o.bytes -= old.sql.length;
    }
    o.entries.set(id, { sql, lastUsed: Date.now() });
    o.bytes += sql.length;
    while (o.entries.size > this.maxPerPrincipal || (o.bytes > maxBytesPerPrincipal && o.entries.size > 1)) {
      const [oldestId, oldest] = o.entries.entries().next().value!;
      o.entries.delete(oldestId);
      o.bytes -= oldest.sql.length;
    }
  }

  /** The SQL of `id` for `owner`, if remembered (and marks it used). */
  lookup(owner: string, id: string): string | undefined {
    const o = this.owners.get(owner);
    const e = o?.entries.get(id);
    if (!o || !e) return undefined;
    if (Date.now() - e.lastUsed > this.ttlMs) {
      this.forget(owner, id);
      return undefined;
    }
    o.entries.delete(id);
    e.lastUsed = Date.now();
    o.entries.set(id, e);
    return e.sql;
  }

  /** Forgets `id` for `owner`. */
  forget(owner: string, id: string): void {
    const o = this.owners.get(owner);
    const e = o?.entries.get(id);
    if (!o || !e) return;
    o.entries.delete(id);
    o.bytes -= e.sql.length;
    if (o.entries.size === 0) this.owners.delete(owner);
  }

  /** Statements remembered, all principals together. */
  get size(): number {
    let n = 0;
    for (const o of this.owners.values()) n += o.entries.size;
    return n;
  }

  /** Drops expired statements. */
  sweep(now = Date.now()): void {
    for (const [owner, o] of this.owners) {
      for (const [id, e] of o.entries) {
        if (now - e.lastUsed <= this.ttlMs) break; // in order of use: the rest are newer
        o.entries.delete(id);
        o.bytes -= e.sql.length;
      }
      if (o.entries.size === 0) this.owners.delete(owner);
    }
  }

  /** Stops the sweep timer. */
  close(): void {
    clearInterval(this.timer);
  }
}
