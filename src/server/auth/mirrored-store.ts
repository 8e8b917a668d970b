/**
 * The authentication store of the embedded engine: users and keys mirrored in memory, password
 * sessions in memory only (see the class comment).
 * @packageDocumentation
 */
import type { ApiKeyRecord, AuthAdmin, AuthData, SessionRecord, UserRecord } from './records.js';
import type { SqlAuthStore } from './store.js';

/**
 * The embedded engine is one database session that callers queue for, and an open transaction
 * holds it: reading credentials through it could wait behind the caller being authenticated. So
 * there users and keys are mirrored in memory (loaded at start, written through on every change,
 * which only this server can make), and password sessions live in memory only.
 */
export class MirroredAuthStore implements AuthData, AuthAdmin {
  private users = new Map<string, UserRecord>();
  private keys = new Map<string, ApiKeyRecord>();
  private readonly sessions = new Map<string, SessionRecord>();

  constructor(private readonly store: SqlAuthStore) {}

  /** Loads users and keys. */
  async load(): Promise<void> {
    const users = new Map((await this.store.allUsers()).map((u) => [u.name, u]));
    const keys = new Map<string, ApiKeyRecord>();
    for (const id of await this.store.allApiKeyIds()) {
      const k = await this.store.findApiKey(id);
      if (k) keys.set(id, k);
    }
    this.users = users;
    this.keys = keys;
  }

  async findUser(name: string) {
    return this.users.get(name);
  }
  async findApiKey(id: string) {
    return this.keys.get(id);
  }
  async findSession(tokenHash: string) {
    const s = this.sessions.get(tokenHash);
    if (s && s.expiresAtMs <= Date.now()) this.sessions.delete(tokenHash);
    return s;
  }
  async createSession(tokenHash: string, user: string, expiresAtMs: number) {
    const u = this.users.get(user);
    if (!u) throw new Error(`no user ${user}`);
    for (const [h, s] of this.sessions) if (s.expiresAtMs <= Date.now()) this.sessions.delete(h);
    this.sessions.set(tokenHash, { user, role: u.role, expiresAtMs });
  }
  async deleteSession(tokenHash: string) {
    this.sessions.delete(tokenHash);
  }

  async createUser(opts: { name: string; role: string; password?: string; replace?: boolean }) {
    await this.store.createUser(opts);
    // A changed password or role ends the user's sessions.
    if (opts.replace) for (const [h, s] of this.sessions) if (s.user === opts.name) this.sessions.delete(h);
    await this.load();
  }
  async deleteUser(name: string) {
    const ok = await this.store.deleteUser(name);
    for (const [h, s] of this.sessions) if (s.user === name) this.sessions.delete(h);
    await this.load();
    return ok;
  }
  async createApiKey(opts: { user: string; readOnly?: boolean }) {
    const out = await this.store.createApiKey(opts);
    await this.load();
    return out;
  }
  async revokeApiKey(id: string) {
    const ok = await this.store.revokeApiKey(id);
    await this.load();
    return ok;
  }
}
