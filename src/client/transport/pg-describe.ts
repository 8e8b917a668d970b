/**
 * Prepare's answer without running anything: a node-postgres Submittable that sends Parse (the
 * unnamed statement), Describe and Sync, and collects the parameter types PostgreSQL inferred and
 * the result columns. Node only.
 * @packageDocumentation
 */
import type pg from 'pg';

/** What PostgreSQL says of a statement. */
export interface StatementDescription {
  paramOids: number[];
  fields: pg.FieldDef[];
}

interface ProtocolConnection {
  parse(q: { text: string; name?: string; types?: number[] }): void;
  describe(q: { type: 'S' | 'P'; name?: string }): void;
  sync(): void;
  once(event: 'parameterDescription', fn: (m: { dataTypeIDs: number[] }) => void): void;
  removeListener(event: 'parameterDescription', fn: (m: { dataTypeIDs: number[] }) => void): void;
}

class DescribeStatement {
  private paramOids: number[] = [];
  private fields: pg.FieldDef[] = [];
  readonly done: Promise<StatementDescription>;
  private settle!: (err: unknown, d?: StatementDescription) => void;

  constructor(private readonly text: string) {
    this.done = new Promise((resolve, reject) => {
      this.settle = (err, d) => (err ? reject(err) : resolve(d as StatementDescription));
    });
  }

  private readonly onParams = (m: { dataTypeIDs: number[] }) => {
    this.paramOids = [...m.dataTypeIDs];
  };

  submit(connection: ProtocolConnection): void {
    connection.once('parameterDescription', this.onParams);
    connection.parse({ text: this.text });
    connection.describe({ type: 'S' });
    connection.sync();
  }

  handleRowDescription(msg: { fields: pg.FieldDef[] }): void {
    this.fields = msg.fields;
  }

  handleError(err: unknown, connection: ProtocolConnection): void {
    // node-postgres drops the query on an error: no ReadyForQuery reaches it (the Sync was sent).
    connection.removeListener('parameterDescription', this.onParams);
    this.settle(err);
  }

  handleReadyForQuery(connection: ProtocolConnection): void {
    connection.removeListener('parameterDescription', this.onParams);
    this.settle(undefined, { paramOids: this.paramOids, fields: this.fields });
  }

  handleDataRow(): void {}
  handleCommandComplete(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}
  handleCopyData(): void {}
}

/** Describes `sql` on `client` (it must be idle: one call at a time per connection). */
export function describeStatement(client: pg.Client, sql: string): Promise<StatementDescription> {
  const d = new DescribeStatement(sql);
  client.query(d as unknown as pg.Submittable);
  return d.done;
}
