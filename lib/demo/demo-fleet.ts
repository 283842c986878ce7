/**
 * A synthetic fleet for demos, tests and benchmarks: hourly sensor aggregates with injected anomalies, their
 * ground truth, and one Mahalanobis-distance model per device trained in TypeScript and registered like any
 * other model. Everything is drawn from a seeded generator, so the same options write the same bytes, and
 * scoring a window and comparing with `demo/ground-truth/window=<id>.json` must give no false positive and no
 * false negative (see demo-aggregates.ts for why). This file orchestrates a seed; each job has its own room:
 * demo-model.ts (training), demo-aggregates.ts (rows and the Arrow writer), demo-truth.ts, demo-rng.ts,
 * spd-math.ts.
 */
import { forEachLimited } from '../shared/concurrency';
import { keys } from '../shared/keys';
import { moveIndex } from '../models/model-index';
import { writeModelVersion, type RegisteredModel } from '../models/model-registry';
import { buildMahalanobisModel } from '../models/onnx-builder';
import type { ObjectStore } from '../store/object-store';
import { windowAt } from '../shared/window';
import { DEMO_ROWS_PER_WINDOW, demoAggregatesPart } from './demo-aggregates';
import { demoDeviceId, demoFeatureNames } from './demo-ids';
import { trainDemoModel, type DemoModel } from './demo-model';
import { TRUTH_SCHEMA, type DemoGroundTruth } from './demo-truth';

const HOUR_MS = 3_600_000;
/** Devices per aggregates part file; a window with more devices gets more parts. */
export const DEMO_DEVICES_PER_PART = 2_000;
/** Model versions written at once while seeding: the store's latency, not CPU, bounds this step. */
const REGISTER_CONCURRENCY = 16;

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
  const { models, counts } = await registerDemoModels(store, { devices, k, seed, gpuEvery, features, onProgress });

  let parts = 0;
  let rows = 0;
  let anomalies = 0;
  for (let w = 0; w < windows.length; w++) {
    const window = windows[w]!;
    const truth: DemoGroundTruth['anomalies'] = [];
    for (let first = 0, part = 0; first < devices; first += devicesPerPart, part++) {
      const last = Math.min(devices, first + devicesPerPart);
      const bytes = demoAggregatesPart({ window, models, first, last, features, seed, anomalyRate }, truth);
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

/**
 * Trains every device's model and registers it as any model is: each version written (several at once), then the
 * index moved once for the whole fleet.
 */
async function registerDemoModels(
  store: ObjectStore,
  opts: Pick<DemoFleetOptions, 'devices' | 'seed' | 'gpuEvery' | 'onProgress'> & { k: number; features: string[] },
): Promise<{ models: DemoModel[]; counts: { cpu: number; gpu: number } }> {
  const { devices, k, seed = 1, gpuEvery = 5, features, onProgress } = opts;
  const models = new Array<DemoModel>(devices);
  const registered = new Array<RegisteredModel>(devices);
  const counts = { cpu: 0, gpu: 0 };
  let done = 0;
  await forEachLimited(
    Array.from({ length: devices }, (_, i) => i),
    REGISTER_CONCURRENCY,
    async (i) => {
      const model = trainDemoModel(seed, i + 1, k);
      models[i] = model;
      const pool = (i + 1) % gpuEvery === 0 ? 'gpu' : 'cpu';
      counts[pool]++;
      registered[i] = await writeModelVersion(store, {
        device: demoDeviceId(i + 1),
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
      done++;
      if (done % 100 === 0 || done === devices) onProgress?.({ phase: 'models', done, total: devices });
    },
  );
  await moveIndex(store, registered);
  return { models, counts };
}

function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
}

function rowsOf(m: Float64Array, k: number): number[][] {
  return Array.from({ length: k }, (_, i) => Array.from(m.subarray(i * k, i * k + k)));
}
