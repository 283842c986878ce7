/**
 * Reading a window's sensor aggregates: Arrow IPC part files (file or stream format, from any Arrow writer)
 * with the columns `device_id` (Utf8, LargeUtf8 or a Dictionary of them), `ts` (Timestamp of any unit and time
 * zone, read as epoch milliseconds) and float feature columns (Float32 or Float64, nullable).
 *
 * This is the scorer's hot path (100k devices x 60 rows), so nothing here makes a JS object or string per row:
 * device ids are decoded once per run of equal ids, timestamps and features are copied column-wise from the
 * Arrow buffers into typed arrays.
 *
 * Errors and the unit they fail (all are `InvalidAggregates`, none is fixed by a retry):
 * - the whole part file: bytes that are not Arrow IPC, truncated or corrupt; no `device_id` or `ts` column, or
 *   either of the wrong type; a null `device_id` (the row cannot be attributed). `readAggregatesPart` throws
 *   these. An unreadable part cannot say which devices it held. Under the window's layout `any` (see
 *   `AGGREGATES_LAYOUTS`), `WindowAggregates.device` then fails every device it is asked for with that file
 *   named, instead of scoring partial data or calling a device "no data"; under `device-partitioned` it fails
 *   only the devices that no readable part holds, and scores the rest.
 * - one device: a null `ts`; a feature its model needs that is missing or not float; a NaN, Infinity or null
 *   feature value; two rows with the same `ts`. `WindowAggregates.device` throws these for that device only.
 *   A feature missing from one part only fails the devices that have rows in that part.
 * - neither: rows with `ts` outside `[window.startMs, window.endMs)` are dropped and counted.
 *
 * A stream-format part must end with the end-of-stream marker (every writer adds it on close), because a
 * stream cut at a message boundary is otherwise indistinguishable from a shorter one. Compressed IPC bodies
 * (LZ4/ZSTD) need a codec in apache-arrow's `compressionRegistry`; without one they fail as unreadable.
 */
import {
  DataType,
  Precision,
  type Data,
  type Field,
  type Table,
  tableFromIPC,
  TimeUnit,
  type Vector,
} from 'apache-arrow';
import { TextDecoder } from 'node:util';
import { forEachLimited } from '../shared/concurrency';
import { keys } from '../shared/keys';
import type { AggregatesLayout } from '../shared/names';
import type { ObjectStore } from '../store/object-store';
import type { Window } from '../shared/window';
import { InvalidAggregates, messageOf } from '../shared/errors';

/** The device id column of an aggregates file. */
export const DEVICE_COLUMN = 'device_id';
/** The timestamp column of an aggregates file. */
export const TS_COLUMN = 'ts';

/** A feature column as stored in one record batch: values already start at the batch's first row. */
export interface FeatureChunk {
  values: Float32Array | Float64Array;
  /** Validity bitmap (bit `offset + i`), or null when the chunk has no nulls. */
  nullBitmap: Uint8Array | null;
  offset: number;
}

/** What a part knows about one feature column: its chunks, or why it cannot be used. */
export type FeatureColumn = { ok: true; chunks: FeatureChunk[] } | { ok: false; reason: string };

/**
 * One decoded part file. Rows are grouped into runs of equal `device_id` (split at record batch boundaries);
 * a device may have several runs in a part, and rows in several parts.
 */
export class AggregatesPart {
  /** Epoch milliseconds of every row (NaN where `ts` is null); fractions keep sub-ms units. */
  readonly ts: Float64Array;
  /** Per run: first row (inclusive) and end row (exclusive) within the part, and the record batch. */
  readonly runStart: Int32Array;
  readonly runEnd: Int32Array;
  readonly runBatch: Int32Array;
  private readonly runsByDevice: Map<string, number[]>;
  private readonly batchStart: Int32Array;
  private readonly featureCache = new Map<string, FeatureColumn>();

