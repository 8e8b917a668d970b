/**
 * The CQL parser: the statements of ./ast.ts from the tokens of ./lexer.ts. Statements outside
 * the subset this server runs (CREATE INDEX, ALTER, user-defined types, functions, roles, ...)
 * parse to `unsupported` so that they are refused by name rather than as syntax errors.
 * @packageDocumentation
 */
import type { Assignment, Marker, Parsed, Relation, Selector, Statement, TableName, Term, Using } from './ast.js';
import { syntaxError, type Token, tokenize } from './lexer.js';
import { type CqlType, parseTypeText } from './types.js';
import { invalid } from './errors.js';

const unsupportedLeads: Record<string, string> = {
  alter: 'ALTER',
  grant: 'GRANT',
  revoke: 'REVOKE',
  list: 'LIST',
};

/** The deepest nesting of collection and function literals a statement may have. */
const maxTermDepth = 64;

class Parser {
  private i = 0;
  private depth = 0;
  readonly markers: Marker[] = [];
  constructor(private readonly tokens: Token[]) {}

  peek(offset = 0): Token {
    return this.tokens[Math.min(this.i + offset, this.tokens.length - 1)];
  }

  next(): Token {
    const tk = this.peek();
    if (tk.type !== 'end') this.i++;
    return tk;
  }

  isWord(word: string, offset = 0): boolean {
    const tk = this.peek(offset);
    return tk.type === 'ident' && !tk.quoted && tk.text === word;
  }

  isPunct(p: string): boolean {
    const tk = this.peek();
    return tk.type === 'punct' && tk.text === p;
  }

  acceptWord(word: string): boolean {
    if (!this.isWord(word)) return false;
    this.i++;
    return true;
  }

  acceptPunct(p: string): boolean {
    if (!this.isPunct(p)) return false;
    this.i++;
    return true;
  }

  fail(what: string): never {
    const tk = this.peek();
    const got =
      tk.type === 'end' ? 'the end of the statement' : `${'text' in tk ? JSON.stringify(tk.text) : tk.type} at character ${tk.pos}`;
    throw syntaxError(`line 1:${tk.pos} expected ${what}, found ${got}`);
  }

  word(word: string): void {
    if (!this.acceptWord(word)) this.fail(word.toUpperCase());
  }

  punct(p: string): void {
    if (!this.acceptPunct(p)) this.fail(`'${p}'`);
  }

  ident(): string {
    const tk = this.peek();
    if (tk.type !== 'ident') this.fail('an identifier');
    this.i++;
    return tk.text;
  }

  tableName(): TableName {
    const first = this.ident();
    if (this.acceptPunct('.')) return { keyspace: first, name: this.ident() };
    return { keyspace: undefined, name: first };
  }

  ifNotExists(): boolean {
    if (!this.isWord('if')) return false;
    this.next();
    this.word('not');
    this.word('exists');
    return true;
  }

  ifExists(): boolean {
    if (!(this.isWord('if') && this.isWord('exists', 1))) return false;
    this.i += 2;
    return true;
  }

  term(): Term {
    if (this.depth >= maxTermDepth) throw syntaxError(`literals nest more than ${maxTermDepth} levels deep`);
    this.depth++;
    try {
      return this.termAt();
    } finally {
      this.depth--;
    }
  }

  private termAt(): Term {
    const tk = this.next();
    switch (tk.type) {
      case 'string':
        return { kind: 'string', text: tk.text };
      case 'number':
        return { kind: 'number', text: tk.text };
      case 'uuid':
        return { kind: 'uuid', text: tk.text };
      case 'blob':
        return { kind: 'blob', text: tk.text };
      case 'marker': {
        const m: Marker = { kind: 'marker', index: this.markers.length, name: tk.name };
        this.markers.push(m);
        return m;
      }
      case 'ident': {
        if (!tk.quoted) {
          if (tk.text === 'true' || tk.text === 'false') return { kind: 'bool', value: tk.text === 'true' };
          if (tk.text === 'null') return { kind: 'null' };
          if (tk.text === 'nan') return { kind: 'number', text: 'NaN' };
          if (tk.text === 'infinity') return { kind: 'number', text: 'Infinity' };
        }
        if (this.acceptPunct('(')) {
          const args: Term[] = [];
          if (!this.acceptPunct(')')) {
            do args.push(this.term());
            while (this.acceptPunct(','));
            this.punct(')');
          }
          return { kind: 'call', name: tk.text, args };
        }
        break;
      }
      case 'punct': {
        if (tk.text === '[') {
          const items: Term[] = [];
          if (!this.acceptPunct(']')) {
            do items.push(this.term());
            while (this.acceptPunct(','));
            this.punct(']');
          }
          return { kind: 'list', items };
        }
        if (tk.text === '{') {
          if (this.acceptPunct('}')) return { kind: 'map', entries: [] };
          const first = this.term();
          if (this.acceptPunct(':')) {
            const entries: [Term, Term][] = [[first, this.term()]];
            while (this.acceptPunct(',')) {
              const k = this.term();
              this.punct(':');
              entries.push([k, this.term()]);
            }
            this.punct('}');
            return { kind: 'map', entries };
          }
          const items = [first];
          while (this.acceptPunct(',')) items.push(this.term());
          this.punct('}');
          return { kind: 'set', items };
        }
        break;
      }
    }
    this.i--;
    return this.fail('a constant or a bind marker');
  }

