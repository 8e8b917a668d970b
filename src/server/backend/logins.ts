/**
 * Which backend login a principal's calls use: on PostgreSQL the HeliosDB user's own login role
 * (its secret derived from the server key), or the server's own login for anonymous callers; on
 * the embedded engine, which has one session, the principal's role switched per call.
 * @packageDocumentation
 */
import { ErrorReason } from '@heliosdb/client/wire';
import { Code } from '@connectrpc/connect';
import { ownerKeyOf, type Principal } from '../auth/principal.js';
import type { Engine } from '../backend.js';
import { serverError } from '../errors.js';
import { type BackendLogin, loginSecret, serverLogin, serverReadOnlyLogin } from './login.js';

const maxCached = 10_000;

/** See the file comment. */
export class LoginResolver {
  private readonly cache = new Map<string, BackendLogin>();

  private serverKey: string | undefined;
  private loading: Promise<void> | undefined;

  /**
   * @param engine the backend's engine
   * @param loadKey reads the key login secrets derive from (PostgreSQL; undefined before
   *   `heliosdb auth init`)
   */
  constructor(
    private readonly engine: Engine,
    private readonly loadKey: () => Promise<string | undefined>,
  ) {}

  /** Loads the server key if `p` needs it and it is not known yet (it may be made after start-up). */
  async ready(p: Principal): Promise<void> {
    if (this.engine !== 'postgresql' || !p.login || this.serverKey) return;
    this.loading ??= this.loadKey().then(
      (k) => {
        this.serverKey = k;
        this.loading = undefined;
      },
      () => {
        this.loading = undefined;
      },
    );
    await this.loading;
  }

  /** The login a principal's calls use. */
  loginOf(p: Principal): BackendLogin {
    if (this.engine === 'pglite') {
      const key = `${ownerKeyOf(p) || 'anonymous'}${p.readOnly ? ':ro' : ''}`;
      return this.cached(key, () => ({ key, role: p.role || undefined, readOnly: p.readOnly }));
    }
    if (!p.login) {
      if (p.user !== '') {
        throw serverError(
          Code.FailedPrecondition,
          `the HeliosDB user ${JSON.stringify(p.user)} has no PostgreSQL login role yet: run \`heliosdb auth init\` again (as an administrator) to create the login roles of existing users`,
          { reason: ErrorReason.LOGIN_ROLE_MISSING },
        );
      }
      return p.readOnly ? serverReadOnlyLogin : serverLogin;
    }
    const { role, generation } = p.login;
    const key = `${role}:${generation}${p.readOnly ? ':ro' : ''}`;
    return this.cached(key, () => {
      if (!this.serverKey) {
        throw serverError(Code.FailedPrecondition, 'the server key is missing (heliosdb.server_key): run `heliosdb auth init`', {
          reason: ErrorReason.LOGIN_ROLE_MISSING,
        });
      }
      return { key, user: role, password: loginSecret(this.serverKey, role, generation), readOnly: p.readOnly };
    });
  }

  private cached(key: string, make: () => BackendLogin): BackendLogin {
    let l = this.cache.get(key);
    if (!l) {
      l = make();
      if (this.cache.size >= maxCached) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(key, l);
    }
    return l;
  }
}
