/**
 * Client TLS settings (`ssl` / `sslMode`, as the design document names them), shared by every entry point. Browser-safe:
 * the Node transports turn the result into grpc-js credentials or Node TLS options; browsers only
 * accept full verification by their own certificate store.
 * @packageDocumentation
 */
import { HeliosDBError } from './errors.js';

/**
 * How the client checks the server's TLS certificate (as PostgreSQL's `sslmode`).
 * - `DISABLE`: no TLS (`grpc://`, `http://`).
 * - `REQUIRE`: encrypt, but accept any certificate (protects against passive eavesdropping only).
 * - `VERIFY_CA`: the certificate must chain to a trusted CA (`ssl.ca`, or the system's); any host name.
 * - `VERIFY_FULL`: the chain and the host name (the URL's host, or `ssl.servername`). The default for `grpcs://` and `https://`.
 */
export enum SSLMode {
  DISABLE = 'disable',
  REQUIRE = 'require',
  VERIFY_CA = 'verify-ca',
  VERIFY_FULL = 'verify-full',
}

/** The names of {@link SSLMode}'s values. */
export type SSLModeName = `${SSLMode}`;

/** PEM text or bytes. */
export type Pem = string | Uint8Array;

/** TLS options of the client (Node; a browser accepts only `mode: 'verify-full'`). */
export interface SslOptions {
  /** See {@link SSLMode}. Default `verify-full` when TLS is on. */
  mode?: SSLMode | SSLModeName;
  /** CA certificate(s) the server's certificate must chain to, PEM. Default the system's trusted CAs. */
  ca?: Pem | Pem[];
  /** Client certificate (chain), PEM, for servers that require mutual TLS. Default none. */
  cert?: Pem;
  /** The client certificate's private key, PEM. Default none. */
  key?: Pem;
  /** Host name to verify the certificate against (and send as SNI) instead of the URL's host. Default the URL's host. */
  servername?: string;
}

/** TLS as a transport applies it. */
export interface ResolvedTls {
  /** Whether the connection uses TLS at all. */
  enabled: boolean;
  mode: SSLModeName;
  ca: Pem[] | undefined;
  cert: Pem | undefined;
  key: Pem | undefined;
  servername: string | undefined;
}

const modes: readonly string[] = Object.values(SSLMode);

function configError(message: string): HeliosDBError {
  return new HeliosDBError(message, 'INVALID_CONFIG');
}

/**
 * Combines the URL's scheme (`grpcs://`, `https://` mean TLS), `ssl` and `sslMode` into one
 * setting. A `sslMode` other than `disable` turns TLS on for `grpc://` and `http://` URLs too;
 * `disable` with a TLS URL is a configuration error.
 */
export function resolveTls(url: string, ssl: SslOptions | boolean | undefined, sslMode: SSLMode | SSLModeName | undefined): ResolvedTls {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase() ?? '';
  const secureUrl = scheme === 'grpcs' || scheme === 'https';
  const opts: SslOptions = typeof ssl === 'object' && ssl !== null ? ssl : {};
  if (sslMode !== undefined && opts.mode !== undefined && sslMode !== opts.mode) {
    throw configError(`sslMode ${JSON.stringify(sslMode)} and ssl.mode ${JSON.stringify(opts.mode)} disagree: give one`);
  }
  const hasFiles = opts.ca !== undefined || opts.cert !== undefined || opts.key !== undefined || opts.servername !== undefined;
  let mode = (sslMode ?? opts.mode) as string | undefined;
  if (mode === undefined)
    mode = secureUrl || ssl === true || hasFiles ? SSLMode.VERIFY_FULL : ssl === false ? SSLMode.DISABLE : SSLMode.DISABLE;
  if (!modes.includes(mode)) throw configError(`sslMode must be one of ${modes.join(', ')}, got ${JSON.stringify(mode)}`);
  if (mode === SSLMode.DISABLE && (secureUrl || ssl === true || hasFiles)) {
    throw configError(
      `sslMode 'disable' contradicts ${secureUrl ? `the ${scheme}:// URL` : 'the ssl options'}: use grpc:// or http://, or another mode`,
    );
  }
  if ((opts.cert === undefined) !== (opts.key === undefined))
    throw configError('ssl.cert and ssl.key go together (a client certificate needs its private key)');
  return {
    enabled: mode !== SSLMode.DISABLE,
    mode: mode as SSLModeName,
    ca: opts.ca === undefined ? undefined : Array.isArray(opts.ca) ? opts.ca : [opts.ca],
    cert: opts.cert,
    key: opts.key,
    servername: opts.servername,
  };
}

/** Whether `host` (a URL's hostname) is this machine. */
export function isLoopbackHostname(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}
