/**
 * TLS for both listeners: the server's certificate and key, and optionally a CA whose client
 * certificates every connection must present (mutual TLS). Each option is a file path or the PEM
 * text itself.
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';

/** Loaded TLS material. */
export interface ServerTls {
  cert: Buffer;
  key: Buffer;
  /** Client certificates must chain to this CA (mutual TLS); undefined: none are asked for. */
  clientCa: Buffer | undefined;
}

function pem(value: string, what: string): Buffer {
  if (value.includes('-----BEGIN')) return Buffer.from(value);
  try {
    return readFileSync(value);
  } catch (e) {
    throw new Error(`cannot read the ${what} ${value}: ${(e as Error).message}`);
  }
}

/** Reads the TLS options; undefined when TLS is off. */
export function loadServerTls(opts: { tlsCert?: string; tlsKey?: string; tlsClientCa?: string }): ServerTls | undefined {
  if (!opts.tlsCert && !opts.tlsKey) {
    if (opts.tlsClientCa) throw new Error('--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)');
    return undefined;
  }
  if (!opts.tlsCert || !opts.tlsKey) throw new Error('TLS needs both --tls-cert and --tls-key');
  const out: ServerTls = {
    cert: pem(opts.tlsCert, 'TLS certificate'),
    key: pem(opts.tlsKey, 'TLS key'),
    clientCa: opts.tlsClientCa ? pem(opts.tlsClientCa, 'client CA') : undefined,
  };
  // Fail at start-up, not at the first handshake, when the files do not fit together.
  tls.createSecureContext({ cert: out.cert, key: out.key, ca: out.clientCa });
  return out;
}

/** Longest TLS handshake on both listeners, ms; a client still in its handshake then is dropped. */
export const tlsHandshakeTimeoutMs = 10_000;

/**
 * grpc-js credentials with the HTTP listener's TLS settings. `createSsl` offers no handshake
 * limit (Node's default is 120 s) nor a minimum version, so this subclasses grpc-js's public
 * abstract `ServerCredentials`: its first argument is what grpc-js passes to
 * `http2.createSecureServer`, its second the secure context.
 */
class HeliosServerCredentials extends grpc.ServerCredentials {
  constructor(t: ServerTls) {
    super(
      {
        minVersion: 'TLSv1.2',
        requestCert: t.clientCa !== undefined,
        rejectUnauthorized: t.clientCa !== undefined,
        handshakeTimeout: tlsHandshakeTimeoutMs,
      },
      { cert: t.cert, key: t.key, ca: t.clientCa },
    );
  }

  override _equals(other: grpc.ServerCredentials): boolean {
    return this === other;
  }
}

/** Credentials of the native gRPC listener (TLS 1.2 or newer, a 10 s handshake limit). */
export function grpcServerCredentials(t: ServerTls | undefined): grpc.ServerCredentials {
  if (!t) return grpc.ServerCredentials.createInsecure();
  return new HeliosServerCredentials(t);
}

/** Options of the HTTP listener's TLS server (h2 and HTTP/1.1 by ALPN; a 10 s handshake limit). */
export function httpTlsOptions(t: ServerTls): tls.TlsOptions {
  return {
    cert: t.cert,
    key: t.key,
    ca: t.clientCa,
    minVersion: 'TLSv1.2',
    requestCert: t.clientCa !== undefined,
    rejectUnauthorized: t.clientCa !== undefined,
    ALPNProtocols: ['h2', 'http/1.1'],
    handshakeTimeout: tlsHandshakeTimeoutMs,
  };
}

/** The subject common name of a peer certificate (the first, if several). */
export function commonNameOf(cert: PeerCertificate | undefined | null): string | undefined {
  const cn = (cert?.subject as unknown as Record<string, string | string[]> | undefined)?.CN;
  const v = Array.isArray(cn) ? cn[0] : cn;
  return typeof v === 'string' && v !== '' ? v : undefined;
}
