/**
 * Asserting that a call fails with a given status code, and reading its ErrorDetail.
 * @packageDocumentation
 */
import assert from 'node:assert/strict';
import { Code, ConnectError } from '@connectrpc/connect';
import { type ErrorDetail, ErrorDetailSchema, ErrorReason } from '../../gen/heliosdb/v1/error_pb.js';

/** An ErrorDetail with its reason as the enum value's name (`''` for none), for readable asserts. */
export type NamedDetail = Omit<ErrorDetail, 'reason'> & { reason: string };

/** A failed call: the error and its (first) ErrorDetail. */
export interface Failure {
  error: ConnectError;
  detail: NamedDetail | undefined;
}

/** `detail` with its reason named. */
export function named(detail: ErrorDetail): NamedDetail {
  return { ...detail, reason: detail.reason ? (ErrorReason[detail.reason] ?? String(detail.reason)) : '' };
}

/** Awaits `call`, asserts it fails with `code`, and returns the error with its detail. */
export async function expectCode(call: Promise<unknown> | (() => Promise<unknown>), code: Code, what = 'the call'): Promise<Failure> {
  let result: unknown;
  try {
    result = await (typeof call === 'function' ? call() : call);
  } catch (e) {
    const error = ConnectError.from(e);
    assert.equal(Code[error.code], Code[code], `${what} should fail with ${Code[code]}, got ${Code[error.code]}: ${error.rawMessage}`);
    const detail = error.findDetails(ErrorDetailSchema)[0];
    return { error, detail: detail && named(detail) };
  }
  assert.fail(`${what} should fail with ${Code[code]}, but it succeeded: ${String(result)}`);
}

/** Like {@link expectCode}, and also asserts an ErrorDetail is present; returns it. */
export async function expectDetail(call: Promise<unknown> | (() => Promise<unknown>), code: Code, what?: string): Promise<NamedDetail> {
  const { error, detail } = await expectCode(call, code, what);
  assert.ok(detail, `the ${Code[code]} error carries a heliosdb.v1.ErrorDetail (${error.rawMessage})`);
  return detail;
}