  /** An option value of WITH: a constant or a map literal of constants. */
  optionValue(): unknown {
    const t = this.term();
    if (t.kind === 'map') return Object.fromEntries(t.entries.map(([k, v]) => [constText(k), constText(v)]));
    return constText(t);
  }

  withOptions(into: Record<string, unknown>, order?: Record<string, 'ASC' | 'DESC'>): void {
    if (!this.acceptWord('with')) return;
    do {
      if (order && this.isWord('clustering')) {
        this.next();
        this.word('order');
        this.word('by');
        this.punct('(');
        do {
          const c = this.ident();
          if (this.acceptWord('desc')) order[c] = 'DESC';
          else {
            this.acceptWord('asc');
            order[c] = 'ASC';
          }
        } while (this.acceptPunct(','));
        this.punct(')');
        continue;
      }
      if (this.isWord('compact')) {
        this.next();
        this.word('storage');
        into['compact storage'] = true;
        continue;
      }
      const name = this.ident();
      this.punct('=');
      into[name] = this.optionValue();
    } while (this.acceptWord('and'));
  }

  using(): Using {
    if (!this.acceptWord('using')) return {};
    const out: { ttl?: Term; timestamp?: Term } = {};
    do {
      if (this.acceptWord('ttl')) out.ttl = this.term();
      else if (this.acceptWord('timestamp')) out.timestamp = this.term();
      else this.fail('TTL or TIMESTAMP');
    } while (this.acceptWord('and'));
    return out;
  }

  relations(): Relation[] {
    const out: Relation[] = [];
    do {
      if (this.isPunct('(') || this.isWord('token')) this.fail('a column name (tuple and token() relations are not supported)');
      const column = this.ident();
      const tk = this.next();
      if (tk.type === 'ident' && !tk.quoted && tk.text === 'in') {
        if (this.isPunct('(')) {
          this.next();
          const items: Term[] = [];
          if (!this.acceptPunct(')')) {
            do items.push(this.term());
            while (this.acceptPunct(','));
            this.punct(')');
          }
          out.push({ column, op: 'IN', value: items });
        } else out.push({ column, op: 'IN', value: this.term() });
        continue;
      }
      if (tk.type === 'ident' && !tk.quoted && tk.text === 'contains') {
        out.push({ column, op: 'CONTAINS', value: this.term() });
        continue;
      }
      if (tk.type !== 'punct' || !['=', '<', '>', '<=', '>=', '!='].includes(tk.text)) {
        this.i--;
        this.fail('a comparison operator');
      }
      out.push({ column, op: tk.text as Relation['op'], value: this.term() });
    } while (this.acceptWord('and'));
    return out;
  }

  conditions(): { ifExists: boolean; conditions: Relation[] } {
    if (!this.isWord('if')) return { ifExists: false, conditions: [] };
    if (this.ifExists()) return { ifExists: true, conditions: [] };
    this.next();
    return { ifExists: false, conditions: this.relations() };
  }

