/**
 * One demo aggregates part: 60 rows a window for each of a range of devices, drawn from each device's true
 * distribution, with anomalies injected and recorded in the ground truth, written as an Arrow IPC file.
 *
 * Detection is exact by construction: normal rows are rejection-sampled so that both their true squared
 * Mahalanobis distance stays below the chi-square 0.99 quantile and the model's own score (from the float32
 * parameters the ONNX graph holds) stays below `threshold / NORMAL_MARGIN`; each anomaly is a normal row shifted
 * at least 10 sigma along one sensor, further if needed until the model scores it above
 * `threshold * ANOMALY_MARGIN`. The margins absorb float32 rounding in the runtime.
 */
import { Float32, makeData, makeVector, Table, tableToIPC, TimestampMillisecond, Utf8 } from 'apache-arrow';
import type { Window } from '../shared/window';
import { demoDeviceId } from './demo-ids';
import type { DemoModel } from './demo-model';
import { DemoRng } from './demo-rng';
import type { DemoGroundTruth } from './demo-truth';
import { mahalanobis2 } from './spd-math';

const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;
/** Rows per device and window: one per minute. */
export const DEMO_ROWS_PER_WINDOW = 60;
/** A normal row is redrawn when the model scores it at or above threshold / NORMAL_MARGIN. */
const NORMAL_MARGIN = 1.1;
/** An anomaly is pushed further until the model scores it at or above threshold x ANOMALY_MARGIN. */
const ANOMALY_MARGIN = 2;
/** The smallest shift of an anomaly, in standard deviations of the shifted sensor. */
export const ANOMALY_MIN_SIGMAS = 10;

/** What one part holds: devices `[first, last)` of the fleet (0-based) and how their rows are drawn. */
export interface DemoPartSpec {
  window: Window;
  models: readonly DemoModel[];
  first: number;
  last: number;
  features: readonly string[];
  seed: number;
  anomalyRate: number;
}

/**
 * Builds one aggregates part as an Arrow IPC file (Utf8 `device_id`, Timestamp(ms, UTC) `ts`, Float32 sensors),
 * appending its injected anomalies to `truth`. Each device-hour draws from a stream of its own.
 */
export function demoAggregatesPart(spec: DemoPartSpec, truth: DemoGroundTruth['anomalies']): Uint8Array {
  const { window, models, first, last, features, seed, anomalyRate } = spec;
  const k = features.length;
  const n = (last - first) * DEMO_ROWS_PER_WINDOW;
  const columns = features.map(() => new Float32Array(n));
  const tsValues = new BigInt64Array(n);
  const tsWords = new Int32Array(tsValues.buffer);
  const encoder = new TextEncoder();
  const idBytes = Array.from({ length: last - first }, (_, d) => encoder.encode(demoDeviceId(first + d + 1)));
  const idLength = idBytes.reduce((s, b) => s + b.length * DEMO_ROWS_PER_WINDOW, 0);
  const idData = new Uint8Array(idLength);
  const idOffsets = new Int32Array(n + 1);
  const z = new Float64Array(k);
  const x = new Float64Array(k);
  const hour = window.startMs / HOUR_MS;
  let row = 0;
  let at = 0;
  for (let d = first; d < last; d++) {
    const model = models[d]!;
    const device = demoDeviceId(d + 1);
    const rng = new DemoRng(seed, d + 1, hour);
    const id = idBytes[d - first]!;
    for (let m = 0; m < DEMO_ROWS_PER_WINDOW; m++, row++) {
      const ts = window.startMs + m * MINUTE_MS;
      tsWords[2 * row] = (ts % 4294967296) | 0;
      tsWords[2 * row + 1] = Math.floor(ts / 4294967296);
      idData.set(id, at);
      at += id.length;
      idOffsets[row + 1] = at;
      drawNormalRow(rng, model, z, x, k);
      if (rng.next() < anomalyRate) {
        const j = Math.floor(rng.next() * k);
        const sign = rng.next() < 0.5 ? -1 : 1;
        const sigmas = shiftToAnomaly(x, j, sign, model, k);
        truth.push({ device, ts, sensor: features[j]!, sigmas: (sign * Math.round(sigmas * 100)) / 100 });
      }
      for (let j = 0; j < k; j++) columns[j]![row] = x[j]!;
    }
  }
  const float = (data: Float32Array) => makeVector(makeData({ type: new Float32(), length: n, nullCount: 0, data }));
  const table = new Table({
    device_id: makeVector(
      makeData({ type: new Utf8(), length: n, nullCount: 0, valueOffsets: idOffsets, data: idData }),
    ),
    ts: makeVector(makeData({ type: new TimestampMillisecond('UTC'), length: n, nullCount: 0, data: tsValues })),
    ...Object.fromEntries(features.map((f, j) => [f, float(columns[j]!)])),
  });
  return tableToIPC(table, 'file');
}

/**
 * Draws a normal row into `x` (float32-rounded values): true squared distance below the chi-square bound and
 * model score below threshold / NORMAL_MARGIN.
 */
function drawNormalRow(rng: DemoRng, model: DemoModel, z: Float64Array, x: Float64Array, k: number): void {
  for (;;) {
    rng.normalsInside(z, model.bound);
    for (let i = 0; i < k; i++) {
      let v = model.mean[i]!;
      for (let j = 0; j <= i; j++) v += model.chol[i * k + j]! * z[j]!;
      x[i] = Math.fround(v);
    }
    if (mahalanobis2(x, model.mean32, model.precision32, k) < model.threshold / NORMAL_MARGIN) return;
  }
}

/** Shifts sensor `j` of `x` by at least ANOMALY_MIN_SIGMAS sigmas until the model scores it an anomaly; the shift. */
function shiftToAnomaly(x: Float64Array, j: number, sign: number, model: DemoModel, k: number): number {
  const base = x[j]!;
  let sigmas = ANOMALY_MIN_SIGMAS;
  for (;;) {
    x[j] = Math.fround(base + sign * sigmas * model.sigma[j]!);
    if (mahalanobis2(x, model.mean32, model.precision32, k) >= model.threshold * ANOMALY_MARGIN) return sigmas;
    sigmas *= 1.5;
  }
}
