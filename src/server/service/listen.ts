/**
 * Listen: a server-streaming RPC that listens on channels (through ../notifications.ts) and
 * sends every notification, a gap event when some may have been missed, and ends only when the
 * client leaves, the server shuts down, or the caller's credential stops holding (UNAUTHENTICATED,
 * see ./credential-watch.ts).
 * @packageDocumentation
 */
import { create } from '@bufbuild/protobuf';
import { Code, type ServiceImpl } from '@connectrpc/connect';
import { type DatabaseService, type ListenResponse, ListenResponseSchema, ErrorReason } from '@heliosdb/client/wire';
import { principalOf } from '../auth/principal.js';
import { abortError } from '../call-context.js';
import { serverError, toConnectError } from '../errors.js';
import type { NotificationHub } from '../notifications.js';
import type { ServiceContext } from './context.js';
import { watchCredential } from './credential-watch.js';
import { PushQueue } from './push-queue.js';

/** Most channels one Listen call may name. */
const maxChannels = 100;
/** Notifications kept for a subscriber that does not keep up; beyond, they are dropped (a gap). */
const maxQueued = 10_000;

/** The Listen handler. */
export function listenHandler(c: ServiceContext, hub: NotificationHub): ServiceImpl<typeof DatabaseService>['listen'] {
  return async function* listen(req, ctx) {
    if (req.channels.length === 0 || req.channels.length > maxChannels) {
      throw serverError(Code.InvalidArgument, `Listen needs 1 to ${maxChannels} channels`, { reason: ErrorReason.INVALID_REQUEST });
    }
    for (const ch of req.channels) {
      if (!ch || Buffer.byteLength(ch) > 63 || ch.includes('\u0000')) {
        throw serverError(Code.InvalidArgument, `invalid channel name ${JSON.stringify(ch)}: 1 to 63 bytes`, {
          reason: ErrorReason.INVALID_REQUEST,
        });
      }
    }
    if (ctx.signal.aborted) throw abortError(ctx.signal);
    const queue = new PushQueue<ListenResponse>();
    let dropped = false;
    const sub = await hub
      .subscribe(principalOf(ctx), req.channels, {
        onNotification: (n) => {
          if (queue.length >= maxQueued) {
            if (!dropped) {
              dropped = true;
              queue.push(
                create(ListenResponseSchema, {
                  event: {
                    case: 'gap',
                    value: { reason: `the client did not keep up: notifications beyond ${maxQueued} waiting were dropped` },
                  },
                }),
              );
            }
            return;
          }
          dropped = false;
          queue.push(create(ListenResponseSchema, { event: { case: 'notification', value: n } }));
        },
        onGap: (reason) => queue.push(create(ListenResponseSchema, { event: { case: 'gap', value: { reason } } })),
        onClose: () => queue.end(),
      })
      .catch((e) => {
        throw toConnectError(e);
      });
    const stop = () => queue.end();
    ctx.signal.addEventListener('abort', stop, { once: true });
    // A credential revoked while the stream is open ends it (UNAUTHENTICATED) within the auth cache window.
    const unwatch = watchCredential(principalOf(ctx), c.deps.options.authCacheMs, (e) => queue.end(e));
    try {
      queue.push(create(ListenResponseSchema, { event: { case: 'ready', value: {} } }));
      yield* queue.drain();
    } finally {
      unwatch();
      ctx.signal.removeEventListener('abort', stop);
      sub.close();
    }
  };
}
