/**
 * A tiny assertion library for the behaviour suite: it runs in Node and, bundled, in the browser,
 * so it cannot use `node:assert`. Failures throw {@link AssertionFailure} with both values shown.
 * @packageDocumentation
 */

/** A failed assertion. */
export class AssertionFailure extends Error {
  override name = 'AssertionFailure';
}

/** Renders a value for a failure message: bigints with `n`, Dates as ISO, bytes as hex. */
export function show(v: unknown): string {
  const seen = new WeakSet<object>();
  const go = (x: unknown): string => {
    if (typeof x === 'bigint') return `${x}n`;
    if (typeof x === 'string') return JSON.stringify(x);
    if (typeof x === 'number') return Object.is(x, -0) ? '-0' : String(x);
    if (x === null || typeof x !== 'object') return String(x);
    if (seen.has(x)) return '[circular]';
    seen.add(x);
    if (x instanceof Date) return `Date(${Number.isNaN(x.getTime()) ? 'invalid' : x.toISOString()})`;
    if (x instanceof Uint8Array) return `Uint8Array[${Array.from(x, (b) => b.toString(16).padStart(2, '0')).join(' ')}]`;
    if (Array.isArray(x)) return `[${x.map(go).join(', ')}]`;
    if (x instanceof Error) return `${x.name}(${JSON.stringify(x.message)})`;
    const name = x.constructor && x.constructor !== Object ? `${x.constructor.name} ` : '';
    return `${name}{${Object.entries(x)
      .map(([k, val]) => `${k}: ${go(val)}`)
      .join(', ')}}`;
  };
  return go(v);
}

function fail(message: string | undefined, detail: string): never {
  throw new AssertionFailure(message ? `${message}: ${detail}` : detail);
}

/** Asserts `value` is truthy. */
export function ok(value: unknown, message?: string): asserts value {
  if (!value) fail(message, `expected a truthy value, got ${show(value)}`);
}

/** Asserts `Object.is(actual, expected)`. */
export function equal<T>(actual: unknown, expected: T, message?: string): asserts actual is T {
  if (!Object.is(actual, expected)) fail(message, `expected ${show(expected)}, got ${show(actual)}`);
}

/** Structural equality: same prototypes for Dates and byte arrays, bigints by value, NaN equals NaN. */
export function isDeepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Date || b instanceof Date) return a instanceof Date && b instanceof Date && Object.is(a.getTime(), b.getTime());
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && isDeepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Asserts structural equality (see {@link isDeepEqual}). */
export function deepEqual(actual: unknown, expected: unknown, message?: string): void {
  if (!isDeepEqual(actual, expected)) fail(message, `expected ${show(expected)}, got ${show(actual)}`);
}

/** Asserts `value instanceof cls`. */
export function instanceOf<C extends abstract new (...args: never[]) => unknown>(
  value: unknown,
  cls: C,
  message?: string,
): asserts value is InstanceType<C> {
  if (!(value instanceof cls)) fail(message, `expected an instance of ${cls.name}, got ${show(value)}`);
}

/** Asserts `value` is not an instance of `cls`. */
export function notInstanceOf(value: unknown, cls: abstract new (...args: never[]) => unknown, message?: string): void {
  if (value instanceof cls) fail(message, `expected no instance of ${cls.name}, got ${show(value)}`);
}

/** Asserts `call` rejects; returns the error (checked to be an instance of `cls`, when given). */
export async function rejects<C extends abstract new (...args: never[]) => Error>(
  call: Promise<unknown> | (() => Promise<unknown>),
  cls: C,
  message?: string,
): Promise<InstanceType<C>> {
  let result: unknown;
  try {
    result = await (typeof call === 'function' ? call() : call);
  } catch (e) {
    instanceOf(e, cls, message);
    return e;
  }
  fail(message, `expected a rejection with ${cls.name}, but it resolved to ${show(result)}`);
}

/** Asserts `call` throws synchronously; returns the error (checked to be an instance of `cls`). */
export function throws<C extends abstract new (...args: never[]) => Error>(call: () => unknown, cls: C, message?: string): InstanceType<C> {
  let result: unknown;
  try {
    result = call();
  } catch (e) {
    instanceOf(e, cls, message);
    return e;
  }
  fail(message, `expected a throw of ${cls.name}, but it returned ${show(result)}`);
}

/** Asserts `text` contains `part`. */
export function includes(text: string, part: string, message?: string): void {
  if (typeof text !== 'string' || !text.includes(part)) fail(message, `expected ${show(text)} to contain ${show(part)}`);
}
