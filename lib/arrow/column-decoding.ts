/**
 * Column-wise decoding of an aggregates part's Arrow chunks into typed arrays, without a JS object or string per
 * row: timestamps exactly in any unit (see timestamps.ts), device ids as runs of equal values (one string decoded per run).
 */
import { DataType, Precision, type Data, type Field, type TimeUnit, type Vector } from 'apache-arrow';
import type { TextDecoder } from 'node:util';
import { decodeTimestamps } from './timestamps';

/** Whether a column holds Float32 or Float64 values, the feature types a model can read. */
export function isFloat32or64(field: Field): boolean {
  const type = field.type as DataType;
  return DataType.isFloat(type) && (type.precision === Precision.SINGLE || type.precision === Precision.DOUBLE);
}

/** Whether a type is Utf8 or LargeUtf8. */
export function isString(type: DataType): boolean {
  return DataType.isUtf8(type) || DataType.isLargeUtf8(type);
}

/**
 * Copies a Timestamp chunk into `ms` (whole epoch ms, NaN for nulls) and, for sub-millisecond units, `nanos` (the
 * nanoseconds within that ms) from row `at`, exactly and without BigInt arithmetic.
 */
export function readTimestamps(
  data: Data,
  unit: TimeUnit,
  ms: Float64Array,
  nanos: Int32Array | null,
  at: number,
): void {
  const raw = data.values as BigInt64Array | Int32Array;
  decodeTimestamps(new Int32Array(raw.buffer, raw.byteOffset, data.length * 2), data.length, unit, ms, nanos, at);
  if (data.nullCount > 0 && data.nullBitmap) {
    const bits = data.nullBitmap;
    for (let i = 0; i < data.length; i++) {
      const j = data.offset + i;
      if ((bits[j >> 3]! & (1 << (j & 7))) === 0) ms[at + i] = NaN;
    }
  }
}

/** Receives one run of equal device ids: rows `[start, end)` of the part, in record batch `batch`. */
export type AddRun = (device: string, start: number, end: number, batch: number) => void;

/** Runs of equal ids from a Utf8/LargeUtf8 chunk, comparing bytes and decoding one string per run. */
export function deviceRunsFromStrings(
  data: Data,
  row0: number,
  batch: number,
  decoder: TextDecoder,
  addRun: AddRun,
): void {
  const bytes = data.values as Uint8Array;
  const rawOffsets = data.valueOffsets as Int32Array | BigInt64Array;
  // Arrow slices the offsets buffer with the data (`data.offset` only applies to the validity bitmap).
  const offsets = rawOffsets instanceof BigInt64Array ? Float64Array.from(rawOffsets, Number) : rawOffsets;
  const n = data.length;
  let start = 0;
  let prevLo = 0;
  let prevHi = 0;
  for (let i = 0; i <= n; i++) {
    let same = false;
    let lo = 0;
    let hi = 0;
    if (i < n) {
      lo = offsets[i]!;
      hi = offsets[i + 1]!;
      if (i > 0 && hi - lo === prevHi - prevLo) {
        same = true;
        for (let k = 0; k < hi - lo; k++) {
          if (bytes[lo + k] !== bytes[prevLo + k]) {
            same = false;
            break;
          }
        }
      }
    }
    if (i > 0 && !same) {
      addRun(decoder.decode(bytes.subarray(prevLo, prevHi)), row0 + start, row0 + i, batch);
      start = i;
    }
    prevLo = lo;
    prevHi = hi;
  }
}

/** Runs of equal ids from a Dictionary chunk: the dictionary is decoded once, rows compare integer keys. */
export function deviceRunsFromDictionary(data: Data, row0: number, batch: number, addRun: AddRun): void {
  const dictionary = (data.dictionary as Vector).toArray() as (string | null)[];
  const raw = data.values as ArrayLike<number | bigint>;
  const indices =
    raw instanceof BigInt64Array || raw instanceof BigUint64Array
      ? Float64Array.from(raw, Number)
      : (raw as ArrayLike<number>);
  const n = data.length;
  let start = 0;
  for (let i = 1; i <= n; i++) {
    if (i < n && indices[i] === indices[i - 1]) continue;
    const key = indices[start]!;
    const id = dictionary[key];
    if (typeof id !== 'string') throw new Error(`dictionary key ${key} has no value`);
    addRun(id, row0 + start, row0 + i, batch);
    start = i;
  }
}
