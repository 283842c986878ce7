/**
 * The scorer's output: one Arrow IPC file per shard with the columns `device_id` (Utf8), `ts`
 * (Timestamp(ms, UTC)), `score` (Float32), `is_anomaly` (Bool) and `model_version` (Utf8), all non-null.
 *
 * `score` is Float32 because the models compute it in float32 (their input and output tensors are float32):
 * Float64 would double the column without adding a digit of information, and the threshold is compared with
 * exactly the value that is stored.
 *
 * Rows are columnar typed arrays plus device runs (device, model version, row count), so a shard of 100k
 * devices x 60 rows is written without a JS object or string per row.
 */
import { TextDecoder } from 'node:util';
import {
  Bool,
  DataType,
  Float32,
  Field,
  makeData,
  Precision,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableFromIPC,
  tableToIPC,
  TimestampMillisecond,
  TimeUnit,
  Utf8,
  type Data,
  type Vector,
} from 'apache-arrow';
import { InvalidPredictions, messageOf } from '../shared/errors';

/** Column names of a predictions file. */
export const PREDICTION_COLUMNS = ['device_id', 'ts', 'score', 'is_anomaly', 'model_version'] as const;

/** Consecutive rows of one device, scored by one model version. */
export interface PredictionRun {
  device: string;
  modelVersion: string;
  rows: number;
}

/** A predictions table as columns; `runs` cover the rows in order and their `rows` sum to the column lengths. */
export interface PredictionColumns {
  runs: PredictionRun[];
  /** Epoch milliseconds (whole numbers; fractions are floored when encoded). */
  ts: Float64Array;
  score: Float32Array;
  /** 1 for an anomalous row, 0 otherwise. */
  isAnomaly: Uint8Array;
}

/**
 * Accumulates predictions device by device (growing typed arrays), then encodes them once. This is the shape
 * the scorer has: one model call per device, appended in shard order.
 */
export class PredictionsBuilder {
  private readonly runs: PredictionRun[] = [];
  private ts = new Float64Array(1024);
  private score = new Float32Array(1024);
  private isAnomaly = new Uint8Array(1024);
  private length = 0;

  /** Number of rows appended so far. */
  get rows(): number {
    return this.length;
  }

  /** Appends one device's rows; `ts`, `score` and `isAnomaly` must have the same length (zero is allowed). */
  append(device: string, modelVersion: string, ts: Float64Array, score: Float32Array, isAnomaly: Uint8Array): void {
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
    const grow = <T extends Float64Array | Float32Array | Uint8Array>(old: T, make: (n: number) => T): T => {
      const next = make(size);
      next.set(old.subarray(0, this.length));
      return next;
    };
    this.ts = grow(this.ts, (n) => new Float64Array(n));
    this.score = grow(this.score, (n) => new Float32Array(n));
    this.isAnomaly = grow(this.isAnomaly, (n) => new Uint8Array(n));
  }
}

/** Encodes predictions as an Arrow IPC file (the format with a footer, so a reader can tell it is complete). */
export function encodePredictions(columns: PredictionColumns): Uint8Array {
  const { runs, ts, score, isAnomaly } = columns;
  const n = ts.length;
  if (score.length !== n || isAnomaly.length !== n) {
    throw new InvalidPredictions(`ts, score and isAnomaly have ${n}, ${score.length} and ${isAnomaly.length} values`);
  }
  let total = 0;
  for (const r of runs) {
    if (!Number.isInteger(r.rows) || r.rows < 0) {
      throw new InvalidPredictions(`device ${r.device}: run of ${r.rows} rows`);
    }
    total += r.rows;
  }
  if (total !== n) throw new InvalidPredictions(`runs cover ${total} rows, the columns have ${n}`);

  const tsValues = new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    const t = ts[i]!;
    if (!Number.isFinite(t)) throw new InvalidPredictions(`ts[${i}] is ${t}`, undefined, 'ts');
    tsValues[i] = BigInt(Math.floor(t));
  }
  const bits = new Uint8Array((n + 7) >> 3);
  for (let i = 0; i < n; i++) if (isAnomaly[i]) bits[i >> 3]! |= 1 << (i & 7);

  const children: Data[] = [
    repeatedStrings(runs, (r) => r.device),
    makeData({ type: new TimestampMillisecond('UTC'), length: n, nullCount: 0, data: tsValues }),
    makeData({ type: new Float32(), length: n, nullCount: 0, data: score }),
    makeData({ type: new Bool(), length: n, nullCount: 0, data: bits }),
    repeatedStrings(runs, (r) => r.modelVersion),
  ];
  // Declared non-nullable: every row has every value, and readers (pyarrow, DuckDB) can rely on it.
  const schema = new Schema(PREDICTION_COLUMNS.map((name, i) => new Field(name, children[i]!.type, false)));
  const struct = makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children });
  const batch = new RecordBatch(schema, struct);
  return tableToIPC(new Table(schema, batch), 'file');
}

