/**
 * A synthetic fleet for demos, tests and benchmarks: hourly sensor aggregates with injected anomalies, their
 * ground truth, and one Mahalanobis-distance model per device trained in TypeScript and registered like any
 * other model. Everything is drawn from a seeded PRNG, so the same options write the same bytes.
 *
 * Detection is exact by construction: normal rows are rejection-sampled so that both their true squared
 * Mahalanobis distance stays below the chi-square 0.99 quantile and the model's own score (from the float32
 * parameters the ONNX graph holds) stays below `threshold / NORMAL_MARGIN`; each anomaly is a normal row shifted
 * at least 10 sigma along one sensor, further if needed until the model scores it above
 * `threshold * ANOMALY_MARGIN`. The margins absorb float32 rounding in the runtime, so scoring a window and
 * comparing with `demo/ground-truth/window=<id>.json` must give no false positive and no false negative.
 */
import { makeData, makeVector, Table, tableToIPC, TimestampMillisecond, Float32, Utf8 } from 'apache-arrow';
import { z } from 'zod';
import { forEachLimited } from '../shared/concurrency';
import { keys } from '../shared/keys';
import type { IndexEntry } from '../models/model-meta';
import { buildMahalanobisModel } from '../models/onnx-builder';
import { readIndex, registerModel } from '../models/model-registry';
import type { ObjectStore, StoredObject, VersionedObject } from '../store/object-store';
import { windowAt, type Window } from '../shared/window';

const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;
/** Rows per device and window: one per minute. */
export const DEMO_ROWS_PER_WINDOW = 60;
/** Devices per aggregates part file; a window with more devices gets more parts. */
export const DEMO_DEVICES_PER_PART = 2_000;
/** threshold = THRESHOLD_MARGIN x the largest squared distance seen in the model's training sample. */
export const THRESHOLD_MARGIN = 1.5;
/** A normal row is redrawn when the model scores it at or above threshold / NORMAL_MARGIN. */
const NORMAL_MARGIN = 1.1;
/** An anomaly is pushed further until the model scores it at or above threshold x ANOMALY_MARGIN. */
const ANOMALY_MARGIN = 2;
/** The smallest shift of an anomaly, in standard deviations of the shifted sensor. */
export const ANOMALY_MIN_SIGMAS = 10;
const TRUTH_SCHEMA = 'fleetscore.demo-truth/v1';

/** Options of {@link seedDemoFleet}. */
export interface DemoFleetOptions {
  /** Number of devices, `dev-00001` and on. */
  devices: number;
  /** Number of sensors (model features) per device, `s00` and on. */
  sensors: number;
  /** Number of hourly windows, the last one ending at `endMs`. */
  hours: number;
  /** End of the last window; default the start of the current UTC hour (so the latest complete hour is in). */
  endMs?: number;
  /** PRNG seed; the same seed and options write the same aggregates, truth and model bytes. Default 1. */
  seed?: number;
  /** Every `gpuEvery`-th device's model goes to the `gpu` pool, the rest to `cpu`. Default 5. */
  gpuEvery?: number;
  /** Probability that a row is an injected anomaly. Default 0.01. */
  anomalyRate?: number;
  /** Devices per aggregates part file. Default DEMO_DEVICES_PER_PART. */
  devicesPerPart?: number;
  /** Called as models are registered and windows written, for progress output. */
  onProgress?: (progress: DemoProgress) => void;
}

/** Progress of a seed: `done` of `total` in the current phase. */
export interface DemoProgress {
  phase: 'models' | 'aggregates';
  done: number;
  total: number;
}

/** What a seed wrote. */
export interface DemoFleetSummary {
  store: string;
  seed: number;
  devices: number;
  sensors: number;
  /** Window ids, oldest first. */
  windows: string[];
  parts: number;
  rows: number;
  anomalies: number;
  models: { cpu: number; gpu: number };
  elapsedMs: number;
}

/** One injected anomaly in the ground truth. */
export const demoAnomalySchema = z.object({
  device: z.string(),
  /** Epoch milliseconds of the row. */
  ts: z.number(),
  /** The shifted sensor. */
  sensor: z.string(),
  /** The shift in standard deviations of that sensor (negative for a downward shift). */
  sigmas: z.number(),
});

