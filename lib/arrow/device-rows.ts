/**
 * Gathering one device's rows of a window from the parts that hold them: feature columns copied column-wise
 * into one row-major float32 matrix, rows sorted by `ts`, and the device-level checks (missing or non-float
 * feature, null `ts`, NaN/Infinity/null value, duplicate `ts`), each failing only this device.
 */
import { InvalidAggregates } from '../shared/errors';
import { TS_COLUMN, type AggregatesPart, type FeatureChunk } from './aggregates-part';
import { isoTime } from './timestamps';

/**
 * What a NaN or null feature value does: fail the device (`fail`, the default), or reach the model as NaN (`model`:
 * for models that handle missing values themselves, such as XGBoost's and LightGBM's trees or a pipeline with an
 * imputer). An infinite value fails the device either way.
 */
export type MissingValues = 'fail' | 'model';

/** One device's rows of a window, sorted by `ts`: the model input, row-major. */
export interface DeviceRows {
  device: string;
  /** Number of rows in the window. */
  rows: number;
  /** Whole epoch milliseconds of each row; with `tsNanos`, ascending and distinct. */
  ts: Float64Array;
  /** Nanoseconds within the millisecond of each row (0 for s and ms inputs): the input's time, exactly. */
  tsNanos: Int32Array;
  /** Row-major `[rows, features.length]` float32 model input, in the order of `features`. */
  x: Float32Array;
  /** The feature names the columns of `x` hold. */
  features: readonly string[];
  /** Rows of this device whose `ts` fell outside the window and were dropped. */
  droppedOutsideWindow: number;
}

/** The half-open time range rows must fall in, epoch ms. */
interface Range {
  startMs: number;
  endMs: number;
}

/**
 * Memory that the gathered rows of many devices (a shard's) share: each device's `ts`, `tsNanos` and `x` are views
 * into a few large buffers, not three typed arrays of their own. A typed array of more than 64 bytes allocates
 * its memory outside V8's heap (about 0.7 µs for 480 bytes here, and its collection adds "external memory
 * pressure" scavenges), and a device's rows are a few hundred bytes each. One arena per shard, whose buffers go
 * back to the thread's next arenas once the shard no longer reads its rows (`release`).
 */
export class RowsArena {
  private readonly ts = new Slab(TS_SLABS);
  private readonly nanos = new Slab(NANOS_SLABS);
  private readonly x = new Slab(X_SLABS);

  /** Room for `rows` rows of `k` features. */
  take(rows: number, k: number): { ts: Float64Array; nanos: Int32Array; x: Float32Array } {
    return { ts: this.ts.take(rows), nanos: this.nanos.take(rows), x: this.x.take(rows * k) };
  }

  /**
   * Gives the arena's buffers back to this thread's next arenas: call once nothing reads the rows taken from it (a
   * shard's predictions are built), and take nothing more. Every value a later arena hands out is written by
   * whoever takes it, so its old contents never show.
   */
  release(): void {
    this.ts.release();
    this.nanos.release();
    this.x.release();
  }
}

/** Elements a slab's buffer holds (more for a larger request): 64 Ki, about 1,000 devices' rows of `ts`. */
const SLAB_ELEMENTS = 1 << 16;
/** Buffers of one type a thread keeps for its next arenas (a shard of 1,000 devices of 7 features takes 8 of `x`). */
const SLABS_KEPT = 16;

/** A thread's buffers of one typed-array type, given back by released arenas. */
class SlabPool<T extends Float64Array | Float32Array | Int32Array> {
  private readonly free: T[] = [];

  constructor(readonly make: (n: number) => T) {}

  /** A buffer of at least `n` elements: a kept one where `n` fits the usual size, else a new one. */
  take(n: number): T {
    const kept = n <= SLAB_ELEMENTS ? this.free.pop() : undefined;
    return kept ?? this.make(Math.max(SLAB_ELEMENTS, n));
  }

  give(buffers: readonly T[]): void {
    for (const b of buffers) if (this.free.length < SLABS_KEPT && b.length === SLAB_ELEMENTS) this.free.push(b);
  }
}

