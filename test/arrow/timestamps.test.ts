import { TimeUnit } from 'apache-arrow';
import { decodeTimestamps, encodeTimestamp, finerUnit, isoTime } from '../../lib/arrow/timestamps';
import { random } from '../support/random';

const UNITS = [TimeUnit.SECOND, TimeUnit.MILLISECOND, TimeUnit.MICROSECOND, TimeUnit.NANOSECOND];
const NS_PER: Record<TimeUnit, bigint> = {
  [TimeUnit.SECOND]: 1_000_000_000n,
  [TimeUnit.MILLISECOND]: 1_000_000n,
  [TimeUnit.MICROSECOND]: 1_000n,
  [TimeUnit.NANOSECOND]: 1n,
};

/** Epoch nanoseconds to (floored ms, ns within the ms), with BigInt: the reference the fast path must match. */
function reference(totalNs: bigint): [number, number] {
  const ms = totalNs >= 0n ? totalNs / 1_000_000n : -((-totalNs + 999_999n) / 1_000_000n);
  return [Number(ms), Number(totalNs - ms * 1_000_000n)];
}

describe('timestamps', () => {
  it.each(UNITS)('decodes and re-encodes unit %s exactly, as BigInt arithmetic does', (unit) => {
    const rand = random(unit + 1);
    // Times within ±285 years of 1970 (what an int64 of nanoseconds holds), at the unit's precision, and edges.
    const values = [0n, 1n, -1n, 999n, -1000n, 1_763_726_400_123_456_789n / NS_PER[unit]];
    for (let i = 0; i < 2000; i++) values.push(BigInt(Math.floor((rand() * 2 - 1) * 9e18)) / NS_PER[unit]);
    const words = new Int32Array(BigInt64Array.from(values).buffer);
    const ms = new Float64Array(values.length);
    const nanos = new Int32Array(values.length);
    decodeTimestamps(words, values.length, unit, ms, nanos, 0);
    const out = new Int32Array(2);
    const outNs = new Int32Array(2);
    const wrong: string[] = [];
    values.forEach((v, i) => {
      const [refMs, refNanos] = reference(v * NS_PER[unit]);
      const gotNanos = unit === TimeUnit.MICROSECOND || unit === TimeUnit.NANOSECOND ? nanos[i]! : 0;
      const encoded = encodeTimestamp(ms[i]!, gotNanos, unit, out, 0);
      // Any unit converts to nanoseconds exactly.
      const inNs = encodeTimestamp(ms[i]!, gotNanos, TimeUnit.NANOSECOND, outNs, 0);
      if (
        ms[i] !== refMs ||
        gotNanos !== refNanos ||
        !encoded ||
        new BigInt64Array(out.buffer)[0] !== v ||
        !inNs ||
        new BigInt64Array(outNs.buffer)[0] !== v * NS_PER[unit]
      ) {
        wrong.push(`${v}: ${ms[i]} ms + ${gotNanos} ns`);
      }
    });
    expect(wrong).toEqual([]);
  });

  it('refuses to encode a time that is not a whole number of the unit', () => {
    const out = new Int32Array(2);
    expect(encodeTimestamp(1_000, 500, TimeUnit.MICROSECOND, out, 0)).toBe(false);
    expect(encodeTimestamp(1_001, 0, TimeUnit.SECOND, out, 0)).toBe(false);
    expect(encodeTimestamp(1_000, 1, TimeUnit.MILLISECOND, out, 0)).toBe(false);
    expect(encodeTimestamp(1_000, 1_000, TimeUnit.MICROSECOND, out, 0)).toBe(true);
  });

  it('picks the finer unit and prints nanoseconds only when there are any', () => {
    expect(finerUnit(TimeUnit.MILLISECOND, TimeUnit.MICROSECOND)).toBe(TimeUnit.MICROSECOND);
    expect(finerUnit(TimeUnit.NANOSECOND, TimeUnit.SECOND)).toBe(TimeUnit.NANOSECOND);
    const t = Date.UTC(2026, 10, 21, 12, 0, 0, 123);
    expect(isoTime(t)).toBe('2026-11-21T12:00:00.123Z');
    expect(isoTime(t, 456_789)).toBe('2026-11-21T12:00:00.123456789Z');
  });
});