  statement(): Statement {
    if (this.acceptWord('use')) return { kind: 'use', keyspace: this.ident() };
    if (this.acceptWord('select')) return this.select();
    if (this.acceptWord('insert')) return this.insert();
    if (this.acceptWord('update')) return this.update();
    if (this.acceptWord('delete')) return this.delete();
    if (this.acceptWord('begin')) return this.batch();
    if (this.acceptWord('truncate')) {
      this.acceptWord('table');
      return { kind: 'truncate', table: this.tableName() };
    }
    if (this.acceptWord('create')) {
      if (this.acceptWord('keyspace') || this.acceptWord('schema')) {
        const ifNotExists = this.ifNotExists();
        const name = this.ident();
        const options: Record<string, unknown> = {};
        this.withOptions(options);
        return { kind: 'createKeyspace', name, ifNotExists, options };
      }
      if (this.acceptWord('table') || this.acceptWord('columnfamily')) return this.createTable();
      return {
        kind: 'unsupported',
        what: `CREATE ${this.peek().type === 'ident' ? (this.peek() as { text: string }).text.toUpperCase() : ''}`.trim(),
      };
    }
    if (this.acceptWord('drop')) {
      if (this.acceptWord('keyspace') || this.acceptWord('schema')) {
        const ifExists = this.ifExists();
        return { kind: 'dropKeyspace', name: this.ident(), ifExists };
      }
      if (this.acceptWord('table') || this.acceptWord('columnfamily')) {
        const ifExists = this.ifExists();
        return { kind: 'dropTable', table: this.tableName(), ifExists };
      }
      return { kind: 'unsupported', what: 'this DROP statement' };
    }
    const lead = this.peek();
    if (lead.type === 'ident' && unsupportedLeads[lead.text])
      return { kind: 'unsupported', what: `${unsupportedLeads[lead.text]} statements` };
    return this.fail('a statement');
  }

  createTable(): Statement {
    const ifNotExists = this.ifNotExists();
    const table = this.tableName();
    this.punct('(');
    const columns: { name: string; type: CqlType; static: boolean }[] = [];
    let partitionKey: string[] = [];
    let clustering: string[] = [];
    do {
      if (this.isWord('primary') && this.isWord('key', 1)) {
        this.i += 2;
        this.punct('(');
        if (this.acceptPunct('(')) {
          do partitionKey.push(this.ident());
          while (this.acceptPunct(','));
          this.punct(')');
        } else partitionKey = [this.ident()];
        while (this.acceptPunct(',')) clustering.push(this.ident());
        this.punct(')');
        continue;
      }
      const name = this.ident();
      const type = this.type();
      const isStatic = this.acceptWord('static');
      if (this.acceptWord('primary')) {
        this.word('key');
        partitionKey = [name];
        clustering = [];
      }
      columns.push({ name, type, static: isStatic });
    } while (this.acceptPunct(','));
    this.punct(')');
    const options: Record<string, unknown> = {};
    const order: Record<string, 'ASC' | 'DESC'> = {};
    this.withOptions(options, order);
    return { kind: 'createTable', table, ifNotExists, columns, partitionKey, clustering, order, options };
  }

  type(): CqlType {
    let text = this.ident();
    if (this.isPunct('<')) {
      let depth = 0;
      do {
        const tk = this.next();
        if (tk.type === 'end') this.fail("'>'");
        const s = tk.type === 'punct' || tk.type === 'ident' ? tk.text : '';
        if (s === '<') depth++;
        if (s === '>') depth--;
        text += s === ',' ? ', ' : s;
      } while (depth > 0);
    }
    const t = parseTypeText(text);
    if (!t) throw syntaxError(`unknown or unsupported type ${text}`);
    return t;
  }

  select(): Statement {
    const json = this.acceptWord('json');
    const distinct = this.acceptWord('distinct');
    let selectors: Selector[] | '*';
    if (this.acceptPunct('*')) selectors = '*';
    else {
      selectors = [];
      do {
        if (this.isWord('count') && this.peek(1).type === 'punct') {
          this.next();
          this.punct('(');
          if (!this.acceptPunct('*')) this.term();
          this.punct(')');
          selectors.push({ kind: 'count', alias: this.alias() });
          continue;
        }
        if (this.peek(1).type === 'punct' && (this.peek(1) as { text: string }).text === '(') {
          const fn = this.ident();
          this.fail(`a column name (function ${fn}() is not supported in selections)`);
        }
        const name = this.ident();
        selectors.push({ kind: 'column', name, alias: this.alias() });
      } while (this.acceptPunct(','));
    }
    this.word('from');
    const table = this.tableName();
    const where = this.acceptWord('where') ? this.relations() : [];
    const orderBy: { column: string; desc: boolean }[] = [];
    if (this.acceptWord('group')) return { kind: 'unsupported', what: 'GROUP BY' };
    if (this.acceptWord('order')) {
      this.word('by');
      do {
        const column = this.ident();
        const desc = this.acceptWord('desc');
        if (!desc) this.acceptWord('asc');
        orderBy.push({ column, desc });
      } while (this.acceptPunct(','));
    }
    let perPartitionLimit = false;
    if (this.isWord('per')) {
      this.next();
      this.word('partition');
      this.word('limit');
      this.term();
      perPartitionLimit = true;
    }
    const limit = this.acceptWord('limit') ? this.term() : undefined;
    let allowFiltering = false;
    if (this.acceptWord('allow')) {
      this.word('filtering');
      allowFiltering = true;
    }
    return { kind: 'select', table, selectors, distinct, json, where, orderBy, limit, perPartitionLimit, allowFiltering };
  }

