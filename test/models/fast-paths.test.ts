/**
 * The compiled-graph fast path gives each family's scores as the model's own onnxruntime session does (float32
 * tolerance) and as scikit-learn / numpy computed them (cases.json, scripts/make-sklearn-fixtures.py), with the
 * same anomaly flags; graphs it does not implement keep their own session.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { linkProgram } from '../../lib/models/fast-paths/graph-evaluator';
import { compileGraph } from '../../lib/models/fast-paths/graph-program';
import { registerModel, type ModelMetaInput } from '../../lib/models/model-registry';
import { isAnomaly } from '../../lib/models/model-output';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { LocalStore } from '../../lib/store/local-store';
import { scoreWith } from '../support/score-prepared';
import { sklearnCases, sklearnFixture } from '../support/sklearn-cases';

/** Every fixture, the fast path it must take, and how close scikit-learn's double-precision scores must be. */
const FAMILIES = [
  { name: 'ocsvm', path: 'compiled:svm', tol: 1e-4 },
  { name: 'ocsvm-poly', path: 'compiled:svm', tol: 1e-4 },
  { name: 'isoforest', path: 'compiled:tree-ensemble', tol: 1e-5 },
  { name: 'pca-reconstruction', path: 'compiled:linear', tol: 1e-5 },
  { name: 'autoencoder', path: 'compiled:mlp', tol: 1e-5 },
  // scikit-learn's MLPRegressor reconstructing its input, as skl2onnx writes it: the reconstruction flattened to
  // [rows * 4, 1] by the converter's last Reshape.
  { name: 'mlp-autoencoder', path: 'compiled:mlp', tol: 1e-4 },
  // As users pipeline them: the scaler in the graph (an ai.onnx.ml Scaler node), and a mixture's log likelihood.
  { name: 'ocsvm-pipeline', path: 'compiled:svm', tol: 1e-4 },
  { name: 'isoforest-pipeline', path: 'compiled:tree-ensemble', tol: 1e-5 },
  { name: 'gaussian-mixture', path: 'compiled:linear', tol: 1e-4 },
  // Distances to the training rows by a Scan, the 20 nearest by TopK.
  { name: 'lof', path: 'compiled:neighbors', tol: 1e-4 },
  // Exported from numpy's default float64 sample: a double input, fed the float32 rows converted.
  { name: 'lof-float64', path: 'compiled:neighbors', tol: 1e-4 },
  // One input per column, as skl2onnx exports a pipeline fitted on a DataFrame: registration joins them into X.
  { name: 'ocsvm-columns', path: 'compiled:svm', tol: 1e-4 },
  // A ColumnTransformer (two scaled columns, one min-max scaled, one passed through) fitted on a DataFrame and
  // exported from it: one input per column, each transformer's columns joined by a Concat before the forest.
  { name: 'isoforest-columntransformer', path: 'compiled:tree-ensemble', tol: 1e-5 },
  // A KMeans' distance to each centroid, scored by the nearest (model.json's "reduce": "min").
  { name: 'kmeans', path: 'compiled:linear', tol: 1e-4 },
  // PyOD's detectors, their scikit-learn estimators exported and PyOD's rule mapped in model.json
  // (scripts/make-pyod-fixtures.py): the reference is PyOD's own decision_function and predict.
  { name: 'pyod-iforest', path: 'compiled:tree-ensemble', tol: 1e-5 },
  { name: 'pyod-ocsvm', path: 'compiled:svm', tol: 1e-4 },
  { name: 'pyod-lof', path: 'compiled:neighbors', tol: 1e-4 },
  { name: 'pyod-knn', path: 'compiled:neighbors', tol: 1e-4 },
  { name: 'pyod-gmm', path: 'compiled:linear', tol: 1e-4 },
  // Supervised: a classifier's probability of a fault (scripts/make-classifier-fixtures.py). String labels, whose
  // label output the fast path leaves out; three classes scored by the probability of normal; a pipeline's
  // LinearClassifier; XGBoost and LightGBM through onnxmltools; a forest of three classes (every leaf weighing each).
  { name: 'rf-classifier', path: 'compiled:tree-ensemble', tol: 1e-5 },
  { name: 'gbdt-classifier', path: 'compiled:tree-ensemble', tol: 1e-5 },
  { name: 'logreg-classifier', path: 'compiled:linear', tol: 1e-5 },
  { name: 'xgboost-classifier', path: 'compiled:tree-ensemble', tol: 1e-5 },
  { name: 'lightgbm-classifier', path: 'compiled:tree-ensemble', tol: 1e-5 },
  { name: 'extra-trees-classifier', path: 'compiled:tree-ensemble', tol: 1e-5 },
] as const;

