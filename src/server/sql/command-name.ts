/**
 * PostgreSQL's name for a parsed statement, spelled as the "SQL Commands" list of its reference
 * spells it (`CREATE INDEX`, `ALTER TABLE`, `SET TRANSACTION`, ...), for error messages.
 * @packageDocumentation
 */

/** A parse node's fields, as libpg-query's JSON gives them. */
export type PgFields = Record<string, unknown>;

/** The object names of PostgreSQL's ObjectType, as the command names spell them. */
const objectNames: Record<string, string> = {
  OBJECT_ACCESS_METHOD: 'ACCESS METHOD',
  OBJECT_AGGREGATE: 'AGGREGATE',
  OBJECT_AMOP: 'OPERATOR FAMILY',
  OBJECT_AMPROC: 'OPERATOR FAMILY',
  OBJECT_ATTRIBUTE: 'TYPE',
  OBJECT_CAST: 'CAST',
  OBJECT_COLUMN: 'TABLE',
  OBJECT_COLLATION: 'COLLATION',
  OBJECT_CONVERSION: 'CONVERSION',
  OBJECT_DATABASE: 'DATABASE',
  OBJECT_DEFAULT: 'TABLE',
  OBJECT_DEFACL: 'DEFAULT PRIVILEGES',
  OBJECT_DOMAIN: 'DOMAIN',
  OBJECT_DOMCONSTRAINT: 'DOMAIN',
  OBJECT_EVENT_TRIGGER: 'EVENT TRIGGER',
  OBJECT_EXTENSION: 'EXTENSION',
  OBJECT_FDW: 'FOREIGN DATA WRAPPER',
  OBJECT_FOREIGN_SERVER: 'SERVER',
  OBJECT_FOREIGN_TABLE: 'FOREIGN TABLE',
  OBJECT_FUNCTION: 'FUNCTION',
  OBJECT_INDEX: 'INDEX',
  OBJECT_LANGUAGE: 'LANGUAGE',
  OBJECT_LARGEOBJECT: 'LARGE OBJECT',
  OBJECT_MATVIEW: 'MATERIALIZED VIEW',
  OBJECT_OPCLASS: 'OPERATOR CLASS',
  OBJECT_OPERATOR: 'OPERATOR',
  OBJECT_OPFAMILY: 'OPERATOR FAMILY',
  OBJECT_PARAMETER_ACL: 'PARAMETER',
  OBJECT_POLICY: 'POLICY',
  OBJECT_PROCEDURE: 'PROCEDURE',
  OBJECT_PUBLICATION: 'PUBLICATION',
  OBJECT_PUBLICATION_NAMESPACE: 'PUBLICATION',
  OBJECT_PUBLICATION_REL: 'PUBLICATION',
  OBJECT_ROLE: 'ROLE',
  OBJECT_ROUTINE: 'ROUTINE',
  OBJECT_RULE: 'RULE',
  OBJECT_SCHEMA: 'SCHEMA',
  OBJECT_SEQUENCE: 'SEQUENCE',
  OBJECT_SUBSCRIPTION: 'SUBSCRIPTION',
  OBJECT_STATISTIC_EXT: 'STATISTICS',
  OBJECT_TABCONSTRAINT: 'TABLE',
  OBJECT_TABLE: 'TABLE',
  OBJECT_TABLESPACE: 'TABLESPACE',
  OBJECT_TRANSFORM: 'TRANSFORM',
  OBJECT_TRIGGER: 'TRIGGER',
  OBJECT_TSCONFIGURATION: 'TEXT SEARCH CONFIGURATION',
  OBJECT_TSDICTIONARY: 'TEXT SEARCH DICTIONARY',
  OBJECT_TSPARSER: 'TEXT SEARCH PARSER',
  OBJECT_TSTEMPLATE: 'TEXT SEARCH TEMPLATE',
  OBJECT_TYPE: 'TYPE',
  OBJECT_USER_MAPPING: 'USER MAPPING',
  OBJECT_VIEW: 'VIEW',
};

