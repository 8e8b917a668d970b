/**
 * Names of prepared statements and portals, one namespace per client on the embedded engine's
 * one session: every name a client gives is mapped to a short one of its own (`h<client>s<n>`,
 * `h<client>p<n>`), so two clients' `P_1` never meet. The unnamed statement and portal keep
 * their empty name: a client holds the session from its first message until it is idle, and they
 * do not outlive that in the protocol's ordinary use.
 * @packageDocumentation
 */
import { cstr, cstringAt, message, ProtocolViolation } from './messages.js';

/** See the file comment. */
export class StatementNames {
  private readonly statements = new Map<string, string>();
  private readonly portals = new Map<string, string>();
  private n = 0;

  constructor(private readonly clientId: number) {}

  /** The engine's name of a client's statement (made on first use). */
  statement(name: string): string {
    if (name === '') return '';
    let s = this.statements.get(name);
    if (!s) {
      s = `h${this.clientId}s${++this.n}`;
      this.statements.set(name, s);
    }
    return s;
  }

  /** The engine's name of a client's portal (made on first use). */
  portal(name: string): string {
    if (name === '') return '';
    let p = this.portals.get(name);
    if (!p) {
      p = `h${this.clientId}p${++this.n}`;
      this.portals.set(name, p);
    }
    return p;
  }

  /** Forgets a statement name (after Close). */
  forgetStatement(name: string): string | undefined {
    const s = this.statements.get(name);
    this.statements.delete(name);
    return s;
  }

  /** Forgets every statement name (after DEALLOCATE ALL). */
  forgetStatements(): void {
    this.statements.clear();
  }

  /** Forgets every portal (they end with their transaction). */
  forgetPortals(): void {
    this.portals.clear();
  }
}

/**
 * `msg` (a Parse, Bind, Describe, Close or Execute) with its names mapped; other messages as they are.
 * Returns the engine's statement name a Parse or Close('S') names, for the caller's registry.
 */
export function renameMessage(msg: Buffer, names: StatementNames): { msg: Buffer; statement?: string; closes?: boolean } {
  const type = String.fromCharCode(msg[0]!);
  switch (type) {
    case 'P': {
      const [name, p] = cstringAt(msg, 5);
      if (name === '') return { msg, statement: '' };
      const mapped = names.statement(name);
      return { msg: message('P', Buffer.concat([cstr(mapped), msg.subarray(p)])), statement: mapped };
    }
    case 'B': {
      const [portal, p1] = cstringAt(msg, 5);
      const [stmt, p2] = cstringAt(msg, p1);
      if (portal === '' && stmt === '') return { msg };
      return { msg: message('B', Buffer.concat([cstr(names.portal(portal)), cstr(names.statement(stmt)), msg.subarray(p2)])) };
    }
    case 'D':
    case 'C': {
      if (msg.length < 7) throw new ProtocolViolation(`malformed ${type === 'D' ? 'Describe' : 'Close'} message`);
      const kind = String.fromCharCode(msg[5]!);
      if (kind !== 'S' && kind !== 'P')
        throw new ProtocolViolation(`invalid ${type === 'D' ? 'Describe' : 'Close'} target ${JSON.stringify(kind)}`);
      const [name] = cstringAt(msg, 6);
      if (name === '') return { msg };
      let mapped: string;
      if (kind === 'S') mapped = type === 'C' ? (names.forgetStatement(name) ?? `h0x${name.length}`) : names.statement(name);
      else mapped = names.portal(name);
      const out = message(type, Buffer.concat([Buffer.from(kind), cstr(mapped)]));
      return type === 'C' && kind === 'S' ? { msg: out, statement: mapped, closes: true } : { msg: out };
    }
    case 'E': {
      const [portal, p] = cstringAt(msg, 5);
      if (portal === '') return { msg };
      return { msg: message('E', Buffer.concat([cstr(names.portal(portal)), msg.subarray(p)])) };
    }
    default:
      return { msg };
  }
}
