/**
 * How many PostgreSQL backends the PostgreSQL port's relay (./postgres-relay.ts) holds: each
 * client has one of its own, opened outside the pool, so the relay counts them itself. One login
 * (one HeliosDB user, its keys together; every anonymous client shares the server's login) holds
 * at most `--max-connections-per-principal` (half of `--pool-size` when 0), and all clients
 * together at most `--pg-port-max-backends` (`--pool-size` when 0). A client beyond either cap is
 * refused at start-up with 53300 (too_many_connections), as PostgreSQL refuses a role over its
 * `CONNECTION LIMIT`; a refused client waits for nothing.
 * @packageDocumentation
 */
import type { ResolvedServerOptions } from '../options.js';

/** Gives a counted backend back; calling it again does nothing. */
export type ReleaseBackend = () => void;

/** A refusal: the message of the 53300 error. */
export interface BackendRefusal {
  refused: string;
}

/** The caps, from the server's options. */
export function relayCaps(options: ResolvedServerOptions): { perLogin: number; total: number } {
  const perLogin =
    options.maxConnectionsPerPrincipal > 0 ? options.maxConnectionsPerPrincipal : Math.max(1, Math.floor(options.poolSize / 2));
  const total = options.pgPortMaxBackends > 0 ? options.pgPortMaxBackends : options.poolSize;
  return { perLogin, total };
}

/** See the file comment. One per listener. */
export class RelayBackendLimits {
  private total = 0;
  private readonly byLogin = new Map<string, number>();

  constructor(private readonly caps: { perLogin: number; total: number }) {}

  /** Backends counted now, all logins together. */
  get held(): number {
    return this.total;
  }

  /**
   * Counts a backend of `login` (its role name; '' for the server's own login), or says why not.
   * The caller must call the returned function once the backend is gone or was never opened.
   */
  take(login: string): ReleaseBackend | BackendRefusal {
    const mine = this.byLogin.get(login) ?? 0;
    if (mine >= this.caps.perLogin) {
      return {
        refused: `too many connections for this user on the PostgreSQL port: at most ${this.caps.perLogin} at once (--max-connections-per-principal)`,
      };
    }
    if (this.total >= this.caps.total) {
      return {
        refused: `too many connections on the PostgreSQL port: the server opens at most ${this.caps.total} PostgreSQL backends for its clients (--pg-port-max-backends)`,
      };
    }
    this.byLogin.set(login, mine + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      const n = (this.byLogin.get(login) ?? 1) - 1;
      if (n > 0) this.byLogin.set(login, n);
      else this.byLogin.delete(login);
    };
  }
}

const perListener = new WeakMap<object, RelayBackendLimits>();

/**
 * The limits of the listener `owner` stands for (an object the listener makes once, such as its
 * cancel registry), made on first use.
 */
export function relayLimitsOf(owner: object, options: ResolvedServerOptions): RelayBackendLimits {
  let l = perListener.get(owner);
  if (!l) {
    l = new RelayBackendLimits(relayCaps(options));
    perListener.set(owner, l);
  }
  return l;
}