/** Statements whose name does not depend on their fields. */
const fixedNames: Record<string, string> = {
  InsertStmt: 'INSERT',
  DeleteStmt: 'DELETE',
  UpdateStmt: 'UPDATE',
  MergeStmt: 'MERGE',
  CreateSchemaStmt: 'CREATE SCHEMA',
  AlterCollationStmt: 'ALTER COLLATION',
  AlterDomainStmt: 'ALTER DOMAIN',
  AlterDefaultPrivilegesStmt: 'ALTER DEFAULT PRIVILEGES',
  CopyStmt: 'COPY',
  VariableShowStmt: 'SHOW',
  CreateStmt: 'CREATE TABLE',
  CreateTableSpaceStmt: 'CREATE TABLESPACE',
  DropTableSpaceStmt: 'DROP TABLESPACE',
  AlterTableSpaceOptionsStmt: 'ALTER TABLESPACE',
  CreateExtensionStmt: 'CREATE EXTENSION',
  AlterExtensionStmt: 'ALTER EXTENSION',
  AlterExtensionContentsStmt: 'ALTER EXTENSION',
  CreateFdwStmt: 'CREATE FOREIGN DATA WRAPPER',
  AlterFdwStmt: 'ALTER FOREIGN DATA WRAPPER',
  CreateForeignServerStmt: 'CREATE SERVER',
  AlterForeignServerStmt: 'ALTER SERVER',
  CreateForeignTableStmt: 'CREATE FOREIGN TABLE',
  CreateUserMappingStmt: 'CREATE USER MAPPING',
  AlterUserMappingStmt: 'ALTER USER MAPPING',
  DropUserMappingStmt: 'DROP USER MAPPING',
  ImportForeignSchemaStmt: 'IMPORT FOREIGN SCHEMA',
  CreatePolicyStmt: 'CREATE POLICY',
  AlterPolicyStmt: 'ALTER POLICY',
  CreateAmStmt: 'CREATE ACCESS METHOD',
  CreateTrigStmt: 'CREATE TRIGGER',
  CreateEventTrigStmt: 'CREATE EVENT TRIGGER',
  AlterEventTrigStmt: 'ALTER EVENT TRIGGER',
  CreatePLangStmt: 'CREATE LANGUAGE',
  CreateSeqStmt: 'CREATE SEQUENCE',
  AlterSeqStmt: 'ALTER SEQUENCE',
  CreateDomainStmt: 'CREATE DOMAIN',
  CreateOpClassStmt: 'CREATE OPERATOR CLASS',
  CreateOpFamilyStmt: 'CREATE OPERATOR FAMILY',
  AlterOpFamilyStmt: 'ALTER OPERATOR FAMILY',
  TruncateStmt: 'TRUNCATE',
  CommentStmt: 'COMMENT',
  SecLabelStmt: 'SECURITY LABEL',
  DeclareCursorStmt: 'DECLARE',
  ClosePortalStmt: 'CLOSE',
  IndexStmt: 'CREATE INDEX',
  CreateStatsStmt: 'CREATE STATISTICS',
  AlterStatsStmt: 'ALTER STATISTICS',
  DoStmt: 'DO',
  CallStmt: 'CALL',
  AlterOperatorStmt: 'ALTER OPERATOR',
  AlterTypeStmt: 'ALTER TYPE',
  RuleStmt: 'CREATE RULE',
  NotifyStmt: 'NOTIFY',
  ListenStmt: 'LISTEN',
  UnlistenStmt: 'UNLISTEN',
  CompositeTypeStmt: 'CREATE TYPE',
  CreateEnumStmt: 'CREATE TYPE',
  CreateRangeStmt: 'CREATE TYPE',
  AlterEnumStmt: 'ALTER TYPE',
  ViewStmt: 'CREATE VIEW',
  LoadStmt: 'LOAD',
  CreatedbStmt: 'CREATE DATABASE',
  AlterDatabaseStmt: 'ALTER DATABASE',
  AlterDatabaseRefreshCollStmt: 'ALTER DATABASE',
  AlterDatabaseSetStmt: 'ALTER DATABASE',
  DropdbStmt: 'DROP DATABASE',
  AlterSystemStmt: 'ALTER SYSTEM',
  ClusterStmt: 'CLUSTER',
  ExplainStmt: 'EXPLAIN',
  RefreshMatViewStmt: 'REFRESH MATERIALIZED VIEW',
  CheckPointStmt: 'CHECKPOINT',
  DiscardStmt: 'DISCARD',
  LockStmt: 'LOCK',
  ConstraintsSetStmt: 'SET CONSTRAINTS',
  ReindexStmt: 'REINDEX',
  CreateConversionStmt: 'CREATE CONVERSION',
  CreateCastStmt: 'CREATE CAST',
  CreateTransformStmt: 'CREATE TRANSFORM',
  PrepareStmt: 'PREPARE',
  ExecuteStmt: 'EXECUTE',
  DeallocateStmt: 'DEALLOCATE',
  DropOwnedStmt: 'DROP OWNED',
  ReassignOwnedStmt: 'REASSIGN OWNED',
  AlterTSDictionaryStmt: 'ALTER TEXT SEARCH DICTIONARY',
  AlterTSConfigurationStmt: 'ALTER TEXT SEARCH CONFIGURATION',
  CreatePublicationStmt: 'CREATE PUBLICATION',
  AlterPublicationStmt: 'ALTER PUBLICATION',
  CreateSubscriptionStmt: 'CREATE SUBSCRIPTION',
  AlterSubscriptionStmt: 'ALTER SUBSCRIPTION',
  DropSubscriptionStmt: 'DROP SUBSCRIPTION',
};

const transactionNames: Record<string, string> = {
  TRANS_STMT_BEGIN: 'BEGIN',
  TRANS_STMT_START: 'START TRANSACTION',
  TRANS_STMT_COMMIT: 'COMMIT',
  TRANS_STMT_ROLLBACK: 'ROLLBACK',
  TRANS_STMT_SAVEPOINT: 'SAVEPOINT',
  TRANS_STMT_RELEASE: 'RELEASE SAVEPOINT',
  TRANS_STMT_ROLLBACK_TO: 'ROLLBACK TO SAVEPOINT',
  TRANS_STMT_PREPARE: 'PREPARE TRANSACTION',
  TRANS_STMT_COMMIT_PREPARED: 'COMMIT PREPARED',
  TRANS_STMT_ROLLBACK_PREPARED: 'ROLLBACK PREPARED',
};

