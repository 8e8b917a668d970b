/**
 * The `sql` tagged template: interpolated values always become parameters ($1, $2, ...), never
 * SQL text. Browser-safe.
 * @packageDocumentation
 */

/** A statement built from a template: SQL text with placeholders, and its parameters. */
export interface SqlStatement {
  text: string;
  values: unknown[];
}

/** Turns ``sql`SELECT * FROM t WHERE id = ${id}` `` into `{ text: 'SELECT * FROM t WHERE id = $1', values: [id] }`. */
export function sqlTemplate(strings: TemplateStringsArray, values: readonly unknown[]): SqlStatement {
  let text = strings[0];
  for (let i = 1; i < strings.length; i++) text += `$${i}${strings[i]}`;
  return { text, values: [...values] };
}
