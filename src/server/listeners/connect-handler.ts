/**
 * A Node request handler for Connect services: what `connectNodeAdapter` does, but failures are
 * logged through the server's logger, and a client that went away (EPIPE, reset, cancelled) is a
 * debug line rather than an error on stderr.
 * @packageDocumentation
 */
import type http from 'node:http';
import type http2 from 'node:http2';
import { Code, ConnectError, createConnectRouter } from '@connectrpc/connect';
import {
  compressionBrotli,
  compressionGzip,
  type ConnectNodeAdapterOptions,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from '@connectrpc/connect-node';
import type { Logger } from 'pino';

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

const clientGone = /EPIPE|ECONNRESET|ERR_STREAM_PREMATURE_CLOSE|ERR_STREAM_DESTROYED|NGHTTP2|aborted|socket hang up/i;

/** Builds the handler. */
export function createConnectHandler(options: ConnectNodeAdapterOptions, log: Logger): (req: NodeRequest, res: NodeResponse) => void {
  const router = createConnectRouter({ acceptCompression: [compressionGzip, compressionBrotli], ...options });
  options.routes?.(router);
  const paths = new Map(router.handlers.map((h) => [(options.requestPathPrefix ?? '') + h.requestPath, h]));
  return (req, res) => {
    const handler = paths.get(req.url?.split('?', 2)[0] ?? '');
    if (!handler) {
      res.writeHead(404);
      res.end();
      return;
    }
    const uReq = universalRequestFromNodeRequest(req as never, res as never, undefined, options.contextValues?.(req as never));
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res as never))
      .catch((reason: unknown) => {
        const ce = ConnectError.from(reason);
        const method = `${handler.service.typeName}/${handler.method.name}`;
        if (
          ce.code === Code.Aborted ||
          ce.code === Code.Canceled ||
          clientGone.test(`${ce.message} ${(reason as { code?: string })?.code ?? ''}`)
        ) {
          log.debug({ method, err: reason }, 'client went away during the call');
        } else {
          log.warn({ method, err: reason }, 'HTTP handler failed');
        }
      });
  };
}
