/**
 * A pooled channel's health: the grpc.health.v1 Check the pool runs on it, waiting until it is
 * connected (failing at once when its connection attempt failed), and the reason grpc-js gives for
 * a failed attempt.
 * @packageDocumentation
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { Code } from '@connectrpc/connect';
import * as grpc from '@grpc/grpc-js';
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from '../../../gen/grpc/health/v1/health_pb.js';
import { explainConnectFailure } from '../connection-messages.js';
import { ConnectionError, ConnectionTimeoutError, type HeliosDBError } from '../errors.js';
import { annotateAttempt } from './attempt-info.js';
import type { PooledChannel } from './pooled-channel.js';

const checkPath = `/${Health.typeName}/${Health.method.check.name}`;
const checkRequest = Buffer.from(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: '' })));
const raw = (b: Buffer) => b;

/** Runs Check on `ch`; true when the server answers SERVING within `timeoutMs`. */
export function checkHealth(ch: PooledChannel, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    try {
      ch.client.makeUnaryRequest(
        checkPath,
        raw,
        raw,
        checkRequest,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => {
          if (err || !res) return resolve(false);
          try {
            resolve(fromBinary(HealthCheckResponseSchema, res).status === HealthCheckResponse_ServingStatus.SERVING);
          } catch {
            resolve(false);
          }
        },
      );
    } catch {
      resolve(false); // A closed channel.
    }
  });
}

/**
 * Why the channel's last connection attempt failed, as grpc-js words it (`No connection
 * established. Last error: ...`): a call on a channel in TRANSIENT_FAILURE fails at once with it.
 * Made only after a failure, to explain it (TLS spoken to a plaintext port, a refused certificate).
 */
function lastConnectError(ch: PooledChannel): Promise<string | undefined> {
  return new Promise((resolve) => {
    try {
      ch.client.makeUnaryRequest(checkPath, raw, raw, checkRequest, new grpc.Metadata(), { deadline: Date.now() + 1000 }, (err) =>
        resolve(err && err.code === grpc.status.UNAVAILABLE ? err.details : undefined),
      );
    } catch {
      resolve(undefined); // A closed channel.
    }
  });
}

/**
 * Waits until `ch` is connected, at most `connectTimeoutMs`; fails at once when the channel's
 * connection attempt failed (connection refused: the server is down), so that calls move on
 * instead of waiting. `report` tells the endpoint's circuit breaker about the failure. Undefined
 * when the channel is ready already.
 */
export function waitReady(
  ch: PooledChannel,
  connectTimeoutMs: number,
  secure: boolean,
  report: (error: HeliosDBError) => void,
): Promise<void> | undefined {
  const channel = ch.client.getChannel();
  const state = channel.getConnectivityState(true);
  if (state === grpc.connectivityState.READY) return undefined;
  const failed = async (): Promise<HeliosDBError> => {
    const { why, code } = explainConnectFailure(await lastConnectError(ch), secure);
    // The circuit breaker counts it as the connection failure it is, whatever it is called.
    report(new ConnectionError(why, 'CONNECTION_FAILED', { retryable: true, grpcCode: Code.Unavailable }));
    // A TLS mismatch or a refused certificate does not go away by retrying: FAILED_PRECONDITION,
    // which the retry interceptor does not send again.
    const tlsFailure = code === 'TLS_ERROR';
    const err = new ConnectionError(`could not connect to ${ch.endpoint.url}: ${why}`, code, {
      retryable: !tlsFailure,
      grpcCode: tlsFailure ? Code.FailedPrecondition : Code.Unavailable,
    });
    return annotateAttempt(err, { sent: false, endpoint: ch.endpoint.url });
  };
  if (state === grpc.connectivityState.TRANSIENT_FAILURE || state === grpc.connectivityState.SHUTDOWN) {
    return failed().then((e) => Promise.reject(e));
  }
  const deadline = Date.now() + connectTimeoutMs;
  return new Promise((resolve, reject) => {
    const watch = (current: grpc.connectivityState) => {
      channel.watchConnectivityState(current, deadline, (err) => {
        if (err) {
          const message = `could not connect to ${ch.endpoint.url}: no connection within ${connectTimeoutMs} ms (connectTimeoutMs)`;
          report(new ConnectionError(message, 'CONNECT_TIMEOUT', { retryable: true, grpcCode: Code.Unavailable }));
          const e = new ConnectionTimeoutError(message, 'CONNECT_TIMEOUT', { cause: err, retryable: true, grpcCode: Code.Unavailable });
          return reject(annotateAttempt(e, { sent: false, endpoint: ch.endpoint.url }));
        }
        const now = channel.getConnectivityState(true);
        if (now === grpc.connectivityState.READY) resolve();
        else if (now === grpc.connectivityState.TRANSIENT_FAILURE || now === grpc.connectivityState.SHUTDOWN) {
          failed().then(reject, reject);
        } else watch(now);
      });
    };
    watch(state);
  });
}
