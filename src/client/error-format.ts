/**
 * How a HeliosDB error shows itself: the compact field list behind `toJSON()` and behind
 * `console.log(err)` / `util.inspect(err)` (through `Symbol.for('nodejs.util.inspect.custom')`,
 * so no `node:util` import: browser-safe).
 * @packageDocumentation
 */

/** Own fields that are part of an error's identity, not extra detail. */
const skipped = new Set(['name', 'message', 'stack', 'cause']);

/** The transport code that means "no particular code" (Connect's `Code.Unknown`). */
const CODE_UNKNOWN = 2;

/**
 * A value as JSON can hold it: bigints as decimal text, bytes as `<N bytes>`, Dates as ISO text,
 * nested values at most a few levels deep. Never throws (parameters can hold anything).
 */
function jsonSafe(v: unknown, depth = 0, seen: Set<object> = new Set()): unknown {
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'function':
    case 'symbol':
      return `[${typeof v}]`;
    case 'object': {
      if (v === null) return null;
      if (v instanceof Date) return Number.isNaN(v.getTime()) ? 'Invalid Date' : v.toISOString();
      if (v instanceof Uint8Array || v instanceof ArrayBuffer) return `<${v.byteLength} bytes>`;
      if (seen.has(v) || depth >= 4) return '[…]';
      seen.add(v);
      try {
        if (Array.isArray(v)) return v.map((x) => jsonSafe(x, depth + 1, seen));
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) return `[${(v as object).constructor?.name ?? 'object'}]`;
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(v)) out[k] = jsonSafe(x, depth + 1, seen);
        return out;
      } finally {
        seen.delete(v);
      }
    }
    default:
      return v;
  }
}

/** The cause of an error in one line: `ConnectError: [unavailable] ...`. */
function causeSummary(cause: unknown): unknown {
  if (cause === undefined) return undefined;
  if (cause instanceof Error) {
    // A HeliosDB error (or anything else that knows how to be JSON) as its own fields.
    const toJSON = (cause as { toJSON?: () => unknown }).toJSON;
    if (typeof toJSON === 'function') return toJSON.call(cause);
    return `${cause.name}: ${cause.message}`;
  }
  return jsonSafe(cause);
}

/**
 * The fields of an error worth showing: `name`, `code`, `message`, then every own field that is
 * set (`undefined` fields, `retryable: false` and the Unknown transport code are left out), then a
 * one-line summary of `cause`. Values are JSON-safe. Shared by `toJSON()` and the inspect output.
 */
export function errorFields(err: Error & { code?: unknown }): Record<string, unknown> {
  const out: Record<string, unknown> = { name: err.name, code: err.code, message: err.message };
  for (const [k, v] of Object.entries(err)) {
    if (skipped.has(k) || k in out || v === undefined) continue;
    if (k === 'retryable' && v === false) continue;
    if (k === 'grpcCode' && v === CODE_UNKNOWN) continue;
    out[k] = jsonSafe(v);
  }
  const cause = causeSummary(err.cause);
  if (cause !== undefined) out.cause = cause;
  return out;
}

/** Node's inspect function as it passes itself to custom inspectors (`util.inspect`). */
type InspectFn = (value: unknown, options?: object) => string;

/**
 * The `console.log(err)` form: `Name [CODE]: message`, the stack's frames, then the set fields
 * (`{ sqlstate: '23505', constraint: 'users_pkey' }`), formatted with the inspect function Node
 * hands over (plain JSON when there is none).
 */
export function inspectError(
  err: Error & { code?: unknown },
  depth: number,
  options: object | undefined,
  inspect: InspectFn | undefined,
): string {
  const fields = errorFields(err);
  delete fields.name;
  delete fields.message;
  delete fields.code;
  const head = `${err.name} [${String(err.code)}]: ${err.message}`;
  const stack = typeof err.stack === 'string' ? err.stack : '';
  // The frames only: the stack's first lines repeat the name and message (which may span lines).
  const at = stack.indexOf('\n    at ');
  const frames = at >= 0 ? stack.slice(at) : '';
  if (Object.keys(fields).length === 0) return head + frames;
  const shown = inspect ? inspect(fields, { ...options, depth: Math.max(1, depth) }) : JSON.stringify(fields);
  return `${head}${frames} ${shown}`;
}
