/**
 * The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, without channel
 * binding: the verifier HeliosDB keeps beside a user's scrypt hash (`SCRAM-SHA-256$iter:salt$
 * StoredKey:ServerKey`, PostgreSQL's own form), the client's two messages read, the server's two
 * written, the proof checked in constant time. Hand-written on node:crypto: the exchange is a few
 * HMACs, and no well-kept server-side SCRAM library without install scripts exists for Node.
 *
 * For a user name that has no verifier the exchange is played with a mock verifier whose salt
 * derives from the name and a server-held key (as PostgreSQL's `scram_mock_salt`), so the answers
 * are the same as for a real user until the proof fails.
 * @packageDocumentation
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** A parsed verifier. */
export interface ScramVerifier {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** The mechanism offered. */
export const scramMechanism = 'SCRAM-SHA-256';

/** Iterations of mock verifiers (those of stored ones: ../backend/login.ts, 4096). */
const mockIterations = 4096;

/** Parses `SCRAM-SHA-256$iter:salt$StoredKey:ServerKey`; undefined when malformed. */
export function parseScramVerifier(text: string | undefined): ScramVerifier | undefined {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text ?? '');
  if (!m) return undefined;
  const iterations = Number(m[1]);
  const salt = Buffer.from(m[2]!, 'base64');
  const storedKey = Buffer.from(m[3]!, 'base64');
  const serverKey = Buffer.from(m[4]!, 'base64');
  if (!(iterations > 0) || salt.length === 0 || storedKey.length !== 32 || serverKey.length !== 32) return undefined;
  return { iterations, salt, storedKey, serverKey };
}

/** A verifier no proof matches, with a salt that is the same for a name each time (per `mockKey`). */
export function mockScramVerifier(mockKey: Buffer, user: string): ScramVerifier {
  const salt = createHmac('sha256', mockKey).update(`scram mock salt\u0000${user}`).digest().subarray(0, 16);
  return { iterations: mockIterations, salt, storedKey: randomBytes(32), serverKey: randomBytes(32) };
}

/** A malformed SCRAM message (the connection ends with 08P01, as PostgreSQL does). */
export class ScramProtocolError extends Error {
  override readonly name = 'ScramProtocolError';
}

/** The state between the server-first and the client-final message. */
export interface ScramExchange {
  /** The server-first-message to send (AuthenticationSASLContinue). */
  serverFirst: string;
  /**
   * Checks the client-final-message: the server-final-message (AuthenticationSASLFinal) when the
   * proof matches, undefined otherwise. Throws {@link ScramProtocolError} when malformed.
   */
  finish(clientFinal: string): string | undefined;
}

const printable = /^[\x21-\x2b\x2d-\x7e]+$/;

/** Reads the client-first-message and starts the exchange with `verifier`. */
export function startScram(clientFirst: string, verifier: ScramVerifier): ScramExchange {
  // gs2-header: "n,," (no channel binding) or "y,," (the client could, and thinks the server cannot).
  const m = /^([ny]),(a=[^,]*)?,(.*)$/s.exec(clientFirst);
  if (!m) {
    if (clientFirst.startsWith('p='))
      throw new ScramProtocolError('channel binding is not offered: use SCRAM-SHA-256 without it (channel_binding=disable or prefer)');
    throw new ScramProtocolError('malformed SCRAM message (the GS2 header)');
  }
  if (m[2]) throw new ScramProtocolError('SCRAM authorization identities are not supported');
  const gs2Header = `${m[1]},,`;
  const clientFirstBare = m[3]!;
  // n=<user> (PostgreSQL ignores it: the start-up packet names the user), r=<nonce>, extensions.
  const attrs = clientFirstBare.split(',');
  if (!attrs[0]?.startsWith('n=') || !attrs[1]?.startsWith('r=')) throw new ScramProtocolError('malformed SCRAM client-first-message');
  if (attrs.slice(2).some((a) => a.startsWith('m='))) throw new ScramProtocolError('SCRAM extensions are not supported');
  const clientNonce = attrs[1].slice(2);
  if (!clientNonce || !printable.test(clientNonce)) throw new ScramProtocolError('malformed SCRAM nonce');
  const nonce = clientNonce + randomBytes(18).toString('base64');
  const serverFirst = `r=${nonce},s=${verifier.salt.toString('base64')},i=${verifier.iterations}`;
  return {
    serverFirst,
    finish(clientFinal) {
      const parts = clientFinal.split(',');
      const proofAt = parts.findIndex((p) => p.startsWith('p='));
      if (parts.length < 3 || !parts[0]!.startsWith('c=') || !parts[1]!.startsWith('r=') || proofAt !== parts.length - 1)
        throw new ScramProtocolError('malformed SCRAM client-final-message');
      if (Buffer.from(parts[0]!.slice(2), 'base64').toString('latin1') !== gs2Header)
        throw new ScramProtocolError('SCRAM channel binding does not match');
      if (parts[1]!.slice(2) !== nonce) throw new ScramProtocolError('SCRAM nonce does not match');
      const proof = Buffer.from(parts[proofAt]!.slice(2), 'base64');
      if (proof.length !== 32) throw new ScramProtocolError('malformed SCRAM proof');
      const withoutProof = parts.slice(0, proofAt).join(',');
      const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
      const clientSignature = createHmac('sha256', verifier.storedKey).update(authMessage).digest();
      const clientKey = Buffer.alloc(32);
      for (let i = 0; i < 32; i++) clientKey[i] = proof[i]! ^ clientSignature[i]!;
      const ok = timingSafeEqual(createHash('sha256').update(clientKey).digest(), verifier.storedKey);
      if (!ok) return undefined;
      return `v=${createHmac('sha256', verifier.serverKey).update(authMessage).digest('base64')}`;
    },
  };
}

/**
 * The key of mock salts: derived from the server key (PostgreSQL: the same across restarts and
 * servers sharing a database), random for the life of the process without one (the embedded engine).
 */
export function mockScramKey(serverKey: string | undefined): Buffer {
  if (!serverKey) return randomBytes(32);
  return createHmac('sha256', Buffer.from(serverKey, 'hex')).update('heliosdb scram mock key').digest();
}