/** `demo/ground-truth/window=<id>.json`: the anomalous (device, ts) rows of one demo window. */
export const demoTruthSchema = z.object({
  schema: z.literal(TRUTH_SCHEMA),
  window: z.string(),
  seed: z.number(),
  devices: z.number().int(),
  rows: z.number().int(),
  anomalies: z.array(demoAnomalySchema),
});

/** A validated ground-truth file. */
export type DemoGroundTruth = z.infer<typeof demoTruthSchema>;

/** The id of the `i`-th demo device (1-based): `dev-00001`. */
export function demoDeviceId(i: number): string {
  return `dev-${String(i).padStart(5, '0')}`;
}

/** The feature (sensor column) names of a demo fleet with `k` sensors: `s00`, `s01`, … */
export function demoFeatureNames(k: number): string[] {
  return Array.from({ length: k }, (_, j) => `s${String(j).padStart(2, '0')}`);
}

/** Reads a demo window's ground truth, or `undefined` when the window was not seeded. */
export async function readDemoTruth(store: ObjectStore, windowId: string): Promise<DemoGroundTruth | undefined> {
  const bytes = await store.tryGet(keys.demoTruth(windowId));
  if (bytes === undefined) return undefined;
  return demoTruthSchema.parse(JSON.parse(Buffer.from(bytes).toString('utf8')));
}

/**
 * Seeds a demo fleet into `store`: trains and registers one model per device, then writes every window's
 * aggregates (`aggregates/window=<id>/part-NNNNN.arrow`, IPC file format) and ground truth. Models are
 * registered before any aggregates exist, so a scheduled run never sees data without a model.
 */
export async function seedDemoFleet(store: ObjectStore, options: DemoFleetOptions): Promise<DemoFleetSummary> {
  const started = Date.now();
  const { devices, sensors: k, hours, seed = 1, gpuEvery = 5, anomalyRate = 0.01, onProgress } = options;
  const devicesPerPart = options.devicesPerPart ?? DEMO_DEVICES_PER_PART;
  const endMs = options.endMs ?? Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
  checkInt('devices', devices, 1, 1_000_000);
  checkInt('sensors', k, 1, 100);
  checkInt('hours', hours, 1, 24 * 31);
  checkInt('seed', seed, 0, 0xffffffff);
  checkInt('gpuEvery', gpuEvery, 1, Number.MAX_SAFE_INTEGER);
  checkInt('devicesPerPart', devicesPerPart, 1, 1_000_000);
  if (!(anomalyRate >= 0 && anomalyRate <= 0.5)) {
    throw new RangeError(`anomalyRate must be in [0, 0.5], got ${anomalyRate}`);
  }
  const windows = Array.from({ length: hours }, (_, h) => windowAt(endMs - (hours - h) * HOUR_MS));
  const features = demoFeatureNames(k);

  // Models first: train each device, build its ONNX graph, register it. Registration is sequential per device
  // but runs for several devices at once; the index writes are coalesced into one (see IndexBatchingStore).
  const models = new Array<DemoModel>(devices);
  const batching = new IndexBatchingStore(store);
  const counts = { cpu: 0, gpu: 0 };
  let registered = 0;
  await forEachLimited(
    Array.from({ length: devices }, (_, i) => i),
    16,
    async (i) => {
      const device = demoDeviceId(i + 1);
      const model = trainDemoModel(seed, i + 1, k);
      models[i] = model;
      const pool = (i + 1) % gpuEvery === 0 ? 'gpu' : 'cpu';
      counts[pool]++;
      await registerModel(batching, {
        device,
        onnx: buildMahalanobisModel({ mean: [...model.mean32], precision: rowsOf(model.precision32, k) }),
        meta: {
          pool,
          features,
          input: { name: 'X' },
          output: { name: 'score', column: 0 },
          anomalyWhen: 'above',
          threshold: model.threshold,
          preprocessing: { type: 'none' },
          algorithm: 'mahalanobis',
          source: `fleetscore demo seed=${seed}`,
        },
      });
      registered++;
      if (registered % 100 === 0 || registered === devices) {
        onProgress?.({ phase: 'models', done: registered, total: devices });
      }
    },
  );
  await batching.flush();

  let parts = 0;
  let rows = 0;
  let anomalies = 0;
  for (let w = 0; w < windows.length; w++) {
    const window = windows[w]!;
    const truth: DemoGroundTruth['anomalies'] = [];
    for (let first = 0, part = 0; first < devices; first += devicesPerPart, part++) {
      const last = Math.min(devices, first + devicesPerPart);
      const bytes = windowPart(window, models, first, last, features, seed, anomalyRate, truth);
      await store.put(keys.aggregatesPart(window.id, part), bytes);
      parts++;
    }
    const body: DemoGroundTruth = {
      schema: TRUTH_SCHEMA,
      window: window.id,
      seed,
      devices,
      rows: devices * DEMO_ROWS_PER_WINDOW,
      anomalies: truth,
    };
    await store.put(keys.demoTruth(window.id), `${JSON.stringify(body)}\n`);
    rows += body.rows;
    anomalies += truth.length;
    onProgress?.({ phase: 'aggregates', done: w + 1, total: windows.length });
  }
  return {
    store: store.uri,
    seed,
    devices,
    sensors: k,
    windows: windows.map((w) => w.id),
    parts,
    rows,
    anomalies,
    models: counts,
    elapsedMs: Date.now() - started,
  };
}

