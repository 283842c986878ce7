/**
 * One window over a fleet that mixes every model family (one-class SVMs rbf and poly, an isolation forest, PCA
 * and autoencoder reconstructions (a scikit-learn MLPRegressor among them), scikit-learn pipelines with their scaler in the graph, a Gaussian mixture,
 * supervised classifiers scored by a class probability (scikit-learn, XGBoost, LightGBM), demo Mahalanobis models,
 * and a graph no fast path takes), 4 and 7 features,
 * and both pools: each device is scored by the fast path of its family, its committed scores match scikit-learn's
 * (numpy's) within float32 tolerance with the same anomaly flags, and the manifest and shard log say which path
 * scored it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { decodePredictions, predictionRows } from '../../lib/arrow/predictions';
import { keys } from '../../lib/shared/keys';
import { registerModel, type ModelMetaInput } from '../../lib/models/model-registry';
import { buildMahalanobisModel } from '../../lib/models/onnx-builder';
import { LocalStore } from '../../lib/store/local-store';
import { parseWindow } from '../../lib/shared/window';
import { referenceMahalanobis } from '../support/expected-scores';
import { aggregatesPart, type PartRows } from '../support/aggregates-part';
import { fleetscore } from '../support/fleetscore-cli';
import { runWindow } from '../support/run-window';
import { sklearnCases, sklearnFixture } from '../support/sklearn-cases';

jest.setTimeout(60_000);

const WINDOW = parseWindow('2026-11-21T11');
const fixture = sklearnFixture;

interface Device {
  device: string;
  path: string;
  features: string[];
  rows: number[][];
  /** The reference score of each row, and whether it is an anomaly. */
  expected: number[];
  anomalies: boolean[];
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-mixed-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function registerFixture(
  store: LocalStore,
  name: string,
  device: string,
  pool: 'cpu' | 'gpu',
  bytes?: Uint8Array,
) {
  const {
    schema: _s,
    sha256: _h,
    ...meta
  } = JSON.parse(fixture(name, 'model.json').toString('utf8')) as Record<string, unknown>;
  const onnxBytes = bytes ?? new Uint8Array(fixture(name, 'model.onnx'));
  await registerModel(store, { device, onnx: onnxBytes, meta: { ...meta, pool } as ModelMetaInput });
}