const TS_SLABS = new SlabPool((n) => new Float64Array(n));
const NANOS_SLABS = new SlabPool((n) => new Int32Array(n));
const X_SLABS = new SlabPool((n) => new Float32Array(n));

/** Consecutive views of one typed-array type, from buffers of {@link SLAB_ELEMENTS} taken from a thread's pool. */
class Slab<T extends Float64Array | Float32Array | Int32Array> {
  private buffer: T | undefined;
  private used = 0;
  private readonly taken: T[] = [];

  constructor(private readonly pool: SlabPool<T>) {}

  take(n: number): T {
    if (!this.buffer || this.used + n > this.buffer.length) {
      this.buffer = this.pool.take(n);
      this.taken.push(this.buffer);
      this.used = 0;
    }
    const view = this.buffer.subarray(this.used, this.used + n) as T;
    this.used += n;
    return view;
  }

  release(): void {
    this.pool.give(this.taken);
    this.taken.length = 0;
    this.buffer = undefined;
  }
}

/** Which holder each gathered row came from, for error messages: one buffer per thread, grown as needed. */
let sourceScratch = new Int32Array(1024);

/**
 * Rows gathered in part order: `source[i]` is the index in `holders` that row `i` came from (for the first
 * `ts.length` entries of `source`, which may be longer).
 */
interface Gathered {
  ts: Float64Array;
  nanos: Int32Array;
  x: Float32Array;
  source: Int32Array;
}

/**
 * `device`'s rows in `range` from `holders` (the parts that hold rows of it), with the columns `features`.
 * Throws `InvalidAggregates` naming file, device and field for a device-level problem.
 */
export function gatherDeviceRows(
  holders: readonly AggregatesPart[],
  device: string,
  features: readonly string[],
  range: Range,
  arena?: RowsArena,
  missing: MissingValues = 'fail',
): DeviceRows {
  const { rows, dropped } = countRows(holders, device, features, range);
  const sorted = sortByTs(copyRows(holders, device, features, range, rows, arena, missing), features.length);
  checkDistinct(sorted, holders, device);
  const { ts, nanos: tsNanos, x } = sorted;
  return { device, rows, ts, tsNanos, x, features, droppedOutsideWindow: dropped };
}

