import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { loadWindowAggregates, readAggregatesPart } from '../../lib/arrow/aggregates';
import { ANOMALY_MIN_SIGMAS } from '../../lib/demo/demo-aggregates';
import { seedDemoFleet, type DemoFleetOptions } from '../../lib/demo/demo-fleet';
import { demoDeviceId, demoFeatureNames } from '../../lib/demo/demo-ids';
import { THRESHOLD_MARGIN, trainDemoModel } from '../../lib/demo/demo-model';
import { readDemoTruth } from '../../lib/demo/demo-truth';
import { keys } from '../../lib/shared/keys';
import { readIndex } from '../../lib/models/model-index';
import { readModelMeta } from '../../lib/models/model-registry';
import { LocalStore } from '../../lib/store/local-store';
import { parseWindow } from '../../lib/shared/window';

const END = Date.UTC(2026, 10, 21, 13);
const OPTIONS: DemoFleetOptions = {
  devices: 12,
  sensors: 4,
  hours: 2,
  endMs: END,
  seed: 7,
  anomalyRate: 0.05,
  devicesPerPart: 5,
};

const dirs: string[] = [];
async function tempStore(): Promise<LocalStore> {
  const dir = await mkdtemp(join(tmpdir(), 'fleetscore-demo-'));
  dirs.push(dir);
  return new LocalStore(dir);
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** The model's parameters as stored in the ONNX graph: found by shape, [K] mean and [K, K] precision. */
function onnxParameters(bytes: Uint8Array, k: number): { mean: Float32Array; precision: Float32Array } {
  const graph = onnx.ModelProto.decode(bytes).graph!;
  const floats = (t: onnx.ITensorProto) => {
    if (t.rawData && t.rawData.length > 0) return new Float32Array(Uint8Array.from(t.rawData).buffer);
    return Float32Array.from(t.floatData ?? []);
  };
  const byShape = (dims: number[]) => {
    const t = (graph.initializer ?? []).find(
      (i) =>
        i.dataType === onnx.TensorProto.DataType.FLOAT &&
        JSON.stringify((i.dims ?? []).map(Number)) === JSON.stringify(dims),
    );
    if (!t) throw new Error(`no float initializer of shape ${JSON.stringify(dims)}`);
    return floats(t);
  };
  return { mean: byShape([k]), precision: byShape([k, k]) };
}

/** Independent float64 (x - mean)ᵀ P (x - mean). */
function distance2(x: Float32Array, mean: Float32Array, p: Float32Array, k: number): number {
  const d = Array.from({ length: k }, (_, i) => x[i]! - mean[i]!);
  let s = 0;
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) s += d[i]! * p[i * k + j]! * d[j]!;
  return s;
}

