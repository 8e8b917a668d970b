/**
 * The facets of one parsed statement (see {@link StatementInfo}): what it is, whether it only
 * reads, its transaction control, and what must run outside a transaction block, checked against
 * PostgreSQL 15 (`PreventInTransactionBlock` and the reference's "cannot be executed inside a
 * transaction block").
 * @packageDocumentation
 */
import { effectFunctions } from '@heliosdb/client/wire';
import { commandName, type PgFields } from './command-name.js';
import { collectFacts, explainAnalyzes, isFalseArg, type TreeFacts } from './tree-facts.js';
import type { StatementInfo, TransactionControl } from './types.js';

const isObj = (v: unknown): v is PgFields => !!v && typeof v === 'object' && !Array.isArray(v);

const transactionKinds: Record<string, TransactionControl> = {
  TRANS_STMT_BEGIN: 'begin',
  TRANS_STMT_START: 'begin',
  TRANS_STMT_COMMIT: 'commit',
  TRANS_STMT_ROLLBACK: 'rollback',
  TRANS_STMT_SAVEPOINT: 'savepoint',
  TRANS_STMT_RELEASE: 'release',
  TRANS_STMT_ROLLBACK_TO: 'rollbackTo',
  TRANS_STMT_PREPARE: 'prepareTransaction',
  TRANS_STMT_COMMIT_PREPARED: 'commitPrepared',
  TRANS_STMT_ROLLBACK_PREPARED: 'rollbackPrepared',
};

/** Settings that are the current transaction's characteristics (SET of them is SET TRANSACTION). */
const transactionSettings = new Set(['transaction_read_only', 'transaction_isolation', 'transaction_deferrable']);
/** Settings SET SESSION CHARACTERISTICS AS TRANSACTION sets. */
const sessionCharacteristics = new Set([
  'default_transaction_read_only',
  'default_transaction_isolation',
  'default_transaction_deferrable',
]);
const identitySettings = new Set(['role', 'session_authorization']);

/** CURSOR_OPT_HOLD of PostgreSQL's parsenodes.h: DECLARE ... WITH HOLD. */
const cursorOptHold = 0x0020;

/** The DefElem named `name` in a list of options, if any. */
function option(options: unknown, name: string): PgFields | undefined {
  if (!Array.isArray(options)) return undefined;
  for (const o of options) if (isObj(o) && isObj(o.DefElem) && String(o.DefElem.defname).toLowerCase() === name) return o.DefElem;
  return undefined;
}

/** Whether a boolean option is on: absent gives `absent`; present without a value is true. */
function optionOn(options: unknown, name: string, absent: boolean): boolean {
  const d = option(options, name);
  return d ? !isFalseArg(d.arg) : absent;
}

function settingName(f: PgFields): string {
  return typeof f.name === 'string' ? f.name.toLowerCase() : '';
}

function transactionControlOf(node: string, f: PgFields): TransactionControl | undefined {
  if (node === 'TransactionStmt') return transactionKinds[String(f.kind)];
  if (node !== 'VariableSetStmt') return undefined;
  const name = settingName(f);
  if (f.kind === 'VAR_SET_MULTI') {
    if (name === 'transaction' || name === 'transaction snapshot') return 'setTransaction';
    if (name === 'session characteristics') return 'setSessionCharacteristics';
    return undefined;
  }
  if (transactionSettings.has(name)) return 'setTransaction';
  if (sessionCharacteristics.has(name)) return 'setSessionCharacteristics';
  return undefined;
}

function outsideTransactionBlock(node: string, f: PgFields): boolean {
  switch (node) {
    case 'VacuumStmt':
      return f.is_vacuumcmd === true; // ANALYZE alone runs in a block
    case 'CreatedbStmt':
    case 'DropdbStmt':
    case 'CreateTableSpaceStmt':
    case 'DropTableSpaceStmt':
    case 'AlterSystemStmt':
    case 'CallStmt': // a procedure may COMMIT
    case 'DoStmt': // a DO block may COMMIT
    case 'DropSubscriptionStmt': // refused in a block when the subscription has a slot, which only the catalog tells
    case 'ReindexStmt': // CONCURRENTLY, SCHEMA/SYSTEM/DATABASE, and partitioned tables or indexes (catalog): all forms
    case 'ClusterStmt': // without a table, or of a partitioned one (catalog)
      return true;
    case 'AlterDatabaseStmt':
      return option(f.options, 'tablespace') !== undefined;
    case 'IndexStmt':
      return f.concurrent === true;
    case 'DropStmt':
      return f.concurrent === true;
    case 'AlterTableStmt':
      return (Array.isArray(f.cmds) ? f.cmds : []).some((c) => {
        const cmd = isObj(c) && isObj(c.AlterTableCmd) ? c.AlterTableCmd : undefined;
        const part = cmd && isObj(cmd.def) && isObj(cmd.def.PartitionCmd) ? cmd.def.PartitionCmd : undefined;
        return cmd?.subtype === 'AT_DetachPartition' && part?.concurrent === true;
      });
    case 'CreateSubscriptionStmt':
      // create_slot defaults to true, and to false with connect = false.
      return optionOn(f.options, 'create_slot', optionOn(f.options, 'connect', true));
    case 'AlterSubscriptionStmt':
      switch (f.kind) {
        case 'ALTER_SUBSCRIPTION_REFRESH':
          return true;
        case 'ALTER_SUBSCRIPTION_SET_PUBLICATION':
        case 'ALTER_SUBSCRIPTION_ADD_PUBLICATION':
        case 'ALTER_SUBSCRIPTION_DROP_PUBLICATION':
          return optionOn(f.options, 'refresh', true);
        case 'ALTER_SUBSCRIPTION_OPTIONS':
          // Newer releases refuse changing these in a block.
          return option(f.options, 'failover') !== undefined || option(f.options, 'two_phase') !== undefined;
        default:
          return false;
      }
    case 'DiscardStmt':
      return f.target === 'DISCARD_ALL';
    case 'TransactionStmt':
      return f.kind === 'TRANS_STMT_COMMIT_PREPARED' || f.kind === 'TRANS_STMT_ROLLBACK_PREPARED';
    default:
      return false;
  }
}

