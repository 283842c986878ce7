/**
 * Timestamps of any Arrow unit, exactly: fleetscore holds a row's time as whole epoch milliseconds (a double, for
 * window bounds and sorting) plus the nanoseconds within that millisecond, so a microsecond or nanosecond input
 * round-trips into the predictions bit for bit. Int64 values are handled as (lo, hi) int32 words without BigInt
 * (fast on the hot path), in arithmetic that stays below 2^53 for any date within ±100,000 years of 1970.
 */
import { TimeUnit } from 'apache-arrow';

/** A timestamp column's type: its unit and time zone (null for a zone-less, "naive" timestamp). */
export interface TimestampType {
  unit: TimeUnit;
  timezone: string | null;
}

/** The type predictions had before they kept their input's: milliseconds, UTC. */
export const MILLISECONDS_UTC: TimestampType = { unit: TimeUnit.MILLISECOND, timezone: 'UTC' };

/** Whether `type` is milliseconds in UTC, the type a predictions file without a stated one has. */
export function isMillisecondsUtc(type: TimestampType): boolean {
  return type.unit === TimeUnit.MILLISECOND && type.timezone === 'UTC';
}

const TWO_32 = 4294967296;
/** Units of each kind in one millisecond (seconds: a thousandth). */
const PER_MS: Record<TimeUnit, number> = {
  [TimeUnit.SECOND]: 1e-3,
  [TimeUnit.MILLISECOND]: 1,
  [TimeUnit.MICROSECOND]: 1e3,
  [TimeUnit.NANOSECOND]: 1e6,
};

/** The finer of two units (a coarser value converts to it exactly). */
export function finerUnit(a: TimeUnit, b: TimeUnit): TimeUnit {
  return PER_MS[a] >= PER_MS[b] ? a : b;
}

/** Whether `unit` resolves below a millisecond, so a part of it keeps nanoseconds within the millisecond. */
export function isSubMillisecond(unit: TimeUnit): boolean {
  return PER_MS[unit] > 1;
}

/**
 * Decodes `n` int64 timestamps of `unit`, given as little-endian int32 word pairs, into whole epoch ms (floored)
 * at `ms[at + i]` and, for sub-millisecond units, the nanoseconds within that ms at `nanos[at + i]`.
 */
export function decodeTimestamps(
  words: Int32Array,
  n: number,
  unit: TimeUnit,
  ms: Float64Array,
  nanos: Int32Array | null,
  at: number,
): void {
  const perMs = PER_MS[unit];
  if (!isSubMillisecond(unit)) {
    const scale = 1 / perMs;
    for (let i = 0; i < n; i++) ms[at + i] = (words[2 * i + 1]! * TWO_32 + (words[2 * i]! >>> 0)) * scale;
    return;
  }
  // 2^32 = a * perMs + b, so v = hi * 2^32 + lo = hi * a * perMs + (hi * b + lo), each term exact.
  const a = Math.floor(TWO_32 / perMs);
  const b = TWO_32 - a * perMs;
  const nsPerUnit = 1e6 / perMs;
  for (let i = 0; i < n; i++) {
    const hi = words[2 * i + 1]!;
    const t = hi * b + (words[2 * i]! >>> 0);
    let q = Math.floor(t / perMs);
    let r = t - q * perMs;
    if (r < 0) {
      q -= 1;
      r += perMs;
    } else if (r >= perMs) {
      q += 1;
      r -= perMs;
    }
    ms[at + i] = hi * a + q;
    nanos![at + i] = r * nsPerUnit;
  }
}

/**
 * Encodes whole epoch ms plus nanoseconds within the ms as an int64 of `unit` into the word pair at `i` of
 * `words`. Returns false, writing nothing, when the time is not a whole number of that unit.
 */
export function encodeTimestamp(ms: number, nanos: number, unit: TimeUnit, words: Int32Array, i: number): boolean {
  const perMs = PER_MS[unit];
  let v: number;
  if (perMs < 1) {
    if (nanos !== 0 || ms % 1000 !== 0) return false;
    v = ms / 1000;
  } else {
    const nsPerUnit = 1e6 / perMs;
    if (nanos % nsPerUnit !== 0) return false;
    const ticks = nanos / nsPerUnit;
    // ms = mh * 2^16 + ml; v = (mh * perMs) * 2^16 + (ml * perMs + ticks), and mh * perMs = xh * 2^16 + xl.
    const mh = Math.floor(ms / 65536);
    const ml = ms - mh * 65536;
    const x = mh * perMs;
    const xh = Math.floor(x / 65536);
    const low = (x - xh * 65536) * 65536 + ml * perMs + ticks;
    const carry = Math.floor(low / TWO_32);
    words[2 * i] = (low - carry * TWO_32) | 0;
    words[2 * i + 1] = (xh + carry) | 0;
    return true;
  }
  const hi = Math.floor(v / TWO_32);
  words[2 * i] = (v - hi * TWO_32) | 0;
  words[2 * i + 1] = hi | 0;
  return true;
}

/** ISO 8601 of whole epoch ms plus nanoseconds within it (digits past the ms only when there are any). */
export function isoTime(ms: number, nanos = 0): string {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return String(ms);
  const iso = d.toISOString();
  return nanos === 0 ? iso : `${iso.slice(0, -1)}${String(nanos).padStart(6, '0')}Z`;
}