/** Pass 1: checks the feature columns and null timestamps, and counts the rows inside and outside the range. */
function countRows(
  holders: readonly AggregatesPart[],
  device: string,
  features: readonly string[],
  { startMs, endMs }: Range,
): { rows: number; dropped: number } {
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
    const d = part.deviceNumber(device);
    if (d < 0) continue;
    for (let at = part.deviceRunStart[d]!; at < part.deviceRunStart[d + 1]!; at++) {
      const r = part.deviceRuns[at]!;
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
  return { rows, dropped };
}

/**
 * Pass 2: copies timestamps and features column-wise and remembers where each row came from (for error messages).
 * Throws for the earliest infinite feature value in the range, and NaN or null unless `missing` passes them on (a
 * null as NaN).
 */
function copyRows(
  holders: readonly AggregatesPart[],
  device: string,
  features: readonly string[],
  { startMs, endMs }: Range,
  rows: number,
  arena: RowsArena | undefined,
  missing: MissingValues,
): Gathered {
  const k = features.length;
  const { ts, nanos, x } = arena
    ? arena.take(rows, k)
    : { ts: new Float64Array(rows), nanos: new Int32Array(rows), x: new Float32Array(rows * k) };
  if (sourceScratch.length < rows) sourceScratch = new Int32Array(2 * rows);
  // The thread's scratch itself, not a view of its first `rows` (an object a device).
  const source = sourceScratch;
  let bad: { ts: number; file: string; field: string; what: string } | undefined;
  let out = 0;
  for (let p = 0; p < holders.length; p++) {
    const part = holders[p]!;
    const cols = features.map((f) => (part.feature(f) as { chunks: FeatureChunk[] }).chunks);
    const partTs = part.ts;
    const partNanos = part.tsNanos;
    const d = part.deviceNumber(device);
    const runsEnd = d < 0 ? 0 : part.deviceRunStart[d + 1]!;
    for (let at = d < 0 ? 0 : part.deviceRunStart[d]!; at < runsEnd; at++) {
      const r = part.deviceRuns[at]!;
      const b = part.runBatch[r]!;
      const base = part.batchOffset(b);
      const runStart = part.runStart[r]!;
      const runEnd = part.runEnd[r]!;
      const first = out;
      for (let i = runStart; i < runEnd; i++) {
        const t = partTs[i]!;
        if (t >= startMs && t < endMs) {
          ts[out] = t;
          nanos[out] = partNanos === null ? 0 : partNanos[i]!;
          source[out] = p;
          out++;
        }
      }
      // Usually every row of the run is in the window: then a column is copied without looking at `ts`.
      const whole = out - first === runEnd - runStart;
      for (let j = 0; j < k; j++) {
        const { values, nullBitmap, offset } = cols[j]![b]!;
        let o = first;
        for (let i = runStart; i < runEnd; i++) {
          if (!whole) {
            const t = partTs[i]!;
            if (t < startMs || t >= endMs) continue;
          }
          const li = i - base;
          const v = values[li]!;
          const at = o * k + j;
          x[at] = v;
          o++;
          // v - v is NaN for NaN and +-Infinity; the null bit is only read for chunks that have nulls.
          const isNull = nullBitmap !== null && (nullBitmap[(offset + li) >> 3]! & (1 << ((offset + li) & 7))) === 0;
          if (!isNull && v - v === 0) continue;
          if (missing === 'model' && (isNull || v !== v)) x[at] = NaN;
          else if (bad === undefined || partTs[i]! < bad.ts) {
            bad = { ts: partTs[i]!, file: part.file, field: features[j]!, what: isNull ? 'null' : String(v) };
          }
        }
      }
    }
  }
  if (bad) {
    const { file, field } = bad;
    const message = `feature ${JSON.stringify(field)} is ${bad.what} at ${isoTime(bad.ts)}`;
    throw new InvalidAggregates(message, { file, device, field, ts: bad.ts });
  }
  return { ts, nanos, x, source };
}

/** Rows are usually in time order already; when not, a stable sort by `ts` (rows keep their feature values). */
function sortByTs(rows: Gathered, k: number): Gathered {
  const { ts, nanos, x, source } = rows;
  const n = ts.length;
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) sorted = tsOrder(ts, nanos, i - 1, i) <= 0;
  if (sorted) return rows;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => tsOrder(ts, nanos, a, b) || a - b);
  const out: Gathered = {
    ts: new Float64Array(n),
    nanos: new Int32Array(n),
    x: new Float32Array(n * k),
    source: new Int32Array(n),
  };
  for (let i = 0; i < n; i++) {
    const from = order[i]!;
    out.ts[i] = ts[from]!;
    out.nanos[i] = nanos[from]!;
    out.source[i] = source[from]!;
    out.x.set(x.subarray(from * k, from * k + k), i * k);
  }
  return out;
}

/** Negative, zero or positive as row a's timestamp (milliseconds, then nanoseconds) is before, at or after row b's. */
function tsOrder(ts: Float64Array, nanos: Int32Array, a: number, b: number): number {
  return ts[a]! - ts[b]! || nanos[a]! - nanos[b]!;
}

/** Throws for two rows with the same `ts`, naming both files when they differ. */
function checkDistinct({ ts, nanos, source }: Gathered, holders: readonly AggregatesPart[], device: string): void {
  for (let i = 1; i < ts.length; i++) {
    if (ts[i] !== ts[i - 1] || nanos[i] !== nanos[i - 1]) continue;
    const a = holders[source[i - 1]!]!.file;
    const b = holders[source[i]!]!.file;
    throw new InvalidAggregates(
      `two rows have the same ${TS_COLUMN} ${isoTime(ts[i]!, nanos[i])}${a === b ? '' : ` (the other is in ${a})`}`,
      { file: b, device, field: TS_COLUMN, ts: ts[i] },
    );
  }
}