  /** @internal use `readAggregatesPart`. */
  constructor(
    /** The part's store key, named in every error. */
    readonly file: string,
    private readonly table: Table,
    decoded: DecodedPart,
  ) {
    this.ts = decoded.ts;
    this.runStart = decoded.runStart;
    this.runEnd = decoded.runEnd;
    this.runBatch = decoded.runBatch;
    this.runsByDevice = decoded.runsByDevice;
    this.batchStart = decoded.batchStart;
  }

  /** Number of rows in the part. */
  get rows(): number {
    return this.ts.length;
  }

  /** The distinct device ids in the part, in order of first appearance. Untrusted data: validate before use. */
  get devices(): string[] {
    return [...this.runsByDevice.keys()];
  }

  /** Whether the part holds rows of `device`. */
  has(device: string): boolean {
    return this.runsByDevice.has(device);
  }

  /** The run indexes of `device` (empty when the part has none of its rows). */
  runsOf(device: string): readonly number[] {
    return this.runsByDevice.get(device) ?? [];
  }

  /** The columns other than `device_id` and `ts`, whatever their type. */
  get featureNames(): string[] {
    return this.table.schema.fields.map((f) => f.name).filter((n) => n !== DEVICE_COLUMN && n !== TS_COLUMN);
  }

  /** A feature column's chunks, or why it cannot be used (missing, not Float32/Float64). Cached per name. */
  feature(name: string): FeatureColumn {
    let col = this.featureCache.get(name);
    if (!col) {
      col = this.readFeature(name);
      this.featureCache.set(name, col);
    }
    return col;
  }

  /** Row of the part where record batch `batch` starts. */
  batchOffset(batch: number): number {
    return this.batchStart[batch] ?? 0;
  }

  private readFeature(name: string): FeatureColumn {
    const field = this.table.schema.fields.find((f) => f.name === name);
    if (!field || name === DEVICE_COLUMN || name === TS_COLUMN) {
      return { ok: false, reason: 'is not a column of the file' };
    }
    if (!isFloat32or64(field)) {
      return { ok: false, reason: `has type ${String(field.type)}, expected Float32 or Float64` };
    }
    const vector: Vector | null = this.table.getChild(name);
    if (!vector) return { ok: false, reason: 'is not a column of the file' };
    const chunks = vector.data.map((d: Data) => ({
      values: d.values as Float32Array | Float64Array,
      nullBitmap: d.nullCount > 0 ? (d.nullBitmap ?? null) : null,
      offset: d.offset,
    }));
    return { ok: true, chunks };
  }
}

/** The parsed, per-row-object-free form of a part; built by `readAggregatesPart`. */
interface DecodedPart {
  ts: Float64Array;
  runStart: Int32Array;
  runEnd: Int32Array;
  runBatch: Int32Array;
  runsByDevice: Map<string, number[]>;
  batchStart: Int32Array;
}

function isFloat32or64(field: Field): boolean {
  const type = field.type as DataType;
  return DataType.isFloat(type) && (type.precision === Precision.SINGLE || type.precision === Precision.DOUBLE);
}

function isString(type: DataType): boolean {
  return DataType.isUtf8(type) || DataType.isLargeUtf8(type);
}

const FILE_MAGIC = [0x41, 0x52, 0x52, 0x4f, 0x57, 0x31]; // "ARROW1"

function startsWithMagic(bytes: Uint8Array, at: number): boolean {
  if (at < 0 || at + FILE_MAGIC.length > bytes.length) return false;
  return FILE_MAGIC.every((b, i) => bytes[at + i] === b);
}

/**
 * Checks the framing arrow's reader is lenient about: a file-format part must end with the magic (its footer
 * is written last), and a stream-format part must end with the end-of-stream marker, because a stream cut at
 * a message boundary otherwise reads as a shorter, valid stream and rows would vanish silently.
 */
