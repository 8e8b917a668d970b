/**
 * One walk over a statement's parse tree (libpg-query's JSON): data changes and row locks
 * anywhere in it (CTEs, sub-selects), SELECT INTO, the highest `$n`, the functions it calls,
 * `set_config` calls that change the role or session state, and the tables it reads and writes.
 * @packageDocumentation
 */
import type { PgFields } from './command-name.js';

/** What {@link collectFacts} found in one statement. */
export interface TreeFacts {
  /** An INSERT, UPDATE, DELETE or MERGE anywhere (also in a CTE or a rule's actions). */
  dataChange: boolean;
  /** A FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE clause anywhere. */
  locking: boolean;
  /** A SELECT ... INTO anywhere. */
  selectInto: boolean;
  /** Highest `$n` of the statement itself (not of a PREPAREd query or a function body). */
  maxParam: number;
  /** Tables read, as written in the text (`schema.table` when qualified). */
  read: Set<string>;
  /** Tables written or changed (DML targets, DDL objects, SELECT INTO / CREATE TABLE AS targets). */
  written: Set<string>;
  /** Functions called, as written (`schema.name` when qualified). */
  functions: Set<string>;
  /** A `set_config` whose first argument is 'role' or 'session_authorization', or not a literal. */
  roleSetConfig: boolean;
  /** A call that leaves state on the session: `set_config` not literally local, session advisory locks. */
  sessionStateCall: boolean;
  /** A temporary relation is created or written (`TEMP`, or the `pg_temp` schema). */
  tempRelation: boolean;
}

interface Scope {
  /** Names of the CTEs visible here (an unqualified table of that name is the CTE). */
  ctes: ReadonlySet<string>;
  /** RangeVars here are objects a utility statement changes (outside its queries). */
  ddl: boolean;
  /** The statement runs this part (false under EXPLAIN without ANALYZE, PREPARE, a view's query, ...). */
  exec: boolean;
  /** `$n` here are the statement's own parameters (false in a PREPAREd query or a function body). */
  params: boolean;
}

type Obj = PgFields;

const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

const dmlNodes = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** Root statements whose RangeVars are only read (or locked, vacuumed, ...), not changed. */
const nonChangingRoots = new Set([
  'SelectStmt',
  'InsertStmt',
  'UpdateStmt',
  'DeleteStmt',
  'MergeStmt',
  'LockStmt',
  'VacuumStmt',
  'ClusterStmt',
  'ReindexStmt',
  'DeclareCursorStmt',
  'ExecuteStmt',
  'CallStmt',
  'DoStmt',
  'VariableShowStmt',
  'VariableSetStmt',
  'CommentStmt',
  'SecLabelStmt',
]);

/** DROP of these changes the tables a query cache depends on. */
const relationDrops = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_FOREIGN_TABLE', 'OBJECT_SEQUENCE']);

/** Session-level advisory lock functions: they leave a lock held on the session. */
const sessionLockFunctions = new Set([
  'pg_advisory_lock',
  'pg_advisory_lock_shared',
  'pg_try_advisory_lock',
  'pg_try_advisory_lock_shared',
  'pg_advisory_unlock',
  'pg_advisory_unlock_shared',
  'pg_advisory_unlock_all',
]);

/** `schema.name` of a RangeVar, as written (catalog and schema only when given). */
function rangeVarName(o: Obj): string {
  return [o.catalogname, o.schemaname, o.relname].filter((x) => typeof x === 'string' && x !== '').join('.');
}

/** The svals of a list of String nodes (`[{String: {sval}}]`), joined by dots. */
export function dottedName(list: unknown): string {
  if (!Array.isArray(list)) return '';
  return list.map((x) => (isObj(x) && isObj(x.String) ? String(x.String.sval ?? '') : '?')).join('.');
}

