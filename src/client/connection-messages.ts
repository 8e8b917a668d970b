/**
 * Connection failures explained in the user's terms: the text of a low-level failure (OpenSSL's,
 * Node's, grpc-js's) turned into what went wrong and what to change, shared by the native gRPC
 * pool and the error mapping of every transport. Browser-safe.
 * @packageDocumentation
 */

/** What a failed connection attempt means. */
export interface ConnectFailure {
  /** The explanation, to follow `could not connect to <url>: `. */
  why: string;
  /** The error code: `TLS_ERROR` (retrying will not help) or `CONNECTION_FAILED`. */
  code: 'TLS_ERROR' | 'CONNECTION_FAILED';
}

/** Signs, in OpenSSL's and Node's words, that the other side answered a TLS handshake in plaintext. */
const notTls = /wrong version number|WRONG_VERSION_NUMBER|packet length too long|unknown protocol|http request|record layer failure/i;
/** Signs that the server's certificate was refused. */
const badCertificate =
  /certificate|CERT_|self[- ]signed|SELF_SIGNED|unable to get (local )?issuer|UNABLE_TO_VERIFY|Hostname\/IP does not match|ERR_TLS_CERT_ALTNAME_INVALID/i;

/** The essential part of a failure text (grpc-js wraps it: `No connection established. Last error: Error: ...`). */
export function lastErrorOf(details: string): string {
  const m = /Last error: (?:Error: )?([\s\S]*?)(?:\. Resolution note:[\s\S]*)?$/.exec(details);
  const text = (m ? m[1] : details).trim();
  // OpenSSL's `80AC...:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/...`.
  const ssl = /error:[0-9A-F]+:SSL routines:[^:]*:([^:]+)/.exec(text);
  return ssl ? ssl[1] : text.split('\n')[0];
}

/**
 * The reason TLS failed, in plain words, from an error code (`ERR_SSL_WRONG_VERSION_NUMBER`) or
 * message; undefined when it does not look like a TLS failure.
 */
export function explainTls(text: string): string | undefined {
  if (notTls.test(text)) {
    return 'TLS failed because the server does not speak TLS (it answered the TLS handshake in plaintext): use grpc:// or http:// for a server without TLS, or start the server with --tls-cert and --tls-key';
  }
  if (badCertificate.test(text)) {
    return `TLS failed: the server's certificate was not accepted (${lastErrorOf(text)}); pass the certificate authority that signed it as ssl: { ca }, or check that the URL's host name is one the certificate names`;
  }
  return undefined;
}

/**
 * Why a native gRPC connection attempt failed, from grpc-js's last error, for a URL with or
 * without TLS. Undefined details (nothing known) say only that the attempt failed.
 */
export function explainConnectFailure(details: string | undefined, tls: boolean): ConnectFailure {
  if (!details) return { why: 'the connection attempt failed (the server is down or refuses connections)', code: 'CONNECTION_FAILED' };
  const last = lastErrorOf(details);
  if (tls) {
    const why = explainTls(details);
    if (why) return { why, code: 'TLS_ERROR' };
  }
  if (/ECONNREFUSED/.test(details))
    return { why: `nothing accepts connections there (${last}): the server is down, or the port is wrong`, code: 'CONNECTION_FAILED' };
  if (/ENOTFOUND|EAI_AGAIN|getaddrinfo/.test(details))
    return { why: `the host name does not resolve (${last})`, code: 'CONNECTION_FAILED' };
  if (!tls && /Failed to connect|ECONNRESET|socket hang up|closed/i.test(last)) {
    return {
      why: `the server accepted the connection and closed it before the HTTP/2 handshake finished (${last}): if it uses TLS, use grpcs://; otherwise the port may not be a HeliosDB gRPC port`,
      code: 'CONNECTION_FAILED',
    };
  }
  return { why: `the connection attempt failed (${last})`, code: 'CONNECTION_FAILED' };
}

/** Default ports of the HeliosDB server, for hints. */
const ports = 'the native gRPC port is 7700 and the HTTP port 7701 by default';

/**
 * What a Connect-family call (an `http://` or `https://` URL) failing with `message` means when
 * the URL points at the server's native gRPC port instead of its HTTP port; undefined when the
 * failure does not look like that.
 */
export function explainHttpToGrpcPort(message: string, url: string): string | undefined {
  const native =
    // HTTP/2 (Connect, JSON): grpc-js answers 415 to any content type other than application/grpc.
    /\bHTTP 415\b/.test(message) ||
    // HTTP/1.1: an HTTP/2-only port answers with binary HTTP/2 frames.
    /Parse Error: Expected HTTP\//.test(message) ||
    // gRPC-Web: grpc-js takes application/grpc-web for gRPC and sends its status in HTTP/2 trailers.
    /missing trailer/.test(message);
  if (!native) return undefined;
  const grpcUrl = url.replace(/^https?:/i, (s) => (s.toLowerCase() === 'https:' ? 'grpcs:' : 'grpc:'));
  return `${url} speaks native gRPC, not the Connect protocol an http(s):// URL uses (${ports}): use ${grpcUrl}, or the server's HTTP port for http(s):// (${message})`;
}
