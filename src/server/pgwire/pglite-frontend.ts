/**
 * Which frontend messages a client of the embedded engine's PostgreSQL port may send after
 * start-up (./pglite-session.ts). PGlite's one session is shared: a message it does not expect (an
 * unknown type, a password message after login) makes it lose protocol synchronization for every
 * client, so anything outside {@link forwardedTypes} ends that client with FATAL 08P01 and never
 * reaches the engine. A FunctionCall ('F', the legacy fast path) is answered with ERROR 0A000
 * instead of running: the engine answers it with a ReadyForQuery of its own, outside the accounting
 * that keeps each client's answers its own.
 * @packageDocumentation
 */

/** The types the port handles after start-up: Q P B E D C S H, COPY's d c f, X, and F (refused). */
export const forwardedTypes: ReadonlySet<number> = new Set([...'QPBEDCSHdcfXF'].map((c) => c.charCodeAt(0)));

/** The FATAL a message of type `type` outside {@link forwardedTypes} ends the client with. */
export function unexpectedMessage(type: number): { code: string; message: string } {
  const shown = type >= 0x20 && type < 0x7f ? `'${String.fromCharCode(type)}' (${type})` : String(type);
  return { code: '08P01', message: `invalid frontend message type ${shown}` };
}

/** What a FunctionCall gets. */
export const functionCallRefusal = {
  code: '0A000',
  message:
    "fast-path function calls (FunctionCall messages) are not supported on the embedded engine's PostgreSQL port; call the function in a query instead",
} as const;