/** The value of a literal argument (through casts): a string, a boolean, a number, or undefined when not a literal. */
export function literalOf(v: unknown): string | boolean | number | undefined {
  if (!isObj(v)) return undefined;
  if (isObj(v.TypeCast)) return literalOf(v.TypeCast.arg);
  const c = v.A_Const;
  if (!isObj(c)) return undefined;
  if (isObj(c.sval)) return String(c.sval.sval ?? '');
  if (isObj(c.boolval)) return c.boolval.boolval === true;
  if (isObj(c.ival)) return Number(c.ival.ival ?? 0);
  return undefined;
}

const trueWords = new Set(['true', 't', 'on', 'yes', 'y', '1']);

class Walker {
  readonly f: TreeFacts = {
    dataChange: false,
    locking: false,
    selectInto: false,
    maxParam: 0,
    read: new Set(),
    written: new Set(),
    functions: new Set(),
    roleSetConfig: false,
    sessionStateCall: false,
    tempRelation: false,
  };

  rangeVar(o: Obj, s: Scope, written: boolean): void {
    if (typeof o.schemaname !== 'string' && s.ctes.has(String(o.relname))) return;
    const name = rangeVarName(o);
    if (written && s.exec) {
      this.f.written.add(name);
      if (o.relpersistence === 't' || (typeof o.schemaname === 'string' && o.schemaname.startsWith('pg_temp'))) this.f.tempRelation = true;
    } else {
      this.f.read.add(name);
    }
  }

  /** Any value of the tree. */
  walk(v: unknown, s: Scope): void {
    if (Array.isArray(v)) {
      for (const x of v) this.walk(x, s);
      return;
    }
    if (!isObj(v)) return;
    // An inline RangeVar (a field typed RangeVar carries no wrapper); Alias has no relname.
    if (typeof v.relname === 'string') {
      this.rangeVar(v, s, s.ddl);
      return;
    }
    this.fields(v, s, undefined);
  }

  /**
   * The fields of one object: wrappers (`{NodeName: fields}`) are dispatched by name; a query
   * body's WITH scopes its CTE names; `target` names the field holding a DML statement's target.
   */
  fields(o: Obj, s: Scope, target: string | undefined): void {
    let scope = s;
    if (isObj(o.withClause)) scope = this.withClause(o.withClause, s);
    if (Array.isArray(o.lockingClause) && o.lockingClause.length > 0) this.f.locking = true;
    if (isObj(o.intoClause)) {
      this.f.selectInto = true;
      if (isObj(o.intoClause.rel)) this.rangeVar(o.intoClause.rel, scope, true);
    }
    for (const [k, x] of Object.entries(o)) {
      if (k === 'withClause' || k === 'intoClause') continue;
      if (k === target && isObj(x)) {
        this.rangeVar(x, { ...scope, ctes: new Set() }, true);
        continue;
      }
      this.node(k, x, scope);
    }
  }

  withClause(w: Obj, s: Scope): Scope {
    const ctes = Array.isArray(w.ctes) ? w.ctes.map((c) => (isObj(c) && isObj(c.CommonTableExpr) ? c.CommonTableExpr : {})) : [];
    const names = ctes.map((c) => String(c.ctename ?? ''));
    const all = new Set([...s.ctes, ...names]);
    ctes.forEach((c, i) => {
      // A recursive WITH sees all its names; a plain one only the CTEs before this one.
      const visible = w.recursive ? all : new Set([...s.ctes, ...names.slice(0, i)]);
      this.walk(c.ctequery, { ...s, ctes: visible, ddl: false });
    });
    return { ...s, ctes: all };
  }

  /** A field or a wrapper named `k`. */
  node(k: string, x: unknown, s: Scope): void {
    if (dmlNodes.has(k) && isObj(x)) {
      this.f.dataChange = true;
      this.fields(x, { ...s, ddl: false }, 'relation');
      return;
    }
    switch (k) {
      case 'RangeVar':
        if (isObj(x)) this.rangeVar(x, s, s.ddl);
        return;
      case 'SelectStmt':
        if (isObj(x)) this.fields(x, { ...s, ddl: false }, undefined);
        return;
      case 'ParamRef':
        if (isObj(x) && s.params && typeof x.number === 'number') this.f.maxParam = Math.max(this.f.maxParam, x.number);
        return;
      case 'FuncCall':
        if (isObj(x)) this.funcCall(x, s);
        return;
      default:
        this.walk(x, s);
    }
  }

