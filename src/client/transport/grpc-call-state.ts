/**
 * The state of one call on the grpc-js transport: its AbortSignal (made only when read), the
 * request object interceptors see (header, context values and signal made lazily), and deadline
 * errors in the caller's terms.
 * @packageDocumentation
 */
import type { DescMethod } from '@bufbuild/protobuf';
import { Code, ConnectError, type ContextValues, createContextValues, type StreamRequest, type UnaryRequest } from '@connectrpc/connect';
import type * as grpc from '@grpc/grpc-js';
import { headersToMetadata, metadataFromInit } from './grpc-codec.js';

/** What a passed deadline says: the call, and the `timeoutMs` it was given (not grpc-js's internals). */
function deadlineMessage(method: string, timeoutMs: number | undefined): string {
  return `the ${method} call did not finish within its timeoutMs of ${timeoutMs ?? 0} ms`;
}

/** The error of a call whose deadline passed before it was sent, or while it waited to be. */
function deadlineError(method: string, timeoutMs: number | undefined): ConnectError {
  return new ConnectError(deadlineMessage(method, timeoutMs), Code.DeadlineExceeded);
}

/**
 * grpc-js's own DEADLINE_EXCEEDED (`Deadline exceeded after 0.004s,name resolution: ...`) in the
 * user's terms; a deadline error the server sent (with its ErrorDetail) is kept as it is.
 */
export function localDeadline(ce: ConnectError, method: string, timeoutMs: number | undefined): ConnectError {
  if (ce.code !== Code.DeadlineExceeded || ce.details.length > 0 || !timeoutMs) return ce;
  return new ConnectError(deadlineMessage(method, timeoutMs), Code.DeadlineExceeded, ce.metadata, undefined, ce);
}

/**
 * A unary call's AbortSignal as Connect's runUnaryCall defines it (aborted by the caller's signal,
 * by the deadline, and when the call ends), made only when something reads it.
 */
class CallSignal {
  private controller: AbortController | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private onCallerAbort: (() => void) | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly caller: AbortSignal | undefined,
    private readonly timeoutMs: number | undefined,
    private readonly method: string,
  ) {}

  /** Whether the signal was made. */
  get materialized(): boolean {
    return this.controller !== undefined;
  }

  get signal(): AbortSignal {
    if (this.controller) return this.controller.signal;
    const c = (this.controller = new AbortController());
    const caller = this.caller;
    if (caller?.aborted) c.abort(caller.reason);
    else if (caller) {
      this.onCallerAbort = () => c.abort(caller.reason);
      caller.addEventListener('abort', this.onCallerAbort, { once: true });
    }
    if (this.timeoutMs !== undefined && !c.signal.aborted) {
      // Made late (a retry after a failure): the deadline still counts from the call's start.
      const left = this.timeoutMs - (Date.now() - this.startedAt);
      if (this.timeoutMs <= 0 || left <= 0) c.abort(deadlineError(this.method, this.timeoutMs));
      else this.timer = setTimeout(() => c.abort(deadlineError(this.method, this.timeoutMs)), left);
    }
    return c.signal;
  }

  private cleanup(): void {
    clearTimeout(this.timer);
    if (this.onCallerAbort) this.caller!.removeEventListener('abort', this.onCallerAbort);
  }

  /** The call succeeded. */
  done(): void {
    if (!this.controller) return;
    this.cleanup();
    this.controller.abort();
  }

  /** The call failed with `e`: the error to report (Canceled with the reason once aborted). */
  fail(e: unknown): ConnectError {
    const aborted = this.controller ? this.controller.signal : this.caller?.aborted ? this.caller : undefined;
    const err = aborted?.aborted ? ConnectError.from(aborted.reason, Code.Canceled) : ConnectError.from(e);
    if (this.controller) {
      this.cleanup();
      if (!this.controller.signal.aborted) this.controller.abort(err);
    }
    return err;
  }
}

/**
 * The per-call request state both call kinds share: the request object interceptors see, whose
 * header, context values and signal are made only when something reads them, and what each
 * attempt needs from it (the signal to honour, the context values, the metadata to send).
 */
export class LazyCall {
  readonly cs: CallSignal;
  private header: Headers | undefined;
  private values: ContextValues | undefined;
  private base: object | undefined;

  constructor(
    private readonly callerSignal: AbortSignal | undefined,
    private readonly timeoutMs: number | undefined,
    private readonly headerInit: HeadersInit | undefined,
    contextValues: ContextValues | undefined,
    private readonly method: string,
  ) {
    this.cs = new CallSignal(callerSignal, timeoutMs, method);
    this.values = contextValues;
  }

  /** The request the interceptor chain starts from. */
  request<R extends UnaryRequest<any, any> | StreamRequest<any, any>>(
    stream: R['stream'],
    method: DescMethod,
    url: string,
    message: R['message'],
  ): R {
    const self = this;
    const req = {
      stream,
      service: method.parent,
      method,
      requestMethod: 'POST',
      url,
      get header() {
        return (self.header ??= new Headers(self.headerInit));
      },
      get contextValues() {
        return (self.values ??= createContextValues());
      },
      get signal() {
        return self.cs.signal;
      },
      message,
    };
    this.base = req;
    return req as unknown as R;
  }

  /** For one attempt of `req`: the signal to honour (checked now) and the context values. */
  attempt(req: UnaryRequest<any, any> | StreamRequest<any, any>): {
    ours: boolean;
    abortSignal: AbortSignal | undefined;
    values: ContextValues | undefined;
  } {
    const ours = req === this.base;
    const abortSignal = ours && !this.cs.materialized ? this.callerSignal : req.signal;
    abortSignal?.throwIfAborted();
    if (ours && !this.cs.materialized && this.timeoutMs !== undefined && this.timeoutMs <= 0)
      throw deadlineError(this.method, this.timeoutMs);
    return { ours, abortSignal, values: ours ? this.values : req.contextValues };
  }

  /** The gRPC metadata for `req` (straight from the caller's init when nobody touched the headers). */
  metadata(req: UnaryRequest<any, any> | StreamRequest<any, any>, ours: boolean): grpc.Metadata {
    return ours && this.header === undefined ? metadataFromInit(this.headerInit) : headersToMetadata(req.header);
  }
}
