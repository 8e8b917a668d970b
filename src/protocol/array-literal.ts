/**
 * PostgreSQL array literals (`{1,NULL,"a b"}`), parsed into element texts. Browser-safe.
 * @packageDocumentation
 */

/** Splits a PostgreSQL array literal into element texts (nested arrays as nested lists). */
export function parseArrayLiteral(text: string): ArrayItems {
  let i = text.startsWith('[') ? text.indexOf('=') + 1 : 0; // skip explicit bounds
  const parse = (): ArrayItems => {
    const out: ArrayItems = [];
    i++; // '{'
    while (i < text.length) {
      const c = text[i];
      if (c === '}') {
        i++;
        return out;
      }
      if (c === ',' || c === ';') {
        i++;
        continue;
      }
      if (c === '{') {
        out.push(parse());
        continue;
      }
      if (c === '"') {
        let s = '';
        i++;
        while (text[i] !== '"') {
          if (text[i] === '\\') i++;
          s += text[i++];
        }
        i++;
        out.push(s);
        continue;
      }
      let j = i;
      while (text[j] !== ',' && text[j] !== '}' && text[j] !== ';') j++;
      const raw = text.slice(i, j);
      out.push(raw === 'NULL' ? null : raw);
      i = j;
    }
    return out;
  };
  return parse();
}

/** Elements of a parsed array literal. */
export type ArrayItems = (string | null | ArrayItems)[];
