/**
 * `Savepoint`: a named point inside a transaction to roll back to. Browser-safe.
 * @packageDocumentation
 */
import { TransactionError } from './errors.js';
import type { CallOptions } from './types.js';

/** The calls a savepoint makes, supplied by its transaction. */
export interface SavepointActions {
  rollbackTo(name: string, options?: CallOptions): Promise<void>;
  release(name: string, options?: CallOptions): Promise<void>;
}

/**
 * A savepoint, from `tx.savepoint(name?)`. `rollback()` undoes everything the transaction did
 * since the savepoint (including a failed statement, so the transaction can continue) and keeps
 * the savepoint; `release()` forgets it and keeps the work.
 *
 * @example
 * ```ts
 * const sp = await tx.savepoint();
 * try {
 *   await tx.execute('INSERT INTO audit VALUES ($1)', [entry]);
 *   await sp.release();
 * } catch {
 *   await sp.rollback(); // the transaction goes on without the insert
 * }
 * ```
 */
export class Savepoint {
  /** The savepoint's name (the server picks one when none was given). */
  readonly name: string;
  readonly #actions: SavepointActions;
  #released = false;

  /** @internal Created by `tx.savepoint()`. */
  constructor(name: string, actions: SavepointActions) {
    this.name = name;
    this.#actions = actions;
  }

  /** True after `release()`. */
  get released(): boolean {
    return this.#released;
  }

  /** Rolls the transaction back to this savepoint (ROLLBACK TO SAVEPOINT). The savepoint stays usable. */
  async rollback(options?: CallOptions): Promise<void> {
    this.#check();
    await this.#actions.rollbackTo(this.name, options);
  }

  /** Forgets the savepoint, keeping its work (RELEASE SAVEPOINT). Later calls on it throw `SAVEPOINT_RELEASED`. */
  async release(options?: CallOptions): Promise<void> {
    this.#check();
    this.#released = true;
    await this.#actions.release(this.name, options);
  }

  #check(): void {
    if (this.#released) throw new TransactionError(`savepoint ${this.name} was already released`, 'SAVEPOINT_RELEASED');
  }
}