  alias(): string | undefined {
    return this.acceptWord('as') ? this.ident() : undefined;
  }

  insert(): Statement {
    this.word('into');
    const table = this.tableName();
    if (this.acceptWord('json')) {
      this.term();
      return { kind: 'insert', table, columns: [], values: [], ifNotExists: false, using: {}, json: true };
    }
    this.punct('(');
    const columns: string[] = [];
    do columns.push(this.ident());
    while (this.acceptPunct(','));
    this.punct(')');
    this.word('values');
    this.punct('(');
    const values: Term[] = [];
    do values.push(this.term());
    while (this.acceptPunct(','));
    this.punct(')');
    if (columns.length !== values.length) throw syntaxError(`${columns.length} columns but ${values.length} values`);
    const ifNotExists = this.ifNotExists();
    const using = this.using();
    return { kind: 'insert', table, columns, values, ifNotExists: ifNotExists || this.ifNotExists(), using, json: false };
  }

  update(): Statement {
    const table = this.tableName();
    const using = this.using();
    this.word('set');
    const set: Assignment[] = [];
    do {
      const column = this.ident();
      if (this.isPunct('[')) this.fail("'=' (setting one element of a collection is not supported)");
      if (this.acceptPunct('+=')) set.push({ column, op: 'add', value: this.term() });
      else if (this.acceptPunct('-=')) set.push({ column, op: 'subtract', value: this.term() });
      else {
        this.punct('=');
        if (
          this.isWord(column) ||
          (this.peek().type === 'ident' && (this.peek() as { text: string }).text === column && this.peek(1).type === 'punct')
        ) {
          const save = this.i;
          this.next();
          if (this.acceptPunct('+')) {
            set.push({ column, op: 'add', value: this.term() });
            continue;
          }
          if (this.acceptPunct('-')) {
            set.push({ column, op: 'subtract', value: this.term() });
            continue;
          }
          this.i = save;
        }
        const value = this.term();
        if (this.acceptPunct('+')) {
          if (this.ident() !== column) this.fail(column);
          set.push({ column, op: 'prepend', value });
        } else set.push({ column, op: 'set', value });
      }
    } while (this.acceptPunct(','));
    this.word('where');
    const where = this.relations();
    return { kind: 'update', table, using, set, where, ...this.conditions() };
  }

  delete(): Statement {
    const columns: string[] = [];
    if (!this.isWord('from')) {
      do {
        columns.push(this.ident());
        if (this.isPunct('[')) this.fail("',' or FROM (deleting one element of a collection is not supported)");
      } while (this.acceptPunct(','));
    }
    this.word('from');
    const table = this.tableName();
    const using = this.using();
    this.word('where');
    const where = this.relations();
    return { kind: 'delete', table, columns, using, where, ...this.conditions() };
  }

  batch(): Statement {
    const type = this.acceptWord('unlogged') ? 'unlogged' : this.acceptWord('counter') ? 'counter' : 'logged';
    this.word('batch');
    const using = this.using();
    const statements: Statement[] = [];
    while (!this.isWord('apply')) {
      const s = this.acceptWord('insert')
        ? this.insert()
        : this.acceptWord('update')
          ? this.update()
          : this.acceptWord('delete')
            ? this.delete()
            : undefined;
      if (!s) this.fail('INSERT, UPDATE, DELETE or APPLY BATCH');
      statements.push(s);
      this.acceptPunct(';');
    }
    this.word('apply');
    this.word('batch');
    return { kind: 'batch', type, using, statements };
  }
}

/** The text of a constant term (options of WITH). */
function constText(t: Term): unknown {
  if (t.kind === 'string' || t.kind === 'number' || t.kind === 'uuid') return t.text;
  if (t.kind === 'bool') return t.value;
  throw syntaxError('expected a constant');
}

/** The longest CQL statement text parsed, characters (1 MiB); longer ones are Invalid. */
export const maxStatementChars = 1024 * 1024;

/** Parses one CQL statement (at most {@link maxStatementChars} long). */
export function parseCql(text: string): Parsed {
  if (text.length > maxStatementChars)
    throw invalid(
      `the CQL statement is ${text.length} characters long, more than the limit of ${maxStatementChars} (1 MiB): send long values as bind markers`,
    );
  const p = new Parser(tokenize(text));
  const statement = p.statement();
  p.acceptPunct(';');
  if (p.peek().type !== 'end' && statement.kind !== 'unsupported') p.fail('the end of the statement');
  return { statement, markers: p.markers };
}