/**
 * The first `n` words of a statement's text, lower case, after leading blanks, comments and
 * opening parentheses: the parse tree does not tell aliases apart (`END` from `COMMIT`, `DROP
 * USER` from `DROP ROLE`).
 */
export function leadingWords(text: string, n: number): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < text.length && words.length < n) {
    const c = text[i]!;
    if (c === '-' && text[i + 1] === '-') {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? text.length : nl + 1;
    } else if (c === '/' && text[i + 1] === '*') {
      let depth = 1;
      i += 2;
      while (i < text.length && depth > 0) {
        if (text[i] === '/' && text[i + 1] === '*') {
          depth++;
          i += 2;
        } else if (text[i] === '*' && text[i + 1] === '/') {
          depth--;
          i += 2;
        } else i++;
      }
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(text.slice(i, i + 64))!;
      words.push(m[0].toLowerCase());
      i += m[0].length;
    } else if (/[\s(]/.test(c)) {
      i++;
    } else {
      break;
    }
  }
  return words;
}

function objectName(type: unknown): string {
  return (typeof type === 'string' && objectNames[type]) || 'OBJECT';
}

/** The command name of a statement: node name, its fields, and its text (for aliases). */
export function commandName(node: string, f: PgFields, text: string): string {
  const fixed = fixedNames[node];
  if (fixed) return fixed;
  switch (node) {
    case 'SelectStmt':
      if (f.intoClause) return 'SELECT INTO';
      return f.valuesLists && !f.withClause ? 'VALUES' : 'SELECT';
    case 'TransactionStmt': {
      const first = leadingWords(text, 1)[0];
      if (f.kind === 'TRANS_STMT_COMMIT' && first === 'end') return 'END';
      if (f.kind === 'TRANS_STMT_ROLLBACK' && first === 'abort') return 'ABORT';
      return transactionNames[f.kind as string] ?? 'BEGIN';
    }
    case 'VariableSetStmt':
      if (f.kind === 'VAR_RESET' || f.kind === 'VAR_RESET_ALL') return 'RESET';
      if (f.kind === 'VAR_SET_MULTI') return 'SET TRANSACTION'; // TRANSACTION [SNAPSHOT], SESSION CHARACTERISTICS
      if (f.name === 'role') return 'SET ROLE';
      if (f.name === 'session_authorization') return 'SET SESSION AUTHORIZATION';
      return 'SET';
    case 'AlterTableStmt':
    case 'AlterTableMoveAllStmt':
      return `ALTER ${objectName(f.objtype)}`;
    case 'GrantStmt':
    case 'GrantRoleStmt':
      return f.is_grant ? 'GRANT' : 'REVOKE';
    case 'CreateRoleStmt':
      return f.stmt_type === 'ROLESTMT_USER' ? 'CREATE USER' : f.stmt_type === 'ROLESTMT_GROUP' ? 'CREATE GROUP' : 'CREATE ROLE';
    case 'AlterRoleStmt':
    case 'AlterRoleSetStmt':
    case 'DropRoleStmt': {
      const [verb, what] = leadingWords(text, 2);
      const kind = what === 'user' ? 'USER' : what === 'group' ? 'GROUP' : 'ROLE';
      return `${verb === 'drop' ? 'DROP' : 'ALTER'} ${kind}`;
    }
    case 'DefineStmt':
      return `CREATE ${objectName(f.kind)}`;
    case 'DropStmt':
      return `DROP ${objectName(f.removeType)}`;
    case 'FetchStmt':
      return f.ismove ? 'MOVE' : 'FETCH';
    case 'CreateFunctionStmt':
      return f.is_procedure ? 'CREATE PROCEDURE' : 'CREATE FUNCTION';
    case 'AlterFunctionStmt':
      return `ALTER ${objectName(f.objtype)}`;
    case 'RenameStmt': {
      const t = f.renameType === 'OBJECT_COLUMN' || f.renameType === 'OBJECT_TABCONSTRAINT' ? f.relationType : f.renameType;
      return `ALTER ${objectName(t)}`;
    }
    case 'AlterObjectDependsStmt':
    case 'AlterObjectSchemaStmt':
    case 'AlterOwnerStmt':
      return `ALTER ${objectName(f.objectType)}`;
    case 'VacuumStmt':
      return f.is_vacuumcmd ? 'VACUUM' : 'ANALYZE';
    case 'CreateTableAsStmt':
      return f.objtype === 'OBJECT_MATVIEW' ? 'CREATE MATERIALIZED VIEW' : 'CREATE TABLE AS';
    default:
      // A node this list does not know (a newer grammar): the statement's first words.
      return leadingWords(text, 2).join(' ').toUpperCase() || node.replace(/Stmt$/, '').toUpperCase();
  }
}