function sessionState(node: string, f: PgFields, facts: TreeFacts): boolean {
  if (facts.tempRelation || facts.sessionStateCall) return true;
  switch (node) {
    case 'VariableSetStmt': {
      if (f.kind === 'VAR_SET_MULTI') return settingName(f) === 'session characteristics';
      if (f.is_local === true) return false;
      return !transactionSettings.has(settingName(f));
    }
    case 'PrepareStmt':
    case 'DeallocateStmt':
    case 'ListenStmt':
    case 'UnlistenStmt':
    case 'LoadStmt':
    case 'DiscardStmt':
      return true;
    case 'DeclareCursorStmt':
      return (Number(f.options ?? 0) & cursorOptHold) !== 0;
    case 'CreateFunctionStmt':
    case 'DefineStmt':
    case 'CreateDomainStmt':
    case 'CreateEnumStmt':
    case 'CreateRangeStmt': {
      // Objects created in pg_temp live as long as the session.
      const names = f.funcname ?? f.defnames ?? f.domainname ?? f.typeName;
      const first = Array.isArray(names) && isObj(names[0]) && isObj(names[0].String) ? String(names[0].String.sval ?? '') : '';
      return first.startsWith('pg_temp');
    }
    default:
      return false;
  }
}

function identityChange(node: string, f: PgFields, facts: TreeFacts): boolean {
  if (facts.roleSetConfig) return true;
  if (node === 'VariableSetStmt') return identitySettings.has(settingName(f));
  return node === 'DiscardStmt' && f.target === 'DISCARD_ALL';
}

function callsEffectFunction(facts: TreeFacts): boolean {
  for (const name of facts.functions) if (effectFunctions.has(name.toLowerCase().replace(/^pg_catalog\./, ''))) return true;
  return false;
}

function readOnly(node: string, f: PgFields, facts: TreeFacts): boolean {
  switch (node) {
    case 'SelectStmt':
      return !facts.dataChange && !facts.locking && !facts.selectInto && !callsEffectFunction(facts);
    case 'VariableShowStmt':
      return true;
    case 'ExplainStmt': {
      if (!explainAnalyzes(f.options)) return true;
      const q = isObj(f.query) ? Object.entries(f.query)[0] : undefined;
      return !!q && readOnly(q[0], isObj(q[1]) ? q[1] : {}, facts);
    }
    default:
      return false;
  }
}

/** The facets of one statement: its node name, fields and own text. */
export function describeStatement(node: string, f: PgFields, text: string): StatementInfo {
  const facts = collectFacts(node, f);
  const info: StatementInfo = {
    node,
    command: commandName(node, f, text),
    text,
    readOnly: readOnly(node, f, facts),
    outsideTransactionBlock: outsideTransactionBlock(node, f),
    sessionState: sessionState(node, f, facts),
    identityChange: identityChange(node, f, facts),
    maxParam: facts.maxParam,
    tables: { read: [...facts.read], written: [...facts.written] },
    functions: [...facts.functions],
  };
  const tc = transactionControlOf(node, f);
  if (tc) info.transactionControl = tc;
  if (node === 'TransactionStmt' && f.chain === true) info.chain = true;
  if (node === 'CopyStmt') info.copy = { from: f.is_from === true, client: typeof f.filename !== 'string', program: f.is_program === true };
  if (node === 'ListenStmt') info.listen = 'listen';
  if (node === 'UnlistenStmt') info.listen = 'unlisten';
  if (info.listen && typeof f.conditionname === 'string') info.listenChannel = f.conditionname;
  if (node === 'NotifyStmt' || facts.functions.has('pg_notify') || facts.functions.has('pg_catalog.pg_notify')) info.notify = true;
  if (node === 'VariableSetStmt' && settingName(f) === 'client_encoding' && f.kind === 'VAR_SET_VALUE' && !isUtf8Name(f.args))
    info.encodingChange = true;
  return info;
}

/** Whether SET's value list is the one name of UTF-8 (as PostgreSQL spells it: UTF8, UTF-8, Unicode). */
function isUtf8Name(args: unknown): boolean {
  if (!Array.isArray(args) || args.length !== 1) return false;
  const c = isObj(args[0]) ? args[0].A_Const : undefined;
  const v = isObj(c) && isObj(c.sval) ? c.sval.sval : undefined;
  return typeof v === 'string' && /^(utf-?8|unicode)$/i.test(v);
}
