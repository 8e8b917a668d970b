/**
 * The accounting of a pg-port client's exchanges with the embedded engine (./pglite-session.ts):
 * each Query, and each run of extended-protocol messages up to its Sync, is one exchange, ended by
 * the engine's ReadyForQuery. When the session layer replaced a refused message with a statement
 * that raises the refusal, the completions of that statement are not the client's: they are
 * counted here and dropped, so the client gets answers for what it sent only.
 * @packageDocumentation
 */

/** One exchange in flight (a Query, or extended messages up to their Sync). */
export interface Exchange {
  /** A DEALLOCATE ALL played with Close messages: their CloseComplete answers become this tag. */
  replaceTag?: string;
  /** ParseComplete / BindComplete the engine sends before the injected refusal's, when one was injected. */
  swallowParseAfter?: number;
  swallowBindAfter?: number;
  /** Parse and Bind messages sent. */
  sentParses: number;
  sentBinds: number;
  /** ParseComplete and BindComplete received. */
  gotParses: number;
  gotBinds: number;
  failed: boolean;
}

/** A new exchange, nothing sent yet. */
export const newExchange = (): Exchange => ({ sentParses: 0, sentBinds: 0, gotParses: 0, gotBinds: 0, failed: false });

/**
 * Counts a ParseComplete, BindComplete or CloseComplete of `ex` (the oldest exchange in flight);
 * false when it is not the client's (an injected refusal's, or a Close that plays DEALLOCATE ALL).
 */
export function isClientsCompletion(ex: Exchange | undefined, type: number): boolean {
  if (!ex) return true;
  if (type === 0x31 /* 1 */) {
    if (ex.swallowParseAfter === ex.gotParses && !ex.failed) {
      ex.swallowParseAfter = undefined;
      return false;
    }
    ex.gotParses++;
    return true;
  }
  if (type === 0x32 /* 2 */) {
    if (ex.swallowBindAfter === ex.gotBinds && !ex.failed) {
      ex.swallowBindAfter = undefined;
      return false;
    }
    ex.gotBinds++;
    return true;
  }
  return !(type === 0x33 /* 3 */ && ex.replaceTag);
}

/** Whether an ErrorResponse is FATAL or PANIC: the engine ends the session. */
export function isFatal(msg: Buffer): boolean {
  let p = 5;
  while (p < msg.length && msg[p] !== 0) {
    const end = msg.indexOf(0, p + 1);
    if (end < 0) return false;
    if (msg[p] === 0x53 /* S */) {
      const sev = msg.toString('utf8', p + 1, end);
      return sev === 'FATAL' || sev === 'PANIC';
    }
    p = end + 1;
  }
  return false;
}
