/**
 * The Node client over the Connect protocol family (`http://` and `https://` URLs, the server's
 * HTTP listener): `@connectrpc/connect-node` on HTTP/2 (one multiplexed connection; h2c for
 * http://) or HTTP/1.1 (a keep-alive agent), with the same concurrency limiter as the browser.
 * @packageDocumentation
 */
import http from 'node:http';
import https from 'node:https';
import { compressionGzip, createConnectTransport, createGrpcWebTransport, Http2SessionManager } from '@connectrpc/connect-node';
import type { ClientParts } from '../client.js';
import type { ResolvedConnectionConfig } from '../config.js';
import { connectBaseUrl, createConnectParts } from './connect-parts.js';

/** Builds the Node Connect transport and its limiter for a resolved config with an http(s):// URL. */
export function createNodeConnectParts(config: ResolvedConnectionConfig): ClientParts {
  const baseUrl = connectBaseUrl(config.url);
  const readMaxBytes = config.maxMessageBytes;
  // Requests are gzipped with `compression: 'gzip'`; gzipped responses are always accepted.
  const sendCompression = config.compression === 'gzip' ? compressionGzip : undefined;
  if (config.httpVersion === '1.1') {
    const agent = baseUrl.startsWith('https:') ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
    const node = { httpVersion: '1.1' as const, nodeOptions: { agent }, readMaxBytes, sendCompression };
    return createConnectParts(config, {
      connect: ({ baseUrl, interceptors, binary }) => createConnectTransport({ ...node, baseUrl, interceptors, useBinaryFormat: binary }),
      grpcWeb: ({ baseUrl, interceptors }) => createGrpcWebTransport({ ...node, baseUrl, interceptors, useBinaryFormat: true }),
      close: () => agent.destroy(),
    });
  }
  const sessionManager = new Http2SessionManager(baseUrl, { idleConnectionTimeoutMs: config.idleTimeoutSeconds * 1000 });
  const node = { httpVersion: '2' as const, sessionManager, readMaxBytes, sendCompression };
  return createConnectParts(config, {
    connect: ({ baseUrl, interceptors, binary }) => createConnectTransport({ ...node, baseUrl, interceptors, useBinaryFormat: binary }),
    grpcWeb: ({ baseUrl, interceptors }) => createGrpcWebTransport({ ...node, baseUrl, interceptors, useBinaryFormat: true }),
    close: () => sessionManager.abort(),
  });
}