const fixture = sklearnFixture;
const cases = sklearnCases;

let dir: string;
let store: LocalStore;
const fast = new ModelSessionCache();
const sessions = new ModelSessionCache({ batching: false });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-fast-paths-'));
  store = new LocalStore(dir);
});
afterAll(async () => {
  await Promise.all([fast.close(), sessions.close()]);
  await rm(dir, { recursive: true, force: true });
});

async function register(name: string, device: string, onnxBytes?: Uint8Array, meta?: Record<string, unknown>) {
  const packaged = JSON.parse(fixture(name, 'model.json').toString('utf8')) as Record<string, unknown>;
  const { schema: _schema, sha256: _sha256, ...rest } = packaged;
  return registerModel(store, {
    device,
    onnx: onnxBytes ?? new Uint8Array(fixture(name, 'model.onnx')),
    meta: { ...rest, ...meta } as ModelMetaInput,
  });
}

describe.each(FAMILIES)('$name', ({ name, path, tol }) => {
  it(`takes the ${path} fast path and matches its onnxruntime session and scikit-learn`, async () => {
    const entry = await register(name, `${name}-1`);
    const c = cases(name);
    const x = new Float32Array(c.rows.flat());
    const model = await fast.prepare(store, `${name}-1`, entry);
    expect(model.path).toBe(path);
    const got = await scoreWith(model, x, c.rows.length);
    const viaSession = await sessions.prepare(store, `${name}-1`, entry);
    expect(viaSession.path).toBe('session');
    const reference = await scoreWith(viaSession, x, c.rows.length);
    got.forEach((s, i) => {
      const session = reference[i]!;
      expect(Math.abs(s - session)).toBeLessThanOrEqual(2e-6 + 2e-6 * Math.abs(session));
      const sklearn = c.decisionFunction[i]!;
      expect(Math.abs(s - sklearn)).toBeLessThanOrEqual(tol + tol * Math.abs(sklearn));
    });
    expect(Array.from(got, (s) => (isAnomaly(model.meta, s) ? -1 : 1))).toEqual(c.predict);
    expect(new Set(c.predict)).toEqual(new Set([1, -1]));
  });

  it('is taken again from the cache, without a promise, only while model.json, checksum and program hold', async () => {
    const device = `${name}-cached`;
    const entry = await register(name, device);
    const c = cases(name);
    const x = new Float32Array(c.rows.flat());
    expect(fast.prepareCached(store, device, entry)).toBeUndefined();
    const prepared = await fast.prepare(store, device, entry);
    const cached = fast.prepareCached(store, device, entry);
    expect(cached).toMatchObject({ kind: 'session', path, device, version: entry.version, meta: prepared.meta });
    expect(await scoreWith(cached!, x, c.rows.length)).toEqual(await scoreWith(prepared, x, c.rows.length));
    expect(fast.prepareCached(store, device, { ...entry, sha256: 'f'.repeat(64) })).toBeUndefined();
    expect(sessions.prepareCached(store, device, entry)).toBeUndefined();
    fast.forget(store, device, entry.version);
    expect(fast.prepareCached(store, device, entry)).toBeUndefined();
  });
});

describe('a OneClassSVM exported from a float64 sample', () => {
  it('is scored by compiled:svm as scikit-learn scores it, though onnxruntime has no double SVMRegressor', async () => {
    const entry = await register('ocsvm-float64', 'svm64-1');
    const c = cases('ocsvm-float64');
    const x = new Float32Array(c.rows.flat());
    const model = await fast.prepare(store, 'svm64-1', entry);
    expect(model.path).toBe('compiled:svm');
    const got = await scoreWith(model, x, c.rows.length);
    got.forEach((s, i) => expect(Math.abs(s - c.decisionFunction[i]!)).toBeLessThanOrEqual(1e-4));
    expect(Array.from(got, (s) => (isAnomaly(model.meta, s) ? -1 : 1))).toEqual(c.predict);
    // Its own session cannot be made: a worker without the fast path fails the device, saying why.
    const viaSession = sessions.prepare(store, 'svm64-1', entry).then((m) => scoreWith(m, x, c.rows.length));
    await expect(viaSession).rejects.toThrow(/SVMRegressor/);
  });
});

