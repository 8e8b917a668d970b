/**
 * What the grpc-js transport translates between Connect and grpc-js: messages to and from bytes
 * (per method, made once), request iterables, headers and metadata, and grpc-js errors (with
 * their google.rpc.Status details) as ConnectErrors.
 * @packageDocumentation
 */
import { create, type DescMessage, type DescMethod, fromBinary, isMessage, toBinary } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import { StatusSchema } from '../../../gen/google/rpc/status_pb.js';

function serializer(desc: DescMessage) {
  return (msg: never): Buffer => {
    const bytes = toBinary(desc, msg);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(desc: DescMessage) {
  return (buf: Buffer) => fromBinary(desc, buf);
}

const codecs = new WeakMap<DescMethod, { ser: (m: never) => Buffer; de: (b: Buffer) => unknown; path: string }>();

/** The serializers and path of a method, made once. */
export function codecOf(method: DescMethod) {
  let c = codecs.get(method);
  if (!c) {
    c = { ser: serializer(method.input), de: deserializer(method.output), path: `/${method.parent.typeName}/${method.name}` };
    codecs.set(method, c);
  }
  return c;
}

/** The request messages as full messages (Connect's normalizeIterable, which it does not export). */
export function normalizeIterable(desc: DescMessage, input: AsyncIterable<unknown>): AsyncIterable<any> {
  return {
    [Symbol.asyncIterator]() {
      const it = input[Symbol.asyncIterator]();
      const normalized = (r: IteratorResult<unknown>): IteratorResult<unknown> =>
        r.done ? r : { done: false, value: isMessage(r.value, desc) ? r.value : create(desc, r.value as never) };
      return {
        next: () => it.next().then(normalized),
        ...(it.throw ? { throw: (e?: unknown) => it.throw!(e).then(normalized) } : {}),
        ...(it.return ? { return: (v?: unknown) => it.return!(v).then(normalized) } : {}),
      };
    },
  };
}

/** gRPC metadata straight from the caller's HeadersInit (no Headers object in between). */
export function metadataFromInit(init: HeadersInit | undefined): grpc.Metadata {
  const md = new grpc.Metadata();
  if (init === undefined) return md;
  if (init instanceof Headers) {
    init.forEach((v, k) => {
      md.add(k, v);
    });
  } else if (Array.isArray(init)) {
    for (const [k, v] of init) md.add(k.toLowerCase(), v);
  } else {
    for (const k of Object.keys(init)) md.add(k.toLowerCase(), (init as Record<string, string>)[k]);
  }
  return md;
}

/** gRPC metadata as Fetch Headers. */
export function metadataToHeaders(md: grpc.Metadata | undefined): Headers {
  const h = new Headers();
  if (!md) return h;
  for (const [k, v] of Object.entries(md.getMap())) {
    if (typeof v === 'string') h.append(k, v);
  }
  return h;
}

/** Fetch Headers as gRPC metadata. */
export function headersToMetadata(h: Headers): grpc.Metadata {
  const md = new grpc.Metadata();
  h.forEach((v, k) => {
    md.add(k, v);
  });
  return md;
}

/** A grpc-js error as a ConnectError, with google.rpc.Status details decoded. */
export function connectErrorFromGrpc(err: grpc.ServiceError | Error): ConnectError {
  const se = err as Partial<grpc.ServiceError>;
  if (typeof se.code !== 'number') return ConnectError.from(err, Code.Unavailable);
  const ce = new ConnectError(se.details ?? err.message, se.code as number as Code, metadataToHeaders(se.metadata), undefined, err);
  const raw = se.metadata?.get('grpc-status-details-bin')[0];
  if (raw instanceof Uint8Array) {
    try {
      const status = fromBinary(StatusSchema, raw);
      ce.details = status.details.map((d) => ({ type: d.typeUrl.slice(d.typeUrl.lastIndexOf('/') + 1), value: d.value }));
    } catch {
      // Malformed details: keep the status alone.
    }
  }
  return ce;
}