function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
}

/** One device's generator (true distribution) and model (estimated from its training sample). */
export interface DemoModel {
  /** True mean and lower Cholesky factor (row-major K x K) of the device's sensor distribution. */
  mean: Float64Array;
  chol: Float64Array;
  /** True standard deviation of each sensor. */
  sigma: Float64Array;
  /** Bound on the true squared distance of a normal row: the chi-square 0.99 quantile for K. */
  bound: number;
  /** The model's parameters exactly as the ONNX graph stores them (float32 values), row-major precision. */
  mean32: Float64Array;
  precision32: Float64Array;
  /** Training-sample statistics and the decision threshold. */
  trainingRows: number;
  maxTrainingScore: number;
  threshold: number;
}

/**
 * Draws device `index`'s true distribution (from `seed`) and fits its model on a separate seeded sample of
 * normal rows (at least 500): sample mean, unbiased covariance, precision by Cholesky inversion in float64,
 * threshold = THRESHOLD_MARGIN x the largest training score. Deterministic; exported so tests and tools can
 * recompute what `seedDemoFleet` registered.
 */
export function trainDemoModel(seed: number, index: number, k: number): DemoModel {
  const params = new Rng(seed, index, STREAM_PARAMS);
  const mean = new Float64Array(k);
  const sigma = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    mean[j] = Math.round((20 + 60 * params.next()) * 100) / 100;
    sigma[j] = 0.5 + 4.5 * params.next();
  }
  // Correlation R = B Bᵀ with B unit lower-triangular, rows normalised so diag(R) = 1; chol(Σ) = diag(σ) · B̃.
  const chol = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    let norm = 1;
    const row = new Float64Array(i + 1);
    row[i] = 1;
    for (let j = 0; j < i; j++) {
      row[j] = 0.3 * params.normal();
      norm += row[j]! * row[j]!;
    }
    const s = sigma[i]! / Math.sqrt(norm);
    for (let j = 0; j <= i; j++) chol[i * k + j] = row[j]! * s;
  }
  const bound = chiSquare99(k);

  const n = Math.max(500, 20 * k);
  const rng = new Rng(seed, index, STREAM_TRAIN);
  const sample = new Float64Array(n * k);
  const z = new Float64Array(k);
  for (let r = 0; r < n; r++) {
    drawInside(rng, z, bound);
    for (let i = 0; i < k; i++) {
      let v = mean[i]!;
      for (let j = 0; j <= i; j++) v += chol[i * k + j]! * z[j]!;
      sample[r * k + i] = v;
    }
  }
  const mu = new Float64Array(k);
  for (let r = 0; r < n; r++) for (let i = 0; i < k; i++) mu[i] = mu[i]! + sample[r * k + i]!;
  for (let i = 0; i < k; i++) mu[i] = mu[i]! / n;
  const cov = new Float64Array(k * k);
  const c = new Float64Array(k);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < k; i++) c[i] = sample[r * k + i]! - mu[i]!;
    for (let i = 0; i < k; i++) for (let j = 0; j <= i; j++) cov[i * k + j] = cov[i * k + j]! + c[i]! * c[j]!;
  }
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      const v = cov[i * k + j]! / (n - 1);
      cov[i * k + j] = v;
      cov[j * k + i] = v;
    }
  }
  const precision = invertSpd(cov, k);
  const mean32 = mean.map((_, i) => Math.fround(mu[i]!));
  const precision32 = precision.map(Math.fround);
  let maxTrainingScore = 0;
  for (let r = 0; r < n; r++) {
    const score = mahalanobis2(sample.subarray(r * k, r * k + k), mean32, precision32, k);
    if (score > maxTrainingScore) maxTrainingScore = score;
  }
  return {
    mean,
    chol,
    sigma,
    bound,
    mean32,
    precision32,
    trainingRows: n,
    maxTrainingScore,
    threshold: THRESHOLD_MARGIN * maxTrainingScore,
  };
}

