/**
 * From a model's raw output to the scores a shard commits: model.json's preprocessing of the input rows, the
 * output tensor read as one finite score per row (a column, or a reconstruction's error), and the anomaly rule.
 * Every scoring path (sessions, compiled programs, stacked calls) reads its output the same way.
 */
import type { Tensor } from 'onnxruntime-node';
import { ModelOutputMismatch } from '../shared/errors';
import type { ModelMeta } from './model-meta';
import { reconstructionError } from './reconstruction-error';

/**
 * Whether a score is anomalous under the model's rule: strictly above or strictly below the threshold (so a
 * OneClassSVM / IsolationForest decision_function of exactly 0 is normal, as in scikit-learn). NaN is never
 * anomalous: callers should treat a non-finite score as a failed row.
 */
export function isAnomaly(meta: Pick<ModelMeta, 'anomalyWhen' | 'threshold'>, score: number): boolean {
  return meta.anomalyWhen === 'above' ? score > meta.threshold : score < meta.threshold;
}

/** Sets `flags[row]` to 1 for each anomalous score (by {@link isAnomaly}), 0 for the others; how many are. */
export function markAnomalies(
  meta: Pick<ModelMeta, 'anomalyWhen' | 'threshold'>,
  scores: Float32Array,
  flags: Uint8Array,
): number {
  let anomalies = 0;
  for (let row = 0; row < scores.length; row++) {
    const anomalous = isAnomaly(meta, scores[row]!);
    flags[row] = anomalous ? 1 : 0;
    if (anomalous) anomalies++;
  }
  return anomalies;
}

/** Applies model.json's preprocessing to a copy; the caller's rows are never modified. */
export function preprocess(meta: ModelMeta, x: Float32Array): Float32Array {
  const p = meta.preprocessing;
  if (p.type === 'none') return x;
  const k = meta.features.length;
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const j = i % k;
    out[i] = ((x[i] as number) - (p.mean[j] as number)) / (p.scale[j] as number);
  }
  return out;
}

/**
 * The output `tensor` as one finite score per row: its `output.column`, each row's smallest or largest value
 * (`output.reduce`), or the reconstruction's error against the preprocessed `input`. Throws ModelOutputMismatch
 * naming the device, file and field when it is not that.
 */
export function readScores(
  tensor: Tensor | undefined,
  meta: ModelMeta,
  rows: number,
  device: string,
  file: string,
  input: Float32Array,
): Float32Array {
  const name = meta.output.name;
  if (!tensor) throw new ModelOutputMismatch(`output ${name} is missing from the result`, device, file, 'output.name');
  if (tensor.type !== 'float32' && tensor.type !== 'float64') {
    const message = `output ${name} is ${tensor.type}, expected float32 or float64`;
    throw new ModelOutputMismatch(message, device, file, 'output.name');
  }
  const data = tensor.data as Float32Array | Float64Array;
  const dims = tensor.dims;
  if (meta.output.reconstructionError) {
    const k = meta.features.length;
    // [rows, k], or the same flattened row by row to [rows * k, 1] (skl2onnx's MLPRegressor of k outputs).
    const shaped =
      dims.length === 2 && ((dims[0] === rows && dims[1] === k) || (dims[0] === rows * k && dims[1] === 1));
    if (!shaped || data.length !== rows * k) {
      const message = `output ${name} has shape [${dims.join(', ')}]; a reconstruction must be [${rows}, ${k}]`;
      throw new ModelOutputMismatch(message, device, file, 'output.reconstructionError');
    }
    return checkFinite(reconstructionError(meta.output.reconstructionError, input, data, rows, k), name, device, file);
  }
  const cols = dims.length === 1 ? 1 : dims.length === 2 ? (dims[1] as number) : -1;
  if (cols < 1 || dims[0] !== rows || data.length !== rows * cols) {
    const message = `output ${name} has shape [${dims.join(', ')}] for ${rows} rows; expected [${rows}] or [${rows}, k]`;
    throw new ModelOutputMismatch(message, device, file, 'output.name');
  }
  if (meta.output.reduce) return checkFinite(reduceRows(meta.output.reduce, data, rows, cols), name, device, file);
  const column = meta.output.column;
  if (column >= cols) {
    const message = `output ${name} has ${cols} column(s); column ${column} does not exist`;
    throw new ModelOutputMismatch(message, device, file, 'output.column');
  }
  const out = cols === 1 && data instanceof Float32Array ? data : new Float32Array(rows);
  if (out !== data) for (let r = 0; r < rows; r++) out[r] = data[r * cols + column] as number;
  return checkFinite(out, name, device, file);
}

/**
 * Whether the score is the output's first column as the model wrote it (no reconstruction error, no reduction):
 * what the stacked Mahalanobis path computes.
 */
export function scoresFirstColumn(meta: Pick<ModelMeta, 'output'>): boolean {
  const { column, reconstructionError, reduce } = meta.output;
  return column === 0 && !reconstructionError && !reduce;
}

/** Each row's smallest or largest value across its `cols` columns; NaN where the row holds one (which then fails). */
function reduceRows(kind: 'min' | 'max', data: Float32Array | Float64Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = data[r * cols] as number;
    for (let j = r * cols + 1; j < (r + 1) * cols; j++) {
      best = kind === 'min' ? Math.min(best, data[j] as number) : Math.max(best, data[j] as number);
    }
    out[r] = best;
  }
  return out;
}

/** Returns `out` when every score is finite: a NaN or infinite score fails the device instead of being committed. */
export function checkFinite(out: Float32Array, name: string, device: string, file: string): Float32Array {
  const rows = out.length;
  let bad = 0;
  let first = -1;
  for (let r = 0; r < rows; r++) {
    const v = out[r] as number;
    if (v - v !== 0) {
      bad++;
      if (first < 0) first = r;
    }
  }
  if (bad > 0) {
    throw new ModelOutputMismatch(
      `output ${name} is ${String(out[first])} for ${bad} of ${rows} rows (first: row ${first})`,
      device,
      file,
      'output',
    );
  }
  return out;
}