describe('a LocalOutlierFactor', () => {
  it.each(['lof', 'lof-float64'])(
    '%s: its distances and TopK run fused, bit for bit as its nodes one by one',
    (name) => {
      const meta = JSON.parse(fixture(name, 'model.json').toString('utf8')) as {
        input: { name: string };
        output: { name: string };
      };
      const c = cases(name);
      const bytes = new Uint8Array(fixture(name, 'model.onnx'));
      const fused = compileGraph(bytes, meta.input.name, meta.output.name);
      const plain = compileGraph(bytes, meta.input.name, meta.output.name, false);
      expect(fused.nodes.map((n) => n.op)).toContain('Nearest');
      expect(fused.nodes.length).toBeLessThan(plain.nodes.length - 3);
      // Smaller: the [samples, k] table of the training samples' neighbour distances is down to one column.
      expect(fused.bytes).toBeLessThan(plain.bytes);
      const x = new Float32Array(c.rows.flat());
      const rows = c.rows.length;
      const width = c.features.length;
      const a = linkProgram(fused).run(x, rows, width);
      const b = linkProgram(plain).run(x, rows, width);
      expect(Array.from(a.data)).toEqual(Array.from(b.data));
    },
  );
});

describe('SVM kernels', () => {
  // The rbf and poly fixtures' SVMRegressor with its kernel (and parameters) changed: onnxruntime scores each.
  const variants = [
    { name: 'sigmoid', kernel: 'SIGMOID', params: [0.05, 0.1, 0] },
    { name: 'linear', kernel: 'LINEAR', params: [0, 0, 0] },
    { name: 'poly-fractional-degree', kernel: 'POLY', params: [0.01, 10, 2.5] },
    { name: 'poly-degree-3', kernel: 'POLY', params: [0.1, 1, 3] },
    { name: 'rbf-wide', kernel: 'RBF', params: [0.01, 0, 0] },
  ];
  it.each(variants)('$name: the fast path matches its onnxruntime session', async ({ name, kernel, params }) => {
    const model = onnx.ModelProto.decode(fixture('ocsvm', 'model.onnx'));
    const svm = model.graph!.node!.find((n) => n.opType === 'SVMRegressor')!;
    const attr = (key: string) => svm.attribute!.find((a) => a.name === key)!;
    attr('kernel_type').s = new TextEncoder().encode(kernel);
    attr('kernel_params').floats = params;
    const device = `svm-${name}`;
    const entry = await register('ocsvm', device, new Uint8Array(onnx.ModelProto.encode(model).finish()));
    const c = cases('ocsvm');
    const x = new Float32Array(c.rows.flat());
    const prepared = await fast.prepare(store, device, entry);
    expect(prepared.path).toBe('compiled:svm');
    const got = await scoreWith(prepared, x, c.rows.length);
    const reference = await scoreWith(await sessions.prepare(store, device, entry), x, c.rows.length);
    got.forEach((s, i) =>
      expect(Math.abs(s - reference[i]!)).toBeLessThanOrEqual(2e-6 + 2e-6 * Math.abs(reference[i]!)),
    );
    // Each variant scores differently from the fixture's own rbf kernel: the change took.
    expect(Array.from(got).some((s, i) => Math.abs(s - c.decisionFunction[i]!) > 1e-3)).toBe(true);
  });
});