describe('seedDemoFleet', () => {
  let store: LocalStore;
  let summary: Awaited<ReturnType<typeof seedDemoFleet>>;

  beforeAll(async () => {
    store = await tempStore();
    summary = await seedDemoFleet(store, OPTIONS);
  });

  it('returns a summary of what it wrote', () => {
    expect(summary).toMatchObject({
      store: store.uri,
      seed: 7,
      devices: 12,
      sensors: 4,
      windows: ['2026-11-21T11', '2026-11-21T12'],
      parts: 6,
      rows: 12 * 60 * 2,
      models: { cpu: 10, gpu: 2 },
    });
    expect(summary.anomalies).toBeGreaterThan(0);
  });

  it('writes the aggregates parts, the ground truth and the model index', async () => {
    const aggregates = await store.list('aggregates/');
    expect(aggregates).toEqual(summary.windows.flatMap((w) => [0, 1, 2].map((p) => keys.aggregatesPart(w, p))));
    const first = readAggregatesPart(aggregates[0]!, await store.get(aggregates[0]!));
    expect(first.devices).toEqual([1, 2, 3, 4, 5].map(demoDeviceId));
    expect(first.featureNames).toEqual(['s00', 's01', 's02', 's03']);
    expect(first.rows).toBe(5 * 60);

    const index = await readIndex(store);
    expect(Object.keys(index.devices).sort()).toEqual(Array.from({ length: 12 }, (_, i) => demoDeviceId(i + 1)));
    expect(index.devices['dev-00005']!.pool).toBe('gpu');
    expect(index.devices['dev-00010']!.pool).toBe('gpu');
    expect(index.devices['dev-00001']!.pool).toBe('cpu');

    let anomalies = 0;
    for (const w of summary.windows) {
      const truth = (await readDemoTruth(store, w))!;
      expect(truth).toMatchObject({ window: w, seed: 7, devices: 12, rows: 720 });
      for (const a of truth.anomalies) expect(Math.abs(a.sigmas)).toBeGreaterThanOrEqual(ANOMALY_MIN_SIGMAS);
      anomalies += truth.anomalies.length;
    }
    expect(anomalies).toBe(summary.anomalies);
    expect(await readDemoTruth(store, '2026-11-21T13')).toBeUndefined();
  });

  it('registers models whose threshold separates injected anomalies from normal rows exactly', async () => {
    const index = await readIndex(store);
    let normal = 0;
    let flagged = 0;
    for (const windowId of summary.windows) {
      const window = parseWindow(windowId);
      const aggregates = await loadWindowAggregates(store, window);
      const truth = new Set((await readDemoTruth(store, windowId))!.anomalies.map((a) => `${a.device}@${a.ts}`));
      for (const [device, entry] of Object.entries(index.devices)) {
        const meta = await readModelMeta(store, device, entry.version);
        expect(meta).toMatchObject({
          pool: entry.pool,
          anomalyWhen: 'above',
          algorithm: 'mahalanobis',
          features: demoFeatureNames(4),
        });
        const k = meta.features.length;
        const { mean, precision } = onnxParameters(await store.get(keys.modelOnnx(device, entry.version)), k);
        const rows = aggregates.device(device, meta.features)!;
        expect(rows.rows).toBe(60);
        for (let r = 0; r < rows.rows; r++) {
          const d2 = distance2(rows.x.subarray(r * k, r * k + k), mean, precision, k);
          const isAnomaly = truth.has(`${device}@${rows.ts[r]}`);
          if (isAnomaly) {
            expect(d2).toBeGreaterThan(meta.threshold);
            flagged++;
          } else {
            expect(d2).toBeLessThan(meta.threshold);
            normal++;
          }
        }
      }
    }
    expect(flagged).toBe(summary.anomalies);
    expect(normal + flagged).toBe(summary.rows);
  });

  it('gives onnxruntime the same verdicts as the ground truth', async () => {
    const index = await readIndex(store);
    const windowId = summary.windows[1]!;
    const aggregates = await loadWindowAggregates(store, parseWindow(windowId));
    const truth = new Set((await readDemoTruth(store, windowId))!.anomalies.map((a) => `${a.device}@${a.ts}`));
    for (const device of ['dev-00001', 'dev-00005', 'dev-00012']) {
      const entry = index.devices[device]!;
      const meta = await readModelMeta(store, device, entry.version);
      const rows = aggregates.device(device, meta.features)!;
      const session = await InferenceSession.create(await store.get(keys.modelOnnx(device, entry.version)));
      try {
        const input = new Tensor('float32', rows.x, [rows.rows, meta.features.length]);
        const out = await session.run({ [meta.input.name]: input });
        const scores = out[meta.output.name]!.data as Float32Array;
        const got = Array.from(rows.ts).filter((_, r) => scores[r]! > meta.threshold);
        const expected = Array.from(rows.ts).filter((t) => truth.has(`${device}@${t}`));
        expect(got).toEqual(expected);
      } finally {
        await session.release();
      }
    }
  });

  it('recomputes the registered models from the seed (training statistics and threshold)', async () => {
    const index = await readIndex(store);
    for (const i of [1, 7]) {
      const device = demoDeviceId(i);
      const meta = await readModelMeta(store, device, index.devices[device]!.version);
      const model = trainDemoModel(7, i, 4);
      expect(meta.threshold).toBe(model.threshold);
      expect(model.threshold).toBeCloseTo(THRESHOLD_MARGIN * model.maxTrainingScore, 12);
      expect(model.trainingRows).toBeGreaterThanOrEqual(500);
      const onnxBytes = await store.get(keys.modelOnnx(device, index.devices[device]!.version));
      const { mean, precision } = onnxParameters(onnxBytes, 4);
      expect(Array.from(mean)).toEqual(Array.from(model.mean32));
      expect(Array.from(precision)).toEqual(Array.from(model.precision32));
    }
  });

  it('writes the same bytes for the same seed, and different data for another seed', async () => {
    const again = await tempStore();
    await seedDemoFleet(again, OPTIONS);
    for (const key of [...(await store.list('aggregates/')), ...(await store.list('demo/'))]) {
      expect(Buffer.from(await again.get(key)).equals(Buffer.from(await store.get(key)))).toBe(true);
    }
    const [a, b] = await Promise.all([readIndex(store), readIndex(again)]);
    for (const device of Object.keys(a.devices)) expect(b.devices[device]!.sha256).toBe(a.devices[device]!.sha256);

    const other = await tempStore();
    await seedDemoFleet(other, { ...OPTIONS, seed: 8 });
    const key = keys.aggregatesPart(summary.windows[0]!, 0);
    expect(Buffer.from(await other.get(key)).equals(Buffer.from(await store.get(key)))).toBe(false);
  });

  it('writes a window the same way however many hours are seeded (one stream per device-hour)', async () => {
    const one = await tempStore();
    await seedDemoFleet(one, { ...OPTIONS, hours: 1 });
    const key = keys.aggregatesPart(summary.windows[1]!, 1);
    expect(Buffer.from(await one.get(key)).equals(Buffer.from(await store.get(key)))).toBe(true);
  });

  it('defaults the end to the start of the current UTC hour', async () => {
    const s = await seedDemoFleet(await tempStore(), { devices: 1, sensors: 2, hours: 1 });
    const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    // The seed may straddle an hour boundary; either hour is right.
    const expected = [hour - 3_600_000, hour - 7_200_000].map((t) => new Date(t).toISOString().slice(0, 13));
    expect(expected).toContain(s.windows[0]);
  });

  it('refuses options out of range', async () => {
    await expect(seedDemoFleet(store, { ...OPTIONS, devices: 0 })).rejects.toThrow(/devices/);
    await expect(seedDemoFleet(store, { ...OPTIONS, sensors: 1.5 })).rejects.toThrow(/sensors/);
    await expect(seedDemoFleet(store, { ...OPTIONS, anomalyRate: 2 })).rejects.toThrow(/anomalyRate/);
  });
});