/** Squared Mahalanobis distance (x - mean)ᵀ P (x - mean) in float64. */
export function mahalanobis2(
  x: ArrayLike<number>,
  mean: ArrayLike<number>,
  precision: ArrayLike<number>,
  k: number,
): number {
  let d2 = 0;
  for (let i = 0; i < k; i++) {
    const ci = x[i]! - mean[i]!;
    let row = 0;
    for (let j = 0; j < k; j++) row += precision[i * k + j]! * (x[j]! - mean[j]!);
    d2 += ci * row;
  }
  return d2;
}

/** Inverse of a symmetric positive-definite matrix (row-major) through its Cholesky factor, in float64. */
function invertSpd(a: Float64Array, k: number): Float64Array {
  const l = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * k + j]!;
      for (let p = 0; p < j; p++) s -= l[i * k + p]! * l[j * k + p]!;
      if (i === j) {
        if (!(s > 0)) throw new Error('covariance is not positive definite');
        l[i * k + i] = Math.sqrt(s);
      } else {
        l[i * k + j] = s / l[j * k + j]!;
      }
    }
  }
  // L⁻¹ by forward substitution, then P = L⁻ᵀ L⁻¹.
  const li = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    li[i * k + i] = 1 / l[i * k + i]!;
    for (let j = 0; j < i; j++) {
      let s = 0;
      for (let p = j; p < i; p++) s += l[i * k + p]! * li[p * k + j]!;
      li[i * k + j] = -s / l[i * k + i]!;
    }
  }
  const p = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let q = i; q < k; q++) s += li[q * k + i]! * li[q * k + j]!;
      p[i * k + j] = s;
      p[j * k + i] = s;
    }
  }
  return p;
}

/** Chi-square 0.99 quantile for `k` degrees of freedom (Wilson–Hilferty; within 1% for k >= 1, ample for a bound). */
function chiSquare99(k: number): number {
  const z99 = 2.3263478740408408;
  const a = 2 / (9 * k);
  return k * (1 - a + z99 * Math.sqrt(a)) ** 3;
}

/** Fills `z` with standard normals whose squared norm is below `bound` (rejection sampling). */
function drawInside(rng: Rng, z: Float64Array, bound: number): void {
  for (;;) {
    let s = 0;
    for (let j = 0; j < z.length; j++) {
      const v = rng.normal();
      z[j] = v;
      s += v * v;
    }
    if (s < bound) return;
  }
}

function rowsOf(m: Float64Array, k: number): number[][] {
  return Array.from({ length: k }, (_, i) => Array.from(m.subarray(i * k, i * k + k)));
}