describe('an autoencoder as torch.onnx.export writes one', () => {
  it('with BatchNorm1d, GELU, Dropout and x.view(x.size(0), -1) takes compiled:mlp and matches its session', async () => {
    // The 7-4-7 fixture rewritten with the layers torch exports: the view's Shape-Gather-Unsqueeze-Concat-Reshape,
    // a BatchNormalization after the first Linear, GELU as Div-Erf-Add-Mul-Mul instead of Tanh, Dropout (eval).
    const model = onnx.ModelProto.decode(fixture('autoencoder', 'model.onnx'));
    const graph = model.graph!;
    const [first, , second] = graph.node!;
    first!.input![0] = 'flat';
    second!.input![0] = 'dropped';
    const int = (name: string, i: number) => ({ name, type: onnx.AttributeProto.AttributeType.INT, i });
    graph.node = [
      { opType: 'Shape', input: ['input'], output: ['shape'] },
      { opType: 'Gather', input: ['shape', 'zero'], output: ['n'], attribute: [int('axis', 0)] },
      { opType: 'Unsqueeze', input: ['n', 'axes'], output: ['n1'] },
      { opType: 'Concat', input: ['n1', 'minus1'], output: ['view'], attribute: [int('axis', 0)] },
      { opType: 'Reshape', input: ['input', 'view'], output: ['flat'] },
      first!,
      { opType: 'BatchNormalization', input: ['h0', 'bn_g', 'bn_b', 'bn_m', 'bn_v'], output: ['bn'] },
      { opType: 'Div', input: ['bn', 'sqrt2'], output: ['g0'] },
      { opType: 'Erf', input: ['g0'], output: ['g1'] },
      { opType: 'Add', input: ['g1', 'one'], output: ['g2'] },
      { opType: 'Mul', input: ['bn', 'g2'], output: ['g3'] },
      { opType: 'Mul', input: ['g3', 'half'], output: ['g4'] },
      { opType: 'Dropout', input: ['g4', 'ratio'], output: ['dropped'] },
      second!,
    ];
    const floats = (name: string, v: number[]) => ({
      name,
      dims: v.length === 1 ? [] : [v.length],
      dataType: 1,
      floatData: v,
    });
    const ints = (name: string, v: number[], dims = [v.length]) => ({ name, dims, dataType: 7, int64Data: v });
    graph.initializer!.push(
      ints('zero', [0], []),
      ints('axes', [0]),
      ints('minus1', [-1]),
      floats('bn_g', [1.2, 0.8, 1.1, 0.9]),
      floats('bn_b', [0.1, -0.2, 0.05, 0]),
      floats('bn_m', [0.3, -0.1, 0.2, 0.4]),
      floats('bn_v', [0.5, 1.5, 0.9, 2.2]),
      floats('sqrt2', [Math.SQRT2]),
      floats('one', [1]),
      floats('half', [0.5]),
      floats('ratio', [0.2]),
    );
    const bytes = new Uint8Array(onnx.ModelProto.encode(model).finish());
    const entry = await register('autoencoder', 'torch-ae-1', bytes);
    const c = cases('autoencoder');
    const x = new Float32Array(c.rows.flat());
    const compiled = await fast.prepare(store, 'torch-ae-1', entry);
    expect(compiled.path).toBe('compiled:mlp');
    const got = await scoreWith(compiled, x, c.rows.length);
    const reference = await scoreWith(await sessions.prepare(store, 'torch-ae-1', entry), x, c.rows.length);
    got.forEach((s, i) =>
      expect(Math.abs(s - reference[i]!)).toBeLessThanOrEqual(2e-6 + 2e-6 * Math.abs(reference[i]!)),
    );
    expect(new Set(got).size).toBe(c.rows.length);
  });
});

describe('a Mahalanobis graph written in Python (EllipticEnvelope, PyOD MCD)', () => {
  it.each(['elliptic-envelope', 'pyod-mcd'])('%s is stacked, and its own session scores it too', async (name) => {
    const entry = await register(name, `${name}-1`);
    expect((await fast.prepare(store, `${name}-1`, entry)).path).toBe('stacked-mahalanobis');
    const c = cases(name);
    const viaSession = await scoreWith(
      await sessions.prepare(store, `${name}-1`, entry),
      new Float32Array(c.rows.flat()),
      c.rows.length,
    );
    viaSession.forEach((s, i) =>
      expect(Math.abs(s - c.decisionFunction[i]!)).toBeLessThanOrEqual(1e-4 * (1 + c.decisionFunction[i]!)),
    );
  });
});

describe('an output reduced across its columns', () => {
  it('scores each row by its smallest or largest column, compiled and in its session alike', async () => {
    const c = cases('kmeans');
    const x = new Float32Array(c.rows.flat());
    const rows = c.rows.length;
    const byColumn: Float32Array[] = [];
    for (let column = 0; column < 4; column++) {
      const device = `kmeans-column-${column}`;
      const entry = await register('kmeans', device, undefined, { output: { name: 'scores', column } });
      byColumn.push(await scoreWith(await fast.prepare(store, device, entry), x, rows));
    }
    for (const reduce of ['min', 'max'] as const) {
      const entry = await register('kmeans', `kmeans-${reduce}`, undefined, { output: { name: 'scores', reduce } });
      const got = await scoreWith(await fast.prepare(store, `kmeans-${reduce}`, entry), x, rows);
      const viaSession = await scoreWith(await sessions.prepare(store, `kmeans-${reduce}`, entry), x, rows);
      const pick = reduce === 'min' ? Math.min : Math.max;
      got.forEach((s, r) => {
        expect(s).toBe(pick(...byColumn.map((scores) => scores[r]!)));
        expect(Math.abs(s - viaSession[r]!)).toBeLessThanOrEqual(2e-6 + 2e-6 * Math.abs(s));
      });
    }
    // Registration refuses an output of several columns whose model.json does not say which is the score.
    await expect(register('kmeans', 'kmeans-unsaid', undefined, { output: { name: 'scores' } })).rejects.toMatchObject({
      name: 'InvalidModel',
      field: 'output.column',
      message: expect.stringMatching(
        /model\.onnx: output scores has 4 columns: say which is the score, "column": 0 to 3/,
      ),
    });
    // The nearest centroid is not always the same column: the reduction is per row.
    const nearest = c.rows.map((_, r) =>
      byColumn.findIndex((scores) => scores[r] === Math.min(...byColumn.map((b) => b[r]!))),
    );
    expect(new Set(nearest).size).toBeGreaterThan(1);
  });
});

