/**
 * An estimate of the memory a decoded result takes (the query cache's bound): strings at two
 * bytes a character, numbers eight, bytes their length, and a fixed cost per object, array and
 * property. Browser-safe.
 * @packageDocumentation
 */

const objectCost = 32;
const slotCost = 8;

/** The estimated bytes of `value` (cycles are counted once). */
export function estimateBytes(value: unknown, seen: Set<object> = new Set()): number {
  switch (typeof value) {
    case 'string':
      return 16 + value.length * 2;
    case 'number':
    case 'boolean':
      return 8;
    case 'bigint':
      return 16 + Math.ceil(value.toString(16).length / 2);
    case 'undefined':
      return 0;
    case 'object': {
      if (value === null) return 0;
      if (seen.has(value)) return slotCost;
      seen.add(value);
      if (ArrayBuffer.isView(value)) return objectCost + value.byteLength;
      if (value instanceof ArrayBuffer) return objectCost + value.byteLength;
      if (value instanceof Date) return objectCost;
      let n = objectCost;
      if (Array.isArray(value)) {
        for (const v of value) n += slotCost + estimateBytes(v, seen);
        return n;
      }
      for (const [k, v] of Object.entries(value)) n += slotCost + k.length * 2 + estimateBytes(v, seen);
      return n;
    }
    default:
      return slotCost;
  }
}