/** Builds one aggregates part: devices `[first, last)` of the fleet, 60 rows each, as an Arrow IPC file. */
function windowPart(
  window: Window,
  models: readonly DemoModel[],
  first: number,
  last: number,
  features: readonly string[],
  seed: number,
  anomalyRate: number,
  truth: DemoGroundTruth['anomalies'],
): Uint8Array {
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
    const rng = new Rng(seed, d + 1, hour);
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
        const base = x[j]!;
        let sigmas = ANOMALY_MIN_SIGMAS;
        for (;;) {
          x[j] = Math.fround(base + sign * sigmas * model.sigma[j]!);
          if (mahalanobis2(x, model.mean32, model.precision32, k) >= model.threshold * ANOMALY_MARGIN) break;
          sigmas *= 1.5;
        }
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
function drawNormalRow(rng: Rng, model: DemoModel, z: Float64Array, x: Float64Array, k: number): void {
  for (;;) {
    drawInside(rng, z, model.bound);
    for (let i = 0; i < k; i++) {
      let v = model.mean[i]!;
      for (let j = 0; j <= i; j++) v += model.chol[i * k + j]! * z[j]!;
      x[i] = Math.fround(v);
    }
    if (mahalanobis2(x, model.mean32, model.precision32, k) < model.threshold / NORMAL_MARGIN) return;
  }
}

const STREAM_PARAMS = 0x9e3779b9;
const STREAM_TRAIN = 0x7f4a7c15;

/**
 * Small seeded PRNG (sfc32, seeded through a murmur3 mix of its keys): one independent stream per (seed,
 * device, purpose or window), so a device-hour's rows do not depend on how many devices or hours are seeded.
 */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare = NaN;

  constructor(...key: number[]) {
    let h = 0x811c9dc5;
    for (const v of key) {
      h = Math.imul(h ^ (v >>> 0), 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
      h ^= h >>> 16;
    }
    this.a = h ^ 0xdeadbeef;
    this.b = Math.imul(h, 0x9e3779b1) | 0;
    this.c = Math.imul(h ^ 0x5bd1e995, 0x27d4eb2d) | 0;
    this.d = 1;
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Standard normal (Box–Muller, the second value kept for the next call). */
  normal(): number {
    if (this.spare === this.spare) {
      const v = this.spare;
      this.spare = NaN;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    const theta = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

/**
 * A view of a store in which `models/index.json` updates are collected in memory and written once by `flush`.
 * `registerModel` rewrites the whole index per call (fine for one upload, quadratic for 10,000 demo devices);
 * here every registration reads an empty index and its write is merged, so the real index is read and written
 * exactly once. Everything else goes straight to the underlying store.
 */
class IndexBatchingStore implements ObjectStore {
  readonly uri: string;
  private readonly entries = new Map<string, IndexEntry>();
  private static readonly EMPTY = new TextEncoder().encode(
    JSON.stringify({ schema: 'fleetscore.index/v1', devices: {} }),
  );

  constructor(private readonly inner: ObjectStore) {
    this.uri = inner.uri;
  }

  get(key: string): Promise<Uint8Array> {
    return key === keys.modelIndex() ? Promise.resolve(IndexBatchingStore.EMPTY) : this.inner.get(key);
  }

  tryGet(key: string): Promise<Uint8Array | undefined> {
    return key === keys.modelIndex() ? Promise.resolve(IndexBatchingStore.EMPTY) : this.inner.tryGet(key);
  }

  put(key: string, body: Uint8Array | string): Promise<void> {
    if (key !== keys.modelIndex()) return this.inner.put(key, body);
    const text = typeof body === 'string' ? body : Buffer.from(body).toString('utf8');
    const written = JSON.parse(text) as { devices: Record<string, IndexEntry> };
    for (const [device, entry] of Object.entries(written.devices)) this.entries.set(device, entry);
    return Promise.resolve();
  }

  getVersioned(key: string): Promise<VersionedObject | undefined> {
    return this.inner.getVersioned(key);
  }

  putIf(key: string, body: Uint8Array | string, expected: string | null): Promise<string | undefined> {
    return this.inner.putIf(key, body, expected);
  }

  list(prefix: string): Promise<string[]> {
    return this.inner.list(prefix);
  }

  listObjects(prefix: string): Promise<StoredObject[]> {
    return this.inner.listObjects(prefix);
  }

  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }

  /** Merges the collected entries into the real index and writes it. */
  async flush(): Promise<void> {
    const index = await readIndex(this.inner);
    for (const [device, entry] of this.entries) index.devices[device] = entry;
    await this.inner.put(keys.modelIndex(), `${JSON.stringify(index, null, 2)}\n`);
  }
}
