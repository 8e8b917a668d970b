/**
 * Quoting identifiers and string literals for the few statements the server builds itself (role
 * names, settings). Callers' values always travel as parameters instead.
 * @packageDocumentation
 */

/** Quotes a PostgreSQL identifier. */
export function quoteIdent(name: string): string {
  if (name.includes('\u0000')) throw new Error('identifiers cannot contain NUL');
  return `"${name.replace(/"/g, '""')}"`;
}

/** Quotes a PostgreSQL string literal (standard_conforming_strings is on); NUL characters are dropped. */
export function quoteLiteral(text: string): string {
  return `'${text.replace(/\u0000/g, '').replace(/'/g, "''")}'`;
}
