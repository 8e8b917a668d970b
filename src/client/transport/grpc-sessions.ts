/**
 * Which unary calls of the grpc-js transport travel over a session (./grpc-session.ts), and on
 * which one: DatabaseService's unary methods, on the channel the pool chose for the call (so
 * pinning, health and circuit breakers work as for unary calls), one stream per channel and
 * identity (the `authorization` and application-name headers, authenticated when the stream
 * opens: a renewed token opens a new stream, the old one ends when idle).
 * An endpoint that answered UNIMPLEMENTED gets unary calls, and is asked again after
 * {@link unsupportedRetryMs}.
 * @packageDocumentation
 */
import type { DescMethod } from '@bufbuild/protobuf';
import type * as grpc from '@grpc/grpc-js';
import { headers } from '../protocol/headers.js';
import { GrpcSession, sessionOpKinds } from './grpc-session.js';
import type { PooledChannel } from './pooled-channel.js';

/** How long an endpoint without SessionService gets unary calls before it is asked again, ms. */
export const unsupportedRetryMs = 60_000;

const databaseService = 'heliosdb.v1.DatabaseService';

/** See the file comment. */
export class GrpcSessions {
  private readonly byChannel = new WeakMap<PooledChannel, Map<string, GrpcSession>>();
  private readonly all = new Set<GrpcSession>();
  private readonly unsupportedUntil = new Map<string, number>();

  /**
   * The session `method` should run on over `ch`, or undefined for a unary call (not a
   * DatabaseService unary method, or an endpoint without sessions).
   */
  sessionFor(ch: PooledChannel, method: DescMethod, metadata: grpc.Metadata): GrpcSession | undefined {
    if (method.parent.typeName !== databaseService || !sessionOpKinds.has(method.localName) || ch.closed) return undefined;
    const url = ch.endpoint.url;
    const until = this.unsupportedUntil.get(url);
    if (until !== undefined) {
      if (Date.now() < until) return undefined;
      this.unsupportedUntil.delete(url);
    }
    const key = `${metadata.get(headers.authorization)[0] ?? ''}\u0000${metadata.get(headers.applicationName)[0] ?? ''}`;
    let map = this.byChannel.get(ch);
    if (!map) {
      map = new Map();
      this.byChannel.set(ch, map);
    }
    let s = map.get(key);
    if (s?.closed) {
      if (s.unsupported) this.unsupportedUntil.set(url, Date.now() + unsupportedRetryMs);
      map.delete(key);
      this.all.delete(s);
      if (s.unsupported) return undefined;
      s = undefined;
    }
    if (!s) {
      // Another identity on this channel (a renewed token): the old stream ends once idle (its
      // idle timer), not now: a transaction begun on it moves to the stream that uses it next.
      for (const [k, old] of map) {
        if (old.closed) {
          map.delete(k);
          this.all.delete(old);
        }
      }
      const md = new (metadata.constructor as typeof grpc.Metadata)();
      for (const name of [headers.authorization, headers.applicationName]) {
        const v = metadata.get(name)[0];
        if (v !== undefined) md.set(name, v);
      }
      s = new GrpcSession(ch.client, md, url);
      map.set(key, s);
      this.all.add(s);
      const made = s;
      ch.onClose.push(() => {
        made.close();
        this.all.delete(made);
      });
    }
    return s;
  }

  /** Closes every session. */
  close(): void {
    for (const s of this.all) s.close();
    this.all.clear();
  }
}