function checkFraming(file: string, bytes: Uint8Array): void {
  if (bytes.length === 0) throw new InvalidAggregates('is empty, expected an Arrow IPC file or stream', { file });
  if (startsWithMagic(bytes, 0)) {
    if (!startsWithMagic(bytes, bytes.length - FILE_MAGIC.length)) {
      throw new InvalidAggregates('is a truncated Arrow IPC file (no footer magic at the end)', { file });
    }
    return;
  }
  const n = bytes.length;
  const u32 = (at: number) =>
    (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
  const eos = n >= 8 && u32(n - 8) === 0xffffffff && u32(n - 4) === 0;
  const legacyEos = n >= 4 && u32(n - 4) === 0; // pre-0.15 streams end with a bare zero length
  if (!eos && !legacyEos) {
    throw new InvalidAggregates('is not a complete Arrow IPC stream (no end-of-stream marker) or file', { file });
  }
}

/**
 * Decodes one part file's bytes (IPC file or stream format). Throws `InvalidAggregates` naming `file` for
 * problems that fail the whole file (see the module comment); device-level problems are found later, only for
 * the devices asked for.
 */
export function readAggregatesPart(file: string, bytes: Uint8Array): AggregatesPart {
  checkFraming(file, bytes);
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (err) {
    const reason = messageOf(err);
    throw new InvalidAggregates(
      `is not readable Arrow IPC (corrupt or truncated): ${reason}`,
      { file },
      {
        cause: err,
      },
    );
  }
  const names = table.schema.fields.map((f) => f.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) {
    throw new InvalidAggregates(`has the column ${JSON.stringify(dup)} twice`, { file, field: dup });
  }

  const deviceField = table.schema.fields.find((f) => f.name === DEVICE_COLUMN);
  if (!deviceField) {
    const message = `has no ${DEVICE_COLUMN} column (columns: ${names.join(', ')})`;
    throw new InvalidAggregates(message, { file, field: DEVICE_COLUMN });
  }
  const dt = deviceField.type as DataType;
  if (!(isString(dt) || (DataType.isDictionary(dt) && isString(dt.dictionary as DataType)))) {
    throw new InvalidAggregates(
      `column ${DEVICE_COLUMN} has type ${String(deviceField.type)}, expected Utf8, LargeUtf8 or a Dictionary of them`,
      { file, field: DEVICE_COLUMN },
    );
  }
  const tsField = table.schema.fields.find((f) => f.name === TS_COLUMN);
  if (!tsField) {
    const message = `has no ${TS_COLUMN} column (columns: ${names.join(', ')})`;
    throw new InvalidAggregates(message, { file, field: TS_COLUMN });
  }
  if (!DataType.isTimestamp(tsField.type)) {
    const message = `column ${TS_COLUMN} has type ${String(tsField.type)}, expected Timestamp`;
    throw new InvalidAggregates(message, { file, field: TS_COLUMN });
  }
  const unit = (tsField.type as { unit: TimeUnit }).unit;

  const deviceVector = table.getChild(DEVICE_COLUMN) as Vector;
  const tsVector = table.getChild(TS_COLUMN) as Vector;
  const rows = table.numRows;
  const ts = new Float64Array(rows);
  const runStart: number[] = [];
  const runEnd: number[] = [];
  const runBatch: number[] = [];
  const runsByDevice = new Map<string, number[]>();
  const batchStart = new Int32Array(deviceVector.data.length);
  const decoder = new TextDecoder('utf-8', { fatal: true });

  const addRun = (device: string, start: number, end: number, batch: number) => {
    const id = runStart.length;
    runStart.push(start);
    runEnd.push(end);
    runBatch.push(batch);
    const list = runsByDevice.get(device);
    if (list) list.push(id);
    else runsByDevice.set(device, [id]);
  };

  let row = 0;
  for (let b = 0; b < deviceVector.data.length; b++) {
    const dev = deviceVector.data[b] as Data;
    const tsd = tsVector.data[b] as Data;
    if (!dev || !tsd || dev.length !== tsd.length) {
      throw new InvalidAggregates(`record batch ${b} has columns of different lengths`, { file });
    }
    batchStart[b] = row;
    if (dev.nullCount > 0) {
      throw new InvalidAggregates(`${dev.nullCount} rows have a null ${DEVICE_COLUMN}`, { file, field: DEVICE_COLUMN });
    }
    readTimestamps(tsd, unit, ts, row);
    try {
      if (DataType.isDictionary(dev.type)) deviceRunsFromDictionary(dev, row, b, addRun);
      else deviceRunsFromStrings(dev, row, b, decoder, addRun);
    } catch (err) {
      if (err instanceof InvalidAggregates) throw err;
      const context = { file, field: DEVICE_COLUMN };
      throw new InvalidAggregates(`column ${DEVICE_COLUMN} is corrupt: ${String(err)}`, context, { cause: err });
    }
    row += dev.length;
  }
  return new AggregatesPart(file, table, {
    ts,
    runStart: Int32Array.from(runStart),
    runEnd: Int32Array.from(runEnd),
    runBatch: Int32Array.from(runBatch),
    runsByDevice,
    batchStart,
  });
}

const MS_PER_UNIT: Record<TimeUnit, number> = {
  [TimeUnit.SECOND]: 1000,
  [TimeUnit.MILLISECOND]: 1,
  [TimeUnit.MICROSECOND]: 1e-3,
  [TimeUnit.NANOSECOND]: 1e-6,
};

/** Copies a Timestamp chunk into `out` from `at` as epoch ms, without BigInt arithmetic (NaN for nulls). */
function readTimestamps(data: Data, unit: TimeUnit, out: Float64Array, at: number): void {
  const raw = data.values as BigInt64Array | Int32Array;
  // Read the int64 values as little-endian (lo, hi) int32 pairs: exact below 2^53, and fast.
  const words = new Int32Array(raw.buffer, raw.byteOffset, data.length * 2);
  const scale = MS_PER_UNIT[unit];
  for (let i = 0; i < data.length; i++) {
    const v = words[2 * i + 1]! * 4294967296 + (words[2 * i]! >>> 0);
    out[at + i] = scale === 1 ? v : v * scale;
  }
  if (data.nullCount > 0 && data.nullBitmap) {
    const bits = data.nullBitmap;
    for (let i = 0; i < data.length; i++) {
      const j = data.offset + i;
      if ((bits[j >> 3]! & (1 << (j & 7))) === 0) out[at + i] = NaN;
    }
  }
}

type AddRun = (device: string, start: number, end: number, batch: number) => void;

/** Runs of equal ids from a Utf8/LargeUtf8 chunk, comparing bytes and decoding one string per run. */
function deviceRunsFromStrings(data: Data, row0: number, batch: number, decoder: TextDecoder, addRun: AddRun): void {
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
function deviceRunsFromDictionary(data: Data, row0: number, batch: number, addRun: AddRun): void {
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

/** One device's rows of a window, sorted by `ts`: the model input, row-major. */
export interface DeviceRows {
  device: string;
  /** Number of rows in the window. */
  rows: number;
  /** Epoch milliseconds of each row, ascending and distinct. */
  ts: Float64Array;
  /** Row-major `[rows, features.length]` float32 model input, in the order of `features`. */
  x: Float32Array;
  /** The feature names the columns of `x` hold. */
  features: readonly string[];
  /** Rows of this device whose `ts` fell outside the window and were dropped. */
  droppedOutsideWindow: number;
}

/**
 * A window's aggregates across all its part files, ready to hand each device its rows. Built by
 * `loadWindowAggregates` (or directly from parsed parts in tests and tools).
 */
export class WindowAggregates {
  constructor(
    readonly window: Window,
    /** The parts that were read and hold at least one wanted device. */
    readonly parts: readonly AggregatesPart[],
    /** Parts that failed as a whole; the devices they may have held fail naming the first of them. */
    readonly failedParts: readonly InvalidAggregates[] = [],
    /** Where a device's rows may be, which decides the devices an unreadable part fails. */
    readonly layout: AggregatesLayout = 'any',
  ) {}

  /** The distinct device ids across the readable parts. Untrusted data: validate before use. */
  devices(): string[] {
    const all = new Set<string>();
    for (const p of this.parts) for (const d of p.devices) all.add(d);
    return [...all];
  }

  /**
   * `device`'s rows of the window with the columns `features` (a model's feature list), or `undefined` when
   * no part holds a row of it (no data; `rows` is 0 when it only has rows outside the window). Throws
   * `InvalidAggregates` naming file, device and field for a device-level problem, and for a device whose rows
   * an unreadable part may hold: every device under the layout `any`, under `device-partitioned` a device no
   * readable part holds.
   */
  device(device: string, features: readonly string[]): DeviceRows | undefined {
    const holders = this.parts.filter((p) => p.has(device));
    const failed = this.failedParts[0];
    if (failed && (this.layout === 'any' || holders.length === 0)) {
      const others = this.failedParts.length > 1 ? ` (and ${this.failedParts.length - 1} more unreadable parts)` : '';
      const where =
        this.layout === 'any'
          ? 'so the rows of this device may be missing'
          : 'and no readable part holds rows of this device, so they may be in it';
      throw new InvalidAggregates(
        `cannot be read as a whole${others}, ${where}: ${failed.message}`,
        { file: failed.file, device, field: failed.field },
        { cause: failed },
      );
    }
    if (holders.length > 1 && this.layout === 'device-partitioned') {
      const [a, b] = holders as [AggregatesPart, AggregatesPart];
      throw new InvalidAggregates(
        `rows of this device are also in ${a.file}, but the window's aggregates layout is device-partitioned ` +
          `(all rows of a device in one part)`,
        { file: b.file, device, field: DEVICE_COLUMN },
      );
    }
    if (holders.length === 0) return undefined;
    const { startMs, endMs } = this.window;
    const k = features.length;

    // Pass 1: check the columns, count rows in the window, find null timestamps.
    let rows = 0;
    let dropped = 0;
    for (const part of holders) {
      for (const f of features) {
        const col = part.feature(f);
        if (!col.ok) {
          const context = { file: part.file, device, field: f };
          throw new InvalidAggregates(`feature ${JSON.stringify(f)} ${col.reason}`, context);
        }
      }
      for (const r of part.runsOf(device)) {
        for (let i = part.runStart[r]!; i < part.runEnd[r]!; i++) {
          const t = part.ts[i]!;
          if (t !== t) {
            throw new InvalidAggregates(`a row has a null ${TS_COLUMN}`, { file: part.file, device, field: TS_COLUMN });
          }
          if (t >= startMs && t < endMs) rows++;
          else dropped++;
        }
      }
    }

    // Pass 2: copy timestamps and features column-wise; remember where each row came from for error messages.
    const ts = new Float64Array(rows);
    const x = new Float32Array(rows * k);
    const source = new Int32Array(rows);
    let bad: { ts: number; file: string; field: string; what: string } | undefined;
    let out = 0;
    for (let p = 0; p < holders.length; p++) {
      const part = holders[p]!;
      const cols = features.map((f) => (part.feature(f) as { chunks: FeatureChunk[] }).chunks);
      for (const r of part.runsOf(device)) {
        const b = part.runBatch[r]!;
        const base = part.batchOffset(b);
        const first = out;
        for (let i = part.runStart[r]!; i < part.runEnd[r]!; i++) {
          const t = part.ts[i]!;
          if (t >= startMs && t < endMs) {
            ts[out] = t;
            source[out] = p;
            out++;
          }
        }
        for (let j = 0; j < k; j++) {
          const chunk = cols[j]![b]!;
          const { values, nullBitmap, offset } = chunk;
          let o = first;
          for (let i = part.runStart[r]!; i < part.runEnd[r]!; i++) {
            const t = part.ts[i]!;
            if (t < startMs || t >= endMs) continue;
            const li = i - base;
            const v = values[li]!;
            x[o * k + j] = v;
            o++;
            // v - v is NaN for NaN and +-Infinity; the null bit is only read for chunks that have nulls.
            const isNull = nullBitmap !== null && (nullBitmap[(offset + li) >> 3]! & (1 << ((offset + li) & 7))) === 0;
            if ((isNull || v - v !== 0) && (bad === undefined || t < bad.ts)) {
              bad = { ts: t, file: part.file, field: features[j]!, what: isNull ? 'null' : String(v) };
            }
          }
        }
      }
    }
    if (bad) {
      throw new InvalidAggregates(`feature ${JSON.stringify(bad.field)} is ${bad.what} at ${isoTime(bad.ts)}`, {
        file: bad.file,
        device,
        field: bad.field,
        ts: bad.ts,
      });
    }

    // Rows are usually in time order already; sort (rarely) by ts, then reject duplicate timestamps.
    let sorted = true;
    for (let i = 1; i < rows; i++) {
      if (ts[i]! < ts[i - 1]!) {
        sorted = false;
        break;
      }
    }
    let tsOut = ts;
    let xOut = x;
    let srcOut = source;
    if (!sorted) {
      const order = Array.from({ length: rows }, (_, i) => i).sort((a, b) => ts[a]! - ts[b]! || a - b);
      tsOut = new Float64Array(rows);
      xOut = new Float32Array(rows * k);
      srcOut = new Int32Array(rows);
      for (let i = 0; i < rows; i++) {
        const from = order[i]!;
        tsOut[i] = ts[from]!;
        srcOut[i] = source[from]!;
        xOut.set(x.subarray(from * k, from * k + k), i * k);
      }
    }
    for (let i = 1; i < rows; i++) {
      if (tsOut[i] === tsOut[i - 1]) {
        const a = holders[srcOut[i - 1]!]!.file;
        const b = holders[srcOut[i]!]!.file;
        throw new InvalidAggregates(
          `two rows have the same ${TS_COLUMN} ${isoTime(tsOut[i]!)}${a === b ? '' : ` (the other is in ${a})`}`,
          { file: b, device, field: TS_COLUMN, ts: tsOut[i] },
        );
      }
    }
    return { device, rows, ts: tsOut, x: xOut, features: [...features], droppedOutsideWindow: dropped };
  }
}

function isoTime(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

/** The part files of a window, sorted by key. */
export async function listAggregateParts(store: ObjectStore, window: Window): Promise<string[]> {
  const prefix = keys.aggregatesPrefix(window.id);
  return (await store.list(prefix)).filter((k) => k.endsWith('.arrow'));
}

/** Options of `loadWindowAggregates`. */
export interface LoadAggregatesOptions {
  /** Keep only parts that hold at least one of these devices (all parts when omitted). */
  devices?: ReadonlySet<string>;
  /** Parts fetched at once. */
  concurrency?: number;
}

/**
 * Reads every part of `window` from the store and returns the window's aggregates. A part that fails as a
 * whole (`InvalidAggregates`) does not throw here: it is kept in `failedParts`, so the caller can fail exactly
 * the devices it asks for with that reason. Store errors (network, permissions) do throw: a retry may fix them.
 */
export async function loadWindowAggregates(
  store: ObjectStore,
  window: Window,
  { devices, concurrency = 8 }: LoadAggregatesOptions = {},
): Promise<WindowAggregates> {
  const files = await listAggregateParts(store, window);
  const parts = new Array<AggregatesPart | undefined>(files.length);
  const failed = new Array<InvalidAggregates | undefined>(files.length);
  await forEachLimited(files, concurrency, async (file, i) => {
    const bytes = await store.get(file);
    try {
      const part = readAggregatesPart(file, bytes);
      if (!devices || part.devices.some((d) => devices.has(d))) parts[i] = part;
    } catch (err) {
      if (!(err instanceof InvalidAggregates)) throw err;
      failed[i] = err;
    }
  });
  return new WindowAggregates(
    window,
    parts.filter((p): p is AggregatesPart => p !== undefined),
    failed.filter((e): e is InvalidAggregates => e !== undefined),
  );
}
