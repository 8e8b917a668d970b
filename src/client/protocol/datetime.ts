/**
 * Exact conversions between PostgreSQL's date/time text output and microsecond counts, shared by
 * server and client. Works for every year PostgreSQL accepts (4713 BC to 294276 AD), beyond the
 * range of JavaScript's Date.
 * @packageDocumentation
 */

/** Microseconds PostgreSQL uses for `infinity` / `-infinity` timestamps (INT64 max / min). */
export const INFINITY_MICROS = 9223372036854775807n;
export const NEG_INFINITY_MICROS = -9223372036854775808n;

const MICROS_PER_DAY = 86400000000n;

/** Days since 1970-01-01 of a proleptic Gregorian date (astronomical year: 1 BC is year 0). */
export function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** The civil date (astronomical year, month 1-12, day) of a day count since 1970-01-01. */
export function civilFromDays(z: number): [number, number, number] {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const y = yoe + era * 400;
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return [m <= 2 ? y + 1 : y, m, d];
}

// Years have at most 7 digits (PostgreSQL's dates end in 5874897 AD, its timestamps in 294276 AD).
const TS_RE = /^(\d{4,7})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(?:([+-])(\d\d)(?::?(\d\d))?(?::(\d\d))?)?( BC)?$/;

/**
 * Parses PostgreSQL's ISO text output of a timestamp or timestamptz into microseconds since the
 * Unix epoch (UTC when an offset is present, wall-clock otherwise). Returns undefined when the text
 * is not in that format.
 */
export function parseTimestampMicros(text: string): bigint | undefined {
  if (text === 'infinity') return INFINITY_MICROS;
  if (text === '-infinity') return NEG_INFINITY_MICROS;
  const t = matchTimestamp(text);
  if (!t) return undefined;
  return BigInt(t.days) * MICROS_PER_DAY + BigInt(t.secs) * 1000000n + BigInt(t.micros);
}

/** A timestamp's text split into whole days since 1970, seconds into the day (UTC) and microseconds. */
function matchTimestamp(text: string): { days: number; secs: number; micros: number } | undefined {
  const m = TS_RE.exec(text);
  if (!m) return undefined;
  const month = Number(m[2]);
  const day = Number(m[3]);
  // PostgreSQL never writes fields out of range; anything else is not its output.
  if (month < 1 || month > 12 || day < 1 || day > 31 || Number(m[4]) > 24 || Number(m[5]) > 59 || Number(m[6]) > 60) return undefined;
  if (Number(m[10] ?? 0) > 59 || Number(m[11] ?? 0) > 59) return undefined;
  let year = Number(m[1]);
  if (m[12]) year = 1 - year;
  const days = daysFromCivil(year, month, day);
  let secs = Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6]);
  if (m[8]) {
    const offset = Number(m[9]) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0);
    secs -= m[8] === '-' ? -offset : offset;
  }
  return { days, secs, micros: m[7] ? Number(m[7].padEnd(6, '0')) : 0 };
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/**
 * Formats microseconds since the epoch as ISO text PostgreSQL accepts as input for timestamp and
 * timestamptz (with a `+00` offset when `utc` is set), keeping every microsecond.
 */
export function formatTimestampMicros(micros: bigint, utc: boolean): string {
  if (micros === INFINITY_MICROS) return 'infinity';
  if (micros === NEG_INFINITY_MICROS) return '-infinity';
  let days = micros / MICROS_PER_DAY;
  let rem = micros % MICROS_PER_DAY;
  if (rem < 0n) {
    rem += MICROS_PER_DAY;
    days -= 1n;
  }
  const [y, mo, d] = civilFromDays(Number(days));
  const r = Number(rem);
  const secs = Math.floor(r / 1e6);
  const frac = r % 1e6;
  const year = y <= 0 ? 1 - y : y;
  let s = `${pad(year, 4)}-${pad(mo, 2)}-${pad(d, 2)} ${pad(Math.floor(secs / 3600), 2)}:${pad(Math.floor(secs / 60) % 60, 2)}:${pad(secs % 60, 2)}`;
  if (frac) s += '.' + pad(frac, 6).replace(/0+$/, '');
  if (utc) s += '+00';
  if (y <= 0) s += ' BC';
  return s;
}

/** An interval as PostgreSQL stores it. */
export interface IntervalParts {
  months: number;
  days: number;
  micros: bigint;
}

// PostgreSQL's `postgres` IntervalStyle: `1 year 2 mons -3 days +04:05:06.789`, each part optional.
// Bounded repetitions only, so matching is linear in the text's length.
const INTERVAL_RE =
  /^(?:([+-]?\d{1,10}) years?(?: (?=.)|$))?(?:([+-]?\d{1,10}) mons?(?: (?=.)|$))?(?:([+-]?\d{1,10}) days?(?: (?=.)|$))?(?:([+-])?(\d{1,10}):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?$/;

/**
 * Parses PostgreSQL's default (`postgres` IntervalStyle) text output of an interval. Returns
 * undefined for anything else (other IntervalStyles, malformed text).
 */
export function parseInterval(text: string): IntervalParts | undefined {
  if (text.length === 0) return undefined;
  const m = INTERVAL_RE.exec(text);
  if (!m) return undefined;
  const months = Number(m[1] ?? 0) * 12 + Number(m[2] ?? 0);
  const days = Number(m[3] ?? 0);
  let micros = 0n;
  if (m[5] !== undefined) {
    if (Number(m[6]) > 59 || Number(m[7]) > 59) return undefined;
    const frac = m[8] ? BigInt(m[8].padEnd(6, '0')) : 0n;
    micros = (BigInt(m[5]) * 3600n + BigInt(m[6]) * 60n + BigInt(m[7])) * 1000000n + frac;
    if (m[4] === '-') micros = -micros;
  }
  return { months, days, micros };
}

/** Formats an interval as text PostgreSQL accepts as input, exactly. */
export function formatInterval(iv: IntervalParts): string {
  const micros = iv.micros < 0n ? -iv.micros : iv.micros;
  const sign = iv.micros < 0n ? '-' : '';
  return `${iv.months} mons ${iv.days} days ${sign}${micros / 1000000n}.${String(micros % 1000000n).padStart(6, '0')} seconds`;
}

/**
 * Parses PostgreSQL's ISO timestamp text into milliseconds since the epoch as a float (sub-ms
 * digits dropped), without BigInt: the fast path for results decoded into Date.
 */
export function parseTimestampMs(text: string): number | undefined {
  const t = matchTimestamp(text);
  if (!t) return undefined;
  const ms = t.days * 86400000 + t.secs * 1000 + Math.floor(t.micros / 1000);
  // Beyond Date's range (275760 AD; PostgreSQL goes to 294276 AD): not representable as a Date.
  return ms >= -8.64e15 && ms <= 8.64e15 ? ms : undefined;
}