describe('fast path refusals', () => {
  it('keeps a graph with an operator it does not implement on its own session, with the same scores', async () => {
    // The autoencoder with Sin instead of Tanh: no fast-path operator for it.
    const model = onnx.ModelProto.decode(fixture('autoencoder', 'model.onnx'));
    const tanh = model.graph!.node!.find((n) => n.opType === 'Tanh')!;
    tanh.opType = 'Sin';
    const bytes = new Uint8Array(onnx.ModelProto.encode(model).finish());
    const entry = await register('autoencoder', 'sin-1', bytes);
    const prepared = await fast.prepare(store, 'sin-1', entry);
    expect(prepared.path).toBe('session');
    const c = cases('autoencoder');
    const scores = await scoreWith(prepared, new Float32Array(c.rows.flat()), c.rows.length);
    expect(scores.every(Number.isFinite)).toBe(true);
  });

  it('scores a reconstruction by mae or mse of the preprocessed input', async () => {
    const c = cases('pca-reconstruction');
    const x = new Float32Array(c.rows.flat());
    const output = { name: 'reconstruction', reconstructionError: 'mae' };
    const mae = await fast.prepare(
      store,
      'pca-mae',
      await register('pca-reconstruction', 'pca-mae', undefined, { output }),
    );
    const mse = await fast.prepare(store, 'pca-mse', await register('pca-reconstruction', 'pca-mse'));
    const a = await scoreWith(mae, x, c.rows.length);
    const b = await scoreWith(mse, x, c.rows.length);
    // Mean absolute error is at most the root of the mean squared error, per row.
    a.forEach((v, i) => expect(v).toBeLessThanOrEqual(Math.sqrt(b[i]!) * (1 + 1e-6)));
    expect(a.some((v, i) => Math.abs(v - b[i]!) > 1e-3)).toBe(true);
  });

  it('refuses at registration a reconstruction whose output is not [rows, features]', async () => {
    const output = { name: 'scores', reconstructionError: 'mse' };
    const refused = register('ocsvm-poly', 'bad-recon', undefined, { output });
    await expect(refused).rejects.toMatchObject({ name: 'InvalidModel', field: 'output.reconstructionError' });
    await expect(refused).rejects.toThrow(/output scores is \[\?, 1\]; it must be a reconstruction \[rows, 7\]/);
  });

  it('reads a reconstruction flattened to [rows * k, 1] only from a Reshape to [-1, 1], and its rows in order', async () => {
    // skl2onnx's MLPRegressor: the same graph reshaped to [-1, 2] instead is neither [rows, 4] nor flattened.
    const model = onnx.ModelProto.decode(fixture('mlp-autoencoder', 'model.onnx'));
    const shape = model.graph!.initializer!.find((t) => t.name === 'shape_tensor')!;
    shape.rawData = new Uint8Array(new BigInt64Array([-1n, 2n]).buffer);
    shape.int64Data = [];
    await expect(
      register('mlp-autoencoder', 'mlp-halves', new Uint8Array(onnx.ModelProto.encode(model).finish())),
    ).rejects.toMatchObject({ name: 'InvalidModel', field: 'output.reconstructionError' });
    // Row r's error is computed over elements 4r to 4r + 3 of the flattened output: scoring the rows one at a
    // time gives the same scores as all at once.
    const entry = await register('mlp-autoencoder', 'mlp-rows');
    const prepared = await fast.prepare(store, 'mlp-rows', entry);
    const c = cases('mlp-autoencoder');
    const all = await scoreWith(prepared, new Float32Array(c.rows.flat()), c.rows.length);
    for (const [i, row] of c.rows.entries()) {
      expect(Array.from(await scoreWith(prepared, new Float32Array(row), 1))).toEqual([all[i]]);
    }
  });
});