it('scores every family by its fast path, exactly, in one window with mixed feature counts and pools', async () => {
  const store = new LocalStore(join(dir, 'store'));
  const devices: Device[] = [];
  const paths = {
    ocsvm: 'compiled:svm',
    'ocsvm-poly': 'compiled:svm',
    isoforest: 'compiled:tree-ensemble',
    'pca-reconstruction': 'compiled:linear',
    autoencoder: 'compiled:mlp',
    // scikit-learn's MLPRegressor as skl2onnx writes it: the reconstruction flattened to [rows * 4, 1].
    'mlp-autoencoder': 'compiled:mlp',
    'ocsvm-pipeline': 'compiled:svm',
    'isoforest-pipeline': 'compiled:tree-ensemble',
    'gaussian-mixture': 'compiled:linear',
    kmeans: 'compiled:linear',
    // Written with onnx.helper as the Mahalanobis graph (skl2onnx has no EllipticEnvelope converter): stacked.
    'elliptic-envelope': 'stacked-mahalanobis',
    'pyod-iforest': 'compiled:tree-ensemble',
    'pyod-ocsvm': 'compiled:svm',
    'pyod-lof': 'compiled:neighbors',
    'pyod-knn': 'compiled:neighbors',
    'pyod-mcd': 'stacked-mahalanobis',
    'pyod-gmm': 'compiled:linear',
    lof: 'compiled:neighbors',
    'lof-float64': 'compiled:neighbors',
    'rf-classifier': 'compiled:tree-ensemble',
    'gbdt-classifier': 'compiled:tree-ensemble',
    'logreg-classifier': 'compiled:linear',
    'xgboost-classifier': 'compiled:tree-ensemble',
    'lightgbm-classifier': 'compiled:tree-ensemble',
    'extra-trees-classifier': 'compiled:tree-ensemble',
  };
  for (const [name, path] of Object.entries(paths)) {
    const c = sklearnCases(name);
    for (const pool of ['cpu', 'gpu'] as const) {
      const device = `${name}-${pool}`;
      await registerFixture(store, name, device, pool);
      const anomalies = c.predict.map((p) => p === -1);
      devices.push({ device, path, features: c.features, rows: c.rows, expected: c.decisionFunction, anomalies });
    }
  }
  // A graph no fast path takes (Sin) keeps its own session.
  const ae = onnx.ModelProto.decode(fixture('autoencoder', 'model.onnx'));
  ae.graph!.node!.find((n) => n.opType === 'Tanh')!.opType = 'Sin';
  await registerFixture(store, 'autoencoder', 'sin-cpu', 'cpu', new Uint8Array(onnx.ModelProto.encode(ae).finish()));
  // Demo Mahalanobis models on the same 7 features, stacked.
  const wide = sklearnCases('autoencoder').rows;
  const features = [...Array(7).keys()].map((j) => `f${j}`);
  for (const pool of ['cpu', 'gpu'] as const) {
    const mean = [0.5, -0.2, 1, 0, -1, 0.3, 0.8];
    const precision = mean.map((_, i) => mean.map((_, j) => (i === j ? 1.5 : i === j + 1 || j === i + 1 ? 0.2 : 0)));
    const device = `mahalanobis-${pool}`;
    await registerModel(store, {
      device,
      onnx: buildMahalanobisModel({ mean, precision }),
      meta: { pool, features, input: { name: 'X' }, output: { name: 'score' }, anomalyWhen: 'above', threshold: 30 },
    });
    const expected = wide.map((x) => referenceMahalanobis(x, mean, precision.flat()));
    devices.push({
      device,
      path: 'stacked-mahalanobis',
      features,
      rows: wide,
      expected,
      anomalies: expected.map((s) => s > 30),
    });
  }

  const rows: PartRows = [...devices, { device: 'sin-cpu', features, rows: wide }].map((d) => ({
    device: d.device,
    minutes: d.rows.map((_, i) => i),
    values: Object.fromEntries(d.features.map((f, j) => [f, d.rows.map((r) => r[j]!)])),
  }));
  const columns = Object.fromEntries(
    [...new Set(devices.flatMap((d) => d.features))].map((f) => [f, 'float' as const]),
  );
  await store.put(keys.aggregatesPart(WINDOW.id, 0), aggregatesPart(WINDOW, rows, columns));

  const { manifest, logs } = await runWindow(store, WINDOW.id, { perModelPools: true, shardSize: 4 });
  expect(new Set(manifest.shards.map((s) => s.pool))).toEqual(new Set(['cpu', 'gpu']));
  expect(manifest.counts).toMatchObject({ devices: devices.length + 1, scored: devices.length + 1, failed: 0 });
  expect(manifest.devices['sin-cpu']).toMatchObject({ status: 'scored', path: 'session' });
  // Its shard's log says why no compiled path took it.
  expect(logs).toMatch(/"event":"fast-paths".*"refused":\{"UnsupportedGraph: operator ai\.onnx\.Sin":1\}/);
  expect(logs).toContain('"event":"fast-paths"');
  // Where each shard's programs came from: compiled here, by a worker with nothing saved or cached.
  expect(logs).toMatch(/"event":"fast-paths".*"programs":\{[^}]*"compiled":\d+/);
  // And the manifest, shard by shard: every device scored by a compiled program is counted once (devices whose
  // models are the same bytes share one program: cached after the first).
  const compiledDevices = Object.values(manifest.devices).filter(
    (o) => o.status === 'scored' && o.path?.startsWith('compiled:'),
  ).length;
  expect(compiledDevices).toBeGreaterThan(0);
  const origins: Record<string, number> = {};
  for (const s of manifest.shards)
    for (const [origin, n] of Object.entries(s.programs ?? {})) origins[origin] = (origins[origin] ?? 0) + n;
  expect(origins.compiled).toBeGreaterThan(0);
  expect((origins.compiled ?? 0) + (origins.cached ?? 0)).toBe(compiledDevices);
  expect(Object.keys(origins).filter((o) => o !== 'compiled' && o !== 'cached')).toEqual([]);
  // `runs show` sums them.
  const shown = await fleetscore(['runs', 'show', WINDOW.id, '--store', store.uri]);
  expect(shown.stdout).toContain(`\nprograms   compiled ${origins.compiled}, cached ${origins.cached}\n`);

  const committed = new Map<string, { score: number; isAnomaly: boolean }[]>();
  for (const shard of manifest.shards) {
    for (const row of predictionRows(decodePredictions(await store.get(shard.predictions!)))) {
      committed.set(row.device, [...(committed.get(row.device) ?? []), row]);
    }
  }
  for (const d of devices) {
    expect({ device: d.device, ...manifest.devices[d.device] }).toMatchObject({ device: d.device, path: d.path });
    const got = committed.get(d.device)!;
    expect(got).toHaveLength(d.rows.length);
    got.forEach((row, i) => {
      const want = d.expected[i]!;
      expect({ device: d.device, row: i, ok: Math.abs(row.score - want) <= 1e-4 + 1e-4 * Math.abs(want) }).toEqual({
        device: d.device,
        row: i,
        ok: true,
      });
    });
    expect(got.map((r) => r.isAnomaly)).toEqual(d.anomalies);
  }
});
