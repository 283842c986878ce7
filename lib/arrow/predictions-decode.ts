/** Decoding predictions files of either format back into columns, and rows as objects for printing. */
import { TextDecoder } from 'node:util';
import {
  DataType,
  Precision,
  type Data,
  type Float32,
  type Table,
  type TimeUnit,
  type Utf8,
  type Vector,
} from 'apache-arrow';
import { readIpcTable } from './ipc-reader';
import { InvalidPredictions, messageOf } from '../shared/errors';
import type { PredictionColumns, PredictionRun } from './predictions-columns';
import { isParquet, parquetToIpc } from './parquet';
import { decodeTimestamps, isMillisecondsUtc, isSubMillisecond, type TimestampType } from './timestamps';

/**
 * Decodes a predictions file (IPC file or stream format) back into columns; device runs are rebuilt from
 * consecutive equal (device_id, model_version) pairs. Throws `InvalidPredictions` naming `file` and the column.
 */
export function decodePredictions(bytes: Uint8Array, file?: string): PredictionColumns {
  let table: Table;
  try {
    table = readIpcTable(bytes);
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
  const tsCol = column('ts', (t) => DataType.isTimestamp(t), 'Timestamp');
  const { unit, timezone } = tsCol.type as { unit: TimeUnit; timezone?: string | null };
  const tsType: TimestampType = { unit, timezone: timezone ?? null };
  const isF32 = (t: DataType) => DataType.isFloat(t) && (t as Float32).precision === Precision.SINGLE;
  const scoreCol = column('score', isF32, 'Float32');
  const anomalyCol = column('is_anomaly', (t) => DataType.isBool(t), 'Bool');
  const version = column('model_version', (t) => DataType.isUtf8(t), 'Utf8');

  const n = table.numRows;
  const ts = new Float64Array(n);
  const tsNanos = isSubMillisecond(unit) ? new Int32Array(n) : null;
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
    decodeTimestamps(words, len, unit, ts, tsNanos, row);
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
  const typed = isMillisecondsUtc(tsType) ? {} : { tsType };
  return { runs, ts, score, isAnomaly, ...(tsNanos ? { tsNanos } : {}), ...typed };
}

/**
 * Decodes a predictions file of either format (Arrow IPC file or stream, or Parquet, told apart by their bytes).
 * Throws `InvalidPredictions` naming `file` and the column.
 */
export function readPredictions(bytes: Uint8Array, file?: string): PredictionColumns {
  if (!isParquet(bytes)) return decodePredictions(bytes, file);
  let ipc: Uint8Array;
  try {
    ipc = parquetToIpc(bytes);
  } catch (err) {
    const reason = messageOf(err);
    throw new InvalidPredictions(`not a readable Parquet file: ${reason}`, file, undefined, { cause: err });
  }
  return decodePredictions(ipc, file);
}
