/** Accumulating a shard's predictions device by device before they are encoded once. */
import { encodePredictions } from './predictions-encode';
import { InvalidPredictions } from '../shared/errors';
import type { PredictionColumns, PredictionRun } from './predictions-columns';
import { isMillisecondsUtc, isSubMillisecond, MILLISECONDS_UTC, type TimestampType } from './timestamps';

/**
 * Accumulates predictions device by device (growing typed arrays), then encodes them once. This is the shape
 * the scorer has: one model call per device, appended in shard order.
 */
export class PredictionsBuilder {
  private readonly runs: PredictionRun[] = [];
  private ts = new Float64Array(1024);
  private nanos: Int32Array | null;
  private score = new Float32Array(1024);
  private isAnomaly = new Uint8Array(1024);
  private length = 0;

  /** Predictions whose `ts` column has the type `tsType` (the window's input's), milliseconds in UTC by default. */
  constructor(private readonly tsType: TimestampType = MILLISECONDS_UTC) {
    this.nanos = isSubMillisecond(tsType.unit) ? new Int32Array(1024) : null;
  }

  /** Number of rows appended so far. */
  get rows(): number {
    return this.length;
  }

  /**
   * Appends one device's rows; `ts`, `score` and `isAnomaly` (and `tsNanos`, the nanoseconds within each ms, when
   * given) must have the same length (zero is allowed).
   */
  append(
    device: string,
    modelVersion: string,
    ts: Float64Array,
    score: Float32Array,
    isAnomaly: Uint8Array,
    tsNanos?: Int32Array,
  ): void {
    const n = ts.length;
    if (score.length !== n || isAnomaly.length !== n) {
      throw new InvalidPredictions(
        `device ${device}: ts, score and isAnomaly have ${n}, ${score.length} and ${isAnomaly.length} values`,
      );
    }
    if (n === 0) return;
    this.reserve(this.length + n);
    this.ts.set(ts, this.length);
    this.score.set(score, this.length);
    this.isAnomaly.set(isAnomaly, this.length);
    if (this.nanos) {
      if (tsNanos) this.nanos.set(tsNanos.subarray(0, n), this.length);
      else this.nanos.fill(0, this.length, this.length + n);
    } else if (tsNanos && hasNonZero(tsNanos, n)) {
      throw new InvalidPredictions(`device ${device}: times finer than the predictions' unit`, undefined, 'ts');
    }
    this.length += n;
    const last = this.runs[this.runs.length - 1];
    if (last && last.device === device && last.modelVersion === modelVersion) last.rows += n;
    else this.runs.push({ device, modelVersion, rows: n });
  }

  /** The rows appended so far as columns (views of the builder's buffers, trimmed to length). */
  columns(): PredictionColumns {
    return {
      runs: this.runs.map((r) => ({ ...r })),
      ts: this.ts.subarray(0, this.length),
      score: this.score.subarray(0, this.length),
      isAnomaly: this.isAnomaly.subarray(0, this.length),
      ...(this.nanos ? { tsNanos: this.nanos.subarray(0, this.length) } : {}),
      ...(isMillisecondsUtc(this.tsType) ? {} : { tsType: this.tsType }),
    };
  }

  /** Encodes the rows appended so far as an Arrow IPC file. */
  encode(): Uint8Array {
    return encodePredictions(this.columns());
  }

  private reserve(capacity: number): void {
    if (capacity <= this.ts.length) return;
    let size = this.ts.length;
    while (size < capacity) size *= 2;
    const grow = <T extends Float64Array | Float32Array | Uint8Array | Int32Array>(
      old: T,
      make: (n: number) => T,
    ): T => {
      const next = make(size);
      next.set(old.subarray(0, this.length));
      return next;
    };
    this.ts = grow(this.ts, (n) => new Float64Array(n));
    this.score = grow(this.score, (n) => new Float32Array(n));
    this.isAnomaly = grow(this.isAnomaly, (n) => new Uint8Array(n));
    if (this.nanos) this.nanos = grow(this.nanos, (n) => new Int32Array(n));
  }
}

/** Whether any of the first `n` values is not 0 (a loop: `some` with a callback made a closure a device). */
function hasNonZero(values: Int32Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (values[i] !== 0) return true;
  return false;
}
