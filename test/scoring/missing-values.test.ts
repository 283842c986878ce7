/**
 * A window whose rows hold NaN and null feature values (a sensor that reported nothing that minute): a model whose
 * model.json says `"missingValues": "model"` is given them as NaN and scored as its own onnxruntime session scores
 * them (LightGBM's and XGBoost's trees send NaN down their missing branch, a SimpleImputer's Imputer node fills them
 * in before a scaler and a one-class SVM, all on the compiled path); the same model without it fails that
 * device naming the file, field and row; and a model that cannot handle NaN (a one-class SVM) fails by its NaN
 * score instead of committing one.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onnx } from 'onnx-proto';
import { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-node';
import { decodePredictions, predictionRows } from '../../lib/arrow/predictions';
import { registerModel, type ModelMetaInput } from '../../lib/models/model-registry';
import { keys } from '../../lib/shared/keys';
import { parseWindow } from '../../lib/shared/window';
import { LocalStore } from '../../lib/store/local-store';
import { aggregatesPart, type PartRows } from '../support/aggregates-part';
import { runWindow } from '../support/run-window';
import { sklearnCases, sklearnFixture } from '../support/sklearn-cases';

jest.setTimeout(60_000);

const WINDOW = parseWindow('2026-11-21T11');

interface Meta extends Record<string, unknown> {
  features: string[];
  input: { name: string };
  output: { name: string; column: number };
  anomalyWhen: 'above' | 'below';
  threshold: number;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-missing-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const modelOf = (name: string) => new Uint8Array(sklearnFixture(name, 'model.onnx'));
const metaOf = (name: string): Meta => JSON.parse(sklearnFixture(name, 'model.json').toString('utf8')) as Meta;

/** The fixture's rows with a NaN or a null in some cells: null where `(row + column) % 7 === 0`, NaN at % 7 === 3. */
function holed(name: string): (number | null)[][] {
  return sklearnCases(name).rows.map((row, r) =>
    row.map((v, j) => ((r + j) % 7 === 0 ? null : (r + j) % 7 === 3 ? NaN : v)),
  );
}

/**
 * The ocsvm-pipeline fixture (StandardScaler, OneClassSVM) behind an Imputer as skl2onnx exports a SimpleImputer:
 * each column's NaN replaced by the column's mean over the fixture's rows.
 */
function withImputer(): Uint8Array {
  const model = onnx.ModelProto.decode(sklearnFixture('ocsvm-pipeline', 'model.onnx'));
  const graph = model.graph!;
  const input = graph.input![0]!.name!;
  for (const node of graph.node!) node.input = node.input!.map((i) => (i === input ? 'imputed' : i));
  const rows = sklearnCases('ocsvm-pipeline').rows;
  const means = rows[0]!.map((_, j) => rows.reduce((sum, r) => sum + r[j]!, 0) / rows.length);
  graph.node!.unshift({
    opType: 'Imputer',
    domain: 'ai.onnx.ml',
    input: [input],
    output: ['imputed'],
    attribute: [
      { name: 'imputed_value_floats', type: onnx.AttributeProto.AttributeType.FLOATS, floats: means },
      { name: 'replaced_value_float', type: onnx.AttributeProto.AttributeType.FLOAT, f: NaN },
    ],
  });
  return new Uint8Array(onnx.ModelProto.encode(model).finish());
}

/** The model's onnxruntime session's scores for `rows` (null as NaN): its score column, per row. */
async function sessionScores(
  name: string,
  rows: (number | null)[][],
  bytes: Uint8Array = modelOf(name),
): Promise<number[]> {
  const meta = metaOf(name);
  const session = await InferenceSession.create(bytes);
  try {
    const x = Float32Array.from(rows.flat(), (v) => v ?? NaN);
    const feeds = { [meta.input.name]: new OrtTensor('float32', x, [rows.length, meta.features.length]) };
    const out = (await session.run(feeds))[meta.output.name]!;
    const k = out.dims[1] ?? 1;
    return rows.map((_, r) => Number(out.data[r * k + meta.output.column]));
  } finally {
    await session.release();
  }
}