/** A Utf8 column that repeats each run's string `rows` times, built from bytes (one encode per run). */
function repeatedStrings(runs: readonly PredictionRun[], pick: (r: PredictionRun) => string): Data<Utf8> {
  const encoder = new TextEncoder();
  const encoded = runs.map((r) => encoder.encode(pick(r)));
  let rows = 0;
  let bytes = 0;
  runs.forEach((r, i) => {
    rows += r.rows;
    bytes += r.rows * encoded[i]!.length;
  });
  const offsets = new Int32Array(rows + 1);
  const data = new Uint8Array(bytes);
  let row = 0;
  let at = 0;
  runs.forEach((r, i) => {
    const value = encoded[i]!;
    for (let j = 0; j < r.rows; j++) {
      data.set(value, at);
      at += value.length;
      offsets[++row] = at;
    }
  });
  return makeData({ type: new Utf8(), length: rows, nullCount: 0, valueOffsets: offsets, data });
}

/**
 * Decodes a predictions file (IPC file or stream format) back into columns; device runs are rebuilt from
 * consecutive equal (device_id, model_version) pairs. Throws `InvalidPredictions` naming `file` and the column.
 */
export function decodePredictions(bytes: Uint8Array, file?: string): PredictionColumns {
  let table: Table;
  try {
    table = tableFromIPC(bytes);
  } catch (err) {
    const reason = messageOf(err);
    throw new InvalidPredictions(`not a readable Arrow IPC file: ${reason}`, file, undefined, { cause: err });
  }
  const column = (name: string, ok: (t: DataType) => boolean, expected: string): Vector => {
    const field = table.schema.fields.find((f) => f.name === name);
    const vector: Vector | null = table.getChild(name);
    if (!field || !vector) throw new InvalidPredictions(`has no ${name} column`, file, name);
    if (!ok(field.type as DataType)) {
      throw new InvalidPredictions(`column ${name} has type ${String(field.type)}, expected ${expected}`, file, name);
    }
    if (vector.nullCount > 0) throw new InvalidPredictions(`column ${name} has ${vector.nullCount} nulls`, file, name);
    return vector;
  };
  const device = column('device_id', (t) => DataType.isUtf8(t), 'Utf8');
  const isMs = (t: DataType) => DataType.isTimestamp(t) && (t as TimestampMillisecond).unit === TimeUnit.MILLISECOND;
  const tsCol = column('ts', isMs, 'Timestamp(ms)');
  const isF32 = (t: DataType) => DataType.isFloat(t) && (t as Float32).precision === Precision.SINGLE;
  const scoreCol = column('score', isF32, 'Float32');
  const anomalyCol = column('is_anomaly', (t) => DataType.isBool(t), 'Bool');
  const version = column('model_version', (t) => DataType.isUtf8(t), 'Utf8');

  const n = table.numRows;
  const ts = new Float64Array(n);
  const score = new Float32Array(n);
  const isAnomaly = new Uint8Array(n);
  const runs: PredictionRun[] = [];
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let row = 0;
  for (let b = 0; b < device.data.length; b++) {
    const dev = device.data[b] as Data<Utf8>;
    const ver = version.data[b] as Data<Utf8>;
    const t = tsCol.data[b] as Data;
    const s = scoreCol.data[b] as Data;
    const a = anomalyCol.data[b] as Data;
    const len = dev.length;
    const words = new Int32Array((t.values as BigInt64Array).buffer, (t.values as BigInt64Array).byteOffset, len * 2);
    for (let i = 0; i < len; i++) ts[row + i] = words[2 * i + 1]! * 4294967296 + (words[2 * i]! >>> 0);
    score.set((s.values as Float32Array).subarray(0, len), row);
    const bits = a.values as Uint8Array;
    for (let i = 0; i < len; i++) {
      const j = a.offset + i;
      isAnomaly[row + i] = (bits[j >> 3]! >> (j & 7)) & 1;
    }
    const devOff = dev.valueOffsets;
    const verOff = ver.valueOffsets;
    const same = (d: Data<Utf8>, off: Int32Array, i: number, j: number) => {
      const lo = off[i]!;
      const len2 = off[i + 1]! - lo;
      const lo2 = off[j]!;
      if (off[j + 1]! - lo2 !== len2) return false;
      for (let k = 0; k < len2; k++) if (d.values[lo + k] !== d.values[lo2 + k]) return false;
      return true;
    };
    let start = 0;
    for (let i = 1; i <= len; i++) {
      if (i < len && same(dev, devOff, i, i - 1) && same(ver, verOff, i, i - 1)) continue;
      const d = decoder.decode(dev.values.subarray(devOff[start], devOff[start + 1]));
      const v = decoder.decode(ver.values.subarray(verOff[start], verOff[start + 1]));
      const last = runs[runs.length - 1];
      if (last && last.device === d && last.modelVersion === v) last.rows += i - start;
      else runs.push({ device: d, modelVersion: v, rows: i - start });
      start = i;
    }
    row += len;
  }
  return { runs, ts, score, isAnomaly };
}

/** One prediction as an object: for printing and tests, not for the hot path. */
export interface PredictionRow {
  device: string;
  modelVersion: string;
  ts: number;
  score: number;
  isAnomaly: boolean;
}

/** Iterates the rows of `columns` as objects, in order. */
export function* predictionRows(columns: PredictionColumns): Generator<PredictionRow> {
  let row = 0;
  for (const run of columns.runs) {
    for (let j = 0; j < run.rows; j++, row++) {
      yield {
        device: run.device,
        modelVersion: run.modelVersion,
        ts: columns.ts[row]!,
        score: columns.score[row]!,
        isAnomaly: columns.isAnomaly[row] === 1,
      };
    }
  }
}
