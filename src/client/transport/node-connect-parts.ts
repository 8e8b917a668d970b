/**
 * The Node client over the Connect protocol family (`http://` and `https://` URLs, the server's
 * HTTP listener): `@connectrpc/connect-node` on HTTP/2 (one multiplexed connection; h2c for
 * http://) or HTTP/1.1 (a keep-alive agent), with the same concurrency limiter as the browser.
 * @packageDocumentation
 */
import http from 'node:http';
import https from 'node:https';
import { compressionGzip, createConnectTransport, createGrpcWebTransport, Http2SessionManager } from '@connectrpc/connect-node';
import type { ClientParts } from './client-parts.js';
import type { ResolvedConnectionConfig } from '../config.js';
import { type Pem, type ResolvedTls, resolveTls } from '../tls-options.js';
import { connectBaseUrl, createConnectParts } from './connect-parts.js';

function pemList(p: Pem[] | undefined): (string | Buffer)[] | undefined {
  return p?.map((x) => (typeof x === 'string' ? x : Buffer.from(x.buffer, x.byteOffset, x.byteLength)));
}

/** Node TLS options for a TLS setting (https.Agent and HTTP/2 sessions alike). */
export function nodeTlsOptions(tls: ResolvedTls): https.AgentOptions {
  const one = (p: Pem | undefined) => (p === undefined ? undefined : pemList([p])![0]);
  return {
    ca: pemList(tls.ca),
    cert: one(tls.cert),
    key: one(tls.key),
    servername: tls.servername,
    rejectUnauthorized: tls.mode !== 'require',
    ...(tls.mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
  };
}

/** Builds the Node Connect transport and its limiter for a resolved config with an http(s):// URL. */
export function createNodeConnectParts(resolved: ResolvedConnectionConfig): ClientParts {
  const tls = resolveTls(resolved.url, resolved.ssl, resolved.sslMode);
  // An sslMode other than disable upgrades an http:// URL to TLS.
  const config = tls.enabled && /^http:/i.test(resolved.url) ? { ...resolved, url: resolved.url.replace(/^http:/i, 'https:') } : resolved;
  const tlsOptions = tls.enabled ? nodeTlsOptions(tls) : {};
  const baseUrl = connectBaseUrl(config.url);
  const readMaxBytes = config.maxMessageBytes;
  // Requests are gzipped with `compression: 'gzip'`; gzipped responses are always accepted.
  const sendCompression = config.compression === 'gzip' ? compressionGzip : undefined;
  if (config.httpVersion === '1.1') {
    const agent = baseUrl.startsWith('https:') ? new https.Agent({ keepAlive: true, ...tlsOptions }) : new http.Agent({ keepAlive: true });
    const node = { httpVersion: '1.1' as const, nodeOptions: { agent }, readMaxBytes, sendCompression };
    const parts = createConnectParts(config, {
      connect: ({ baseUrl, interceptors, binary }) => createConnectTransport({ ...node, baseUrl, interceptors, useBinaryFormat: binary }),
      grpcWeb: ({ baseUrl, interceptors }) => createGrpcWebTransport({ ...node, baseUrl, interceptors, useBinaryFormat: true }),
      close: () => agent.destroy(),
    });
    return { ...parts, noRequestStreams: "HTTP/1.1 cannot carry a streaming request (httpVersion: '1.1')" };
  }
  // No HTTP/2 PINGs here (keepaliveIntervalMs is for grpc://): connect-node 2.1's session manager
  // keeps its ping timer after abort(), and the ping on the destroyed session later throws an
  // uncaught ERR_HTTP2_INVALID_SESSION. Call deadlines bound a black-holed connection instead.
  const sessionManager = new Http2SessionManager(baseUrl, { idleConnectionTimeoutMs: config.idleTimeoutSeconds * 1000 }, tlsOptions);
  const node = { httpVersion: '2' as const, sessionManager, readMaxBytes, sendCompression };
  return createConnectParts(config, {
    connect: ({ baseUrl, interceptors, binary }) => createConnectTransport({ ...node, baseUrl, interceptors, useBinaryFormat: binary }),
    grpcWeb: ({ baseUrl, interceptors }) => createGrpcWebTransport({ ...node, baseUrl, interceptors, useBinaryFormat: true }),
    close: () => sessionManager.abort(),
  });
}
