/**
 * Answers remembered per SQL text: the last thousand texts of up to 4 KiB, and the last eight
 * longer ones of up to 1 MiB (a multi-row INSERT of thousands of rows is sent again and again,
 * and working its text out each time cost more than sending it). Longer texts are not kept.
 * Browser-safe.
 * @packageDocumentation
 */

const shortText = 4096;
const longText = 1024 * 1024;

/** See the file comment. */
export class TextMemo<V> {
  private readonly short = new Map<string, V>();
  private readonly long = new Map<string, V>();

  /** The map a text of this length belongs in, or undefined when it is too long to keep. */
  private mapFor(sql: string): Map<string, V> | undefined {
    return sql.length <= shortText ? this.short : sql.length <= longText ? this.long : undefined;
  }

  /** Whether an answer for `sql` is remembered. */
  has(sql: string): boolean {
    return this.mapFor(sql)?.has(sql) ?? false;
  }

  /** The remembered answer for `sql` (undefined when none, or when the answer is undefined). */
  get(sql: string): V | undefined {
    return this.mapFor(sql)?.get(sql);
  }

  /** Remembers `value` for `sql`, forgetting the oldest of its size class when full. */
  set(sql: string, value: V): void {
    const map = this.mapFor(sql);
    if (!map) return;
    if (map.size >= (map === this.short ? 1000 : 8)) map.delete(map.keys().next().value as string);
    map.set(sql, value);
  }
}
