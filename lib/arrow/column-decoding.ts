/**
 * Column-wise decoding of an aggregates part's Arrow chunks into typed arrays, without a JS object or string per
 * row: timestamps exactly in any unit (see timestamps.ts), device ids as runs of equal values (one string decoded per
 * run).
 */
import { DataType, Precision, util, type Data, type Field, type TimeUnit, type Vector } from 'apache-arrow';
import type { TextDecoder } from 'node:util';
import { decodeTimestamps } from './timestamps';

/**
 * Whether a column can be a feature: a float of any precision, an integer of any width, signed or not (pandas and
 * polars write counts as Int64), or a decimal (DuckDB's SUM of integers is a Decimal128(38, 0)). Models read float32
 * or float64: see {@link featureValues}.
 */
export function isNumeric(field: Field): boolean {
  const type = field.type as DataType;
  return DataType.isFloat(type) || DataType.isInt(type) || DataType.isDecimal(type);
}

/**
 * A numeric chunk's values as floats, row for row: Float32 and Float64 as they are, Float16, integers and decimals
 * converted (exact for integers up to 2^53 in magnitude, a decimal to the nearest double; the model's float32 input
 * rounds past 2^24 either way).
 */
export function featureValues(data: Data): Float32Array | Float64Array {
  const type = data.type;
  const values: unknown = data.values;
  if (DataType.isFloat(type)) {
    if (type.precision !== Precision.HALF) return values as Float32Array | Float64Array;
    return Float32Array.from(values as Uint16Array, (half) => util.uint16ToFloat64(half));
  }
  if (DataType.isDecimal(type)) {
    // Two's complement in 32-bit words, least significant first: the top word signed, the others not.
    const words = values as Uint32Array;
    const per = type.bitWidth / 32;
    const unit = 10 ** type.scale;
    const out = new Float64Array(data.length);
    for (let i = 0; i < data.length; i++) {
      let v = words[i * per + per - 1]! | 0;
      for (let k = per - 2; k >= 0; k--) v = v * 4294967296 + words[i * per + k]!;
      out[i] = v / unit;
    }
    return out;
  }
  if (values instanceof BigInt64Array || values instanceof BigUint64Array) return Float64Array.from(values, Number);
  return Float64Array.from(values as ArrayLike<number>);
}

/** Whether a type is Utf8, LargeUtf8 or Utf8View. */
export function isString(type: DataType): boolean {
  return DataType.isUtf8(type) || DataType.isLargeUtf8(type) || DataType.isUtf8View(type);
}

/** The type of a column's values: a Dictionary's value type, any other type itself. */
export function valueType(type: DataType): DataType {
  return DataType.isDictionary(type) ? (type.dictionary as DataType) : type;
}

/**
 * Whether a column can hold device ids: a string type, an integer of any width, signed or not (a fleet keyed by
 * serial number), or a Dictionary of either. An integer id is the device's name in decimal (`10234`, `-7`).
 */
export function isDeviceIdType(type: DataType): boolean {
  const values = valueType(type);
  return isString(values) || DataType.isInt(values);
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

/**
 * Runs of equal ids from a Utf8, LargeUtf8 or Utf8View chunk, comparing bytes and decoding one string per run.
 */
export function deviceRunsFromStrings(
  data: Data,
  row0: number,
  batch: number,
  decoder: TextDecoder,
  addRun: AddRun,
): void {
  const { bytes, offsets } = DataType.isUtf8View(data.type) ? fromViews(data) : stringLayout(data);
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

/** A Utf8 or LargeUtf8 chunk's bytes and row offsets (row `i` is `bytes[offsets[i], offsets[i + 1])`). */
function stringLayout(data: Data): { bytes: Uint8Array; offsets: Int32Array | Float64Array } {
  const rawOffsets = data.valueOffsets as Int32Array | BigInt64Array;
  // Arrow slices the offsets buffer with the data (`data.offset` only applies to the validity bitmap).
  const offsets = rawOffsets instanceof BigInt64Array ? Float64Array.from(rawOffsets, Number) : rawOffsets;
  return { bytes: data.values as Uint8Array, offsets };
}

/** Bytes a view holds itself; longer values are in a data buffer it names. */
const VIEW_INLINE = 12;

/**
 * A Utf8View chunk (polars' string type) in the Utf8 layout: each row's 16-byte view holds its length and either its
 * bytes (12 or fewer) or the data buffer and offset they are at; they are copied into one buffer, in row order.
 */
function fromViews(data: Data): { bytes: Uint8Array; offsets: Int32Array } {
  const views = data.values as Uint8Array;
  const n = data.length;
  if (views.byteLength < n * 16)
    throw new Error(`${n} rows need ${n * 16} bytes of views, the batch has ${views.byteLength}`);
  const dv = new DataView(views.buffer, views.byteOffset, views.byteLength);
  const offsets = new Int32Array(n + 1);
  const where: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const at = i * 16;
    const size = dv.getInt32(at, true);
    let row: Uint8Array | undefined;
    if (size <= VIEW_INLINE) row = views.subarray(at + 4, at + 4 + Math.max(size, 0));
    else {
      const buffer = data.variadicBuffers[dv.getInt32(at + 8, true)];
      const lo = dv.getInt32(at + 12, true);
      if (buffer && lo >= 0 && lo + size <= buffer.length) row = buffer.subarray(lo, lo + size);
    }
    if (!row) throw new Error(`row ${i}'s view points outside the batch's data buffers`);
    where.push(row);
    offsets[i + 1] = offsets[i]! + row.length;
  }
  const bytes = new Uint8Array(offsets[n]!);
  for (let i = 0; i < n; i++) bytes.set(where[i]!, offsets[i]);
  return { bytes, offsets };
}

/** The values of an Arrow integer chunk of any width. */
type IntegerValues =
  Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array | BigInt64Array | BigUint64Array;

/**
 * Runs of equal ids from an integer chunk of any width (Int8 to Uint64), one decimal string per run (64-bit ids
 * exactly, through BigInt).
 */
export function deviceRunsFromIntegers(data: Data, row0: number, batch: number, addRun: AddRun): void {
  const values = data.values as IntegerValues;
  const n = data.length;
  // 64-bit ids are compared as pairs of 32-bit words, without a BigInt per row.
  const wide = values instanceof BigInt64Array || values instanceof BigUint64Array;
  const words = wide ? new Int32Array(values.buffer, values.byteOffset, n * 2) : values;
  const w = wide ? 2 : 1;
  let start = 0;
  for (let i = 1; i <= n; i++) {
    if (i < n && words[w * i] === words[w * i - w] && (!wide || words[w * i + 1] === words[w * i - 1])) continue;
    addRun(String(values[start]), row0 + start, row0 + i, batch);
    start = i;
  }
}

/** Runs of equal ids from a Dictionary chunk: the dictionary is decoded once, rows compare integer keys. */
export function deviceRunsFromDictionary(data: Data, row0: number, batch: number, addRun: AddRun): void {
  // Integer ids in decimal, as deviceRunsFromIntegers writes them.
  const dictionary = Array.from((data.dictionary as Vector).toArray() as ArrayLike<unknown>, (id) =>
    typeof id === 'number' || typeof id === 'bigint' ? String(id) : id,
  );
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