it('gives NaN and null values to a model that handles them; fails the device otherwise, by name', async () => {
  const store = new LocalStore(join(dir, 'store'));
  const imputing = withImputer();
  const devices = [
    { device: 'lgbm', fixture: 'lightgbm-classifier', missingValues: 'model', bytes: modelOf('lightgbm-classifier') },
    { device: 'xgb', fixture: 'xgboost-classifier', missingValues: 'model', bytes: modelOf('xgboost-classifier') },
    { device: 'imputer', fixture: 'ocsvm-pipeline', missingValues: 'model', bytes: imputing },
    {
      device: 'lgbm-strict',
      fixture: 'lightgbm-classifier',
      missingValues: undefined,
      bytes: modelOf('lightgbm-classifier'),
    },
    { device: 'ocsvm', fixture: 'ocsvm', missingValues: 'model', bytes: modelOf('ocsvm') },
  ] as const;
  const parts: PartRows = [];
  for (const d of devices) {
    const { schema: _s, sha256: _h, ...meta } = metaOf(d.fixture);
    const input = { ...meta, ...(d.missingValues ? { missingValues: d.missingValues } : {}) } as ModelMetaInput;
    await registerModel(store, {
      device: d.device,
      onnx: d.bytes,
      meta: input,
    });
    const rows = holed(d.fixture);
    parts.push({
      device: d.device,
      minutes: rows.map((_, i) => i),
      values: Object.fromEntries(meta.features.map((f, j) => [f, rows.map((r) => r[j]!)])),
    });
  }
  const columns = Object.fromEntries(metaOf('ocsvm').features.map((f) => [f, 'float' as const]));
  await store.put(keys.aggregatesPart(WINDOW.id, 0), aggregatesPart(WINDOW, parts, columns));

  const { manifest } = await runWindow(store, WINDOW.id);
  expect(manifest.counts).toMatchObject({ devices: 5, scored: 3, failed: 2 });
  expect(manifest.devices.lgbm).toMatchObject({ status: 'scored', path: 'compiled:tree-ensemble' });
  expect(manifest.devices.xgb).toMatchObject({ status: 'scored', path: 'compiled:tree-ensemble' });
  expect(manifest.devices.imputer).toMatchObject({ status: 'scored', path: 'compiled:svm' });
  // Refused at the first hole, named.
  const reason = (device: string) => {
    const outcome = manifest.devices[device];
    return outcome?.status === 'failed' ? outcome : undefined;
  };
  expect(reason('lgbm-strict')).toMatchObject({
    field: metaOf('lightgbm-classifier').features[0],
    file: keys.aggregatesPart(WINDOW.id, 0),
    reason: expect.stringMatching(/^InvalidAggregates: .*is null at 2026-11-21T11:00:00\.000Z/),
  });
  // A model that cannot handle NaN scores it NaN: the device fails rather than commit it.
  expect(reason('ocsvm')?.reason).toMatch(/^ModelOutputMismatch: .*is NaN for \d+ of 20 rows/);

  const committed = new Map<string, { score: number; isAnomaly: boolean }[]>();
  for (const shard of manifest.shards) {
    if (!shard.predictions) continue;
    for (const row of predictionRows(decodePredictions(await store.get(shard.predictions)))) {
      committed.set(row.device, [...(committed.get(row.device) ?? []), row]);
    }
  }
  for (const [device, fixture, bytes] of [
    ['lgbm', 'lightgbm-classifier', modelOf('lightgbm-classifier')],
    ['xgb', 'xgboost-classifier', modelOf('xgboost-classifier')],
    ['imputer', 'ocsvm-pipeline', imputing],
  ] as const) {
    const want = await sessionScores(fixture, holed(fixture), bytes);
    const meta = metaOf(fixture);
    const got = committed.get(device)!;
    expect(got.map((r) => r.score)).toEqual(want.map((s) => expect.closeTo(s, 6)));
    expect(got.map((r) => r.isAnomaly)).toEqual(
      want.map((s) => (meta.anomalyWhen === 'above' ? s > meta.threshold : s < meta.threshold)),
    );
  }
});
