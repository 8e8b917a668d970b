/**
 * The server's secrets as callers hold them: API keys (`hdb_<id>_<secret>`) and session tokens
 * (`hdbs_...`), stored only as SHA-256 digests and compared in constant time.
 * @packageDocumentation
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** The prefix of API keys (`hdb_<16 hex id>_<secret>`). */
export const apiKeyPrefix = 'hdb_';
/** The prefix of session tokens. */
export const sessionTokenPrefix = 'hdbs_';

/** SHA-256 of a high-entropy secret (API key, session token), hex. */
export function digest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Constant-time equality of two hex digests. */
export function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

/** Splits an API key into its public id; undefined when it does not look like one. */
export function apiKeyIdOf(key: string): string | undefined {
  const m = /^hdb_([0-9a-f]{16})_[A-Za-z0-9_-]{43}$/.exec(key);
  return m?.[1];
}

/** A new random session token. */
export function newSessionToken(): string {
  return sessionTokenPrefix + randomBytes(32).toString('base64url');
}
