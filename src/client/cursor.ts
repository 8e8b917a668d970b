/**
 * `Cursor`: a named server-side cursor inside a transaction, read in pages with FETCH. Browser-safe.
 * @packageDocumentation
 */
import { HeliosDBError } from './errors.js';
import type { QueryRunner } from './query-runner.js';
import type { CallOptions } from './types.js';

/** Options of `tx.cursor`. */
export interface CursorOptions extends CallOptions {
  /**
   * The cursor's name: a plain SQL identifier (letters, digits, `_`), case-insensitive like any
   * unquoted identifier. Default: a generated unique name such as `heliosdb_cursor_1_k3x9`.
   */
  name?: string;
  /** Rows per FETCH when iterating with `for await`. Default `1000`. */
  fetchSize?: number;
  /** Declare the cursor SCROLL (allows fetching backwards). Default `false` (NO SCROLL). */
  scroll?: boolean;
  /** Rows as objects or arrays. Default: the client's `rowMode` (`'object'`). */
  rowMode?: 'object' | 'array';
}

const identifier = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;
let counter = 0;

/** A unique cursor name. */
export function cursorName(): string {
  counter = (counter + 1) % 1_000_000;
  return `heliosdb_cursor_${counter}_${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
}

/** Checks a user-supplied cursor name. */
export function checkCursorName(name: string): string {
  if (!identifier.test(name))
    throw new TypeError(`invalid cursor name ${JSON.stringify(name)}: use a plain identifier (letters, digits, _)`);
  return name;
}

/**
 * A server-side cursor, from `tx.cursor(sql, params)`: `DECLARE name NO SCROLL CURSOR FOR sql`
 * in the transaction. Read it in pages with `fetch(n)` or with `for await`; interleave other
 * statements of the transaction freely (unlike a stream).
 *
 * `WHERE CURRENT OF <name>` follows PostgreSQL's FETCH exactly: it names the row the cursor is
 * on, which is the **last** row the last `fetch(n)` returned when it returned all `n`, and no row
 * at all (SQLSTATE 24000, "cursor ... is not positioned on a row") when the fetch reached the end
 * and returned fewer than `n`: the cursor is then after the last row, and a `FOR UPDATE` cursor
 * cannot move back. So to update or delete every row through the cursor, fetch one row at a time
 * (`fetch(1)`, or iterate with `fetchSize: 1`); to work in pages, update the fetched rows by key
 * (`FOR UPDATE` has locked them).
 *
 * A cursor lives until `close()`, or the end of its transaction.
 *
 * @example
 * ```ts
 * // Row by row, through the cursor's position:
 * await using cur = await tx.cursor('SELECT id, total FROM orders WHERE NOT billed FOR UPDATE', [], { fetchSize: 1 });
 * for await (const order of cur) {
 *   await tx.execute(`UPDATE orders SET billed = true WHERE CURRENT OF ${cur.name}`);
 * }
 * // In pages of 100, by key:
 * await using page = await tx.cursor<{ id: number }>('SELECT id FROM orders WHERE NOT billed FOR UPDATE');
 * for (let rows; (rows = await page.fetch(100)).length > 0; ) {
 *   await tx.execute('UPDATE orders SET billed = true WHERE id = ANY($1)', [rows.map((r) => r.id)]);
 * }
 * ```
 */
export class Cursor<T = Record<string, unknown>> implements AsyncIterable<T>, AsyncDisposable {
  /** The cursor's name, usable in `WHERE CURRENT OF name` through the same transaction. */
  readonly name: string;
  /** Rows per FETCH when iterating. */
  readonly fetchSize: number;
  readonly #runner: QueryRunner;
  readonly #rowMode: 'object' | 'array' | undefined;
  #closed = false;
  #exhausted = false;

  /** @internal Created by `tx.cursor()`. */
  constructor(runner: QueryRunner, name: string, options: CursorOptions | undefined) {
    this.#runner = runner;
    this.name = name;
    this.fetchSize = options?.fetchSize ?? 1000;
    this.#rowMode = options?.rowMode;
    if (!Number.isInteger(this.fetchSize) || this.fetchSize < 1)
      throw new RangeError(`fetchSize must be a positive integer, got ${this.fetchSize}`);
  }

  /** True after `close()` (or once iteration ended). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Fetches up to `count` next rows (`FETCH FORWARD count`); an empty array means the end.
   * Default `fetchSize`. Afterwards `WHERE CURRENT OF` names the last row returned if all `count`
   * came back, and no row if fewer did (the cursor is past the end: see the class comment).
   */
  async fetch(count: number = this.fetchSize, options?: CallOptions): Promise<T[]> {
    this.#check();
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`fetch count must be a non-negative integer, got ${count}`);
    const r = await this.#runner.query<T>(`FETCH FORWARD ${count} FROM ${this.name}`, undefined, { ...options, rowMode: this.#rowMode });
    if (r.rows.length < count) this.#exhausted = true;
    return r.rows;
  }

  /** Moves the cursor by `count` rows without returning them (`MOVE FORWARD count`; negative moves back on SCROLL cursors). */
  async move(count: number, options?: CallOptions): Promise<number> {
    this.#check();
    if (!Number.isInteger(count)) throw new RangeError(`move count must be an integer, got ${count}`);
    const sql = count >= 0 ? `MOVE FORWARD ${count} IN ${this.name}` : `MOVE BACKWARD ${-count} IN ${this.name}`;
    return (await this.#runner.execute(sql, undefined, options)).rowCount;
  }

  /**
   * Iterates the remaining rows, fetching `fetchSize` at a time; the cursor is closed when the
   * loop ends. With `fetchSize: 1`, `WHERE CURRENT OF` inside the loop names the row in hand; with
   * larger pages it names the last row of the page (or none on the last, short page).
   */
  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    try {
      while (!this.#exhausted) {
        const rows = await this.fetch(this.fetchSize);
        for (const r of rows) yield r;
        if (rows.length === 0) break;
      }
    } finally {
      await this.close().catch(() => {});
    }
  }

  /** Closes the cursor (`CLOSE name`). Idempotent; a no-op once its transaction ended. */
  async close(options?: CallOptions): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#runner.check();
    } catch {
      return; // The transaction ended, and the cursor with it.
    }
    await this.#runner.execute(`CLOSE ${this.name}`, undefined, options);
  }

  /** `await using cur = await tx.cursor(...)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.close();
    } catch {
      // The transaction may have failed; the cursor ends with it.
    }
  }

  #check(): void {
    if (this.#closed) throw new HeliosDBError(`cursor ${this.name} is closed`, 'CURSOR_CLOSED');
  }
}