  funcCall(x: Obj, s: Scope): void {
    const name = dottedName(x.funcname);
    this.f.functions.add(name);
    const parts = name.split('.');
    const base = parts[parts.length - 1]!;
    const schema = parts.length > 1 ? parts[parts.length - 2] : 'pg_catalog';
    if (schema === 'pg_catalog' && s.exec) {
      const args = Array.isArray(x.args) ? x.args : [];
      if (base === 'set_config') {
        const setting = literalOf(args[0]);
        if (typeof setting !== 'string' || setting.toLowerCase() === 'role' || setting.toLowerCase() === 'session_authorization')
          this.f.roleSetConfig = true;
        const local = literalOf(args[2]);
        if (!(local === true || (typeof local === 'string' && trueWords.has(local.toLowerCase())) || local === 1))
          this.f.sessionStateCall = true;
      }
      if (sessionLockFunctions.has(base)) this.f.sessionStateCall = true;
    }
    this.walk(x, s);
  }
}

/** Whether EXPLAIN's options turn ANALYZE on (conservatively: any value that is not clearly false). */
export function explainAnalyzes(options: unknown): boolean {
  if (!Array.isArray(options)) return false;
  return options.some((o) => {
    const d = isObj(o) && isObj(o.DefElem) ? o.DefElem : undefined;
    if (!d || String(d.defname).toLowerCase() !== 'analyze') return false;
    return !isFalseArg(d.arg);
  });
}

/** Whether a DefElem's argument is a literal false (`false`, `off`, `no`, `0`). Absent means true. */
export function isFalseArg(arg: unknown): boolean {
  if (!isObj(arg)) return false;
  if (isObj(arg.String)) return ['false', 'off', 'no', 'f', 'n', '0'].includes(String(arg.String.sval).toLowerCase());
  if (isObj(arg.Integer)) return Number(arg.Integer.ival ?? 0) === 0;
  if (isObj(arg.Boolean)) return arg.Boolean.boolval !== true;
  const lit = literalOf(arg);
  return lit === false || lit === 0 || (typeof lit === 'string' && ['false', 'off', 'no', 'f', 'n', '0'].includes(lit.toLowerCase()));
}

/** Walks one top-level statement (`node` and its fields). */
export function collectFacts(node: string, f: Obj): TreeFacts {
  const w = new Walker();
  collectInto(w, node, f, true);
  return w.f;
}

function collectInto(w: Walker, node: string, f: Obj, exec: boolean): void {
  const base: Scope = { ctes: new Set(), ddl: !nonChangingRoots.has(node), exec, params: true };
  switch (node) {
    case 'ExplainStmt': {
      const q = isObj(f.query) ? Object.entries(f.query)[0] : undefined;
      if (q) collectInto(w, q[0], isObj(q[1]) ? q[1] : {}, exec && explainAnalyzes(f.options));
      return;
    }
    case 'DropStmt':
      if (relationDrops.has(String(f.removeType)) && Array.isArray(f.objects)) {
        for (const o of f.objects) if (isObj(o) && isObj(o.List)) w.f.written.add(dottedName(o.List.items));
      }
      return;
    case 'PrepareStmt':
      w.walk(f.query, { ...base, ddl: false, exec: false, params: false });
      return;
    case 'CopyStmt':
      if (isObj(f.relation)) w.rangeVar(f.relation, base, f.is_from === true);
      w.walk(f.query, { ...base, ddl: false });
      w.walk(f.whereClause, { ...base, ddl: false });
      return;
    case 'ViewStmt':
    case 'RuleStmt':
    case 'CreateFunctionStmt':
      // The view's query, the rule's actions and a function's SQL body do not run now.
      for (const [k, x] of Object.entries(f)) {
        if (k === 'query' || k === 'actions' || k === 'whereClause' || k === 'sql_body')
          w.walk(x, { ...base, ddl: false, exec: false, params: false });
        else w.node(k, x, base);
      }
      return;
    default:
      w.node(node, f, base);
  }
}
