/**
 * The key failed authentications are counted under for a client address: an IPv4 address as is
 * (also when it comes IPv4-mapped, `::ffff:a.b.c.d`), an IPv6 address by its /64 prefix, the
 * smallest network a host is normally given, so rotating addresses within it gains nothing.
 *
 * Hand-written because node:net validates addresses (isIPv6) but does not expand or mask them,
 * and the project has no IP address library; the expansion is short and covers `::` and an
 * embedded IPv4 tail.
 * @packageDocumentation
 */
import { isIPv4, isIPv6 } from 'node:net';

/** See the file comment. Anything that is not an IP address (e.g. empty) is its own key. */
export function addressKey(address: string): string {
  const a = address
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/%.*$/, '');
  if (isIPv4(a)) return a;
  if (!isIPv6(a)) return address;
  const groups = expandIPv6(a);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `${groups[6] >> 8}.${groups[6] & 255}.${groups[7] >> 8}.${groups[7] & 255}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address. */
function expandIPv6(a: string): number[] {
  let text = a;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [b0, b1, b2, b3] = v4.slice(1).map(Number);
    text = `${text.slice(0, v4.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((g) => parseInt(g, 16));
}
