/**
 * Idempotency keys: what lets a write be sent again without ever applying twice (the server
 * records each key with its outcome). Browser-safe.
 * @packageDocumentation
 */

/** A fresh idempotency key: 128 random bits, base64url. */
export function newIdempotencyKey(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
