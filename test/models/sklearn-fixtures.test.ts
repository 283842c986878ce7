/**
 * scikit-learn models converted by skl2onnx (scripts/make-sklearn-fixtures.py) go through registration and the
 * session cache unchanged and reproduce scikit-learn's decision_function and predict.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerModelPackage } from '../../lib/models/model-package';
import { registerModel, type ModelMetaInput } from '../../lib/models/model-registry';
import { isAnomaly } from '../../lib/models/model-output';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import type { LoadedModel } from '../../lib/models/onnx-session-pool';
import { LocalStore } from '../../lib/store/local-store';
import { sklearnCases, sklearnFixture, type SklearnCases } from '../support/sklearn-cases';

const fixture = sklearnFixture;
const cases = sklearnCases;

let dir: string;
let store: LocalStore;
const cache = new ModelSessionCache();
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-sklearn-'));
  store = new LocalStore(dir);
});
afterEach(() => rm(dir, { recursive: true, force: true }));
afterAll(() => cache.close());

async function expectReproducesSklearn(model: LoadedModel, c: SklearnCases): Promise<void> {
  expect(model.meta.features).toEqual(c.features);
  const k = c.features.length;
  const scores = await model.score(new Float32Array(c.rows.flat()), c.rows.length);
  expect(scores).toHaveLength(c.rows.length);
  c.decisionFunction.forEach((expected, i) => {
    const got = scores[i]!;
    expect(Math.abs(got - expected)).toBeLessThanOrEqual(1e-4 + 1e-4 * Math.abs(expected));
  });
  expect(Array.from(scores, (s) => (isAnomaly(model.meta, s) ? -1 : 1))).toEqual(c.predict);
  // Both labels occur, so the comparison above means something.
  expect(new Set(c.predict)).toEqual(new Set([1, -1]));
  expect(c.rows.every((r) => r.length === k)).toBe(true);
}

describe('scikit-learn fixtures', () => {
  it('OneClassSVM (rbf, standardized in model.json) reproduces decision_function and predict', async () => {
    // registerModel takes model.json without the fields registration assigns or computes.
    const packaged = JSON.parse(fixture('ocsvm', 'model.json').toString('utf8')) as Record<string, unknown>;
    const { schema: _schema, sha256: _sha256, ...meta } = packaged;
    const entry = await registerModel(store, {
      device: 'ocsvm-1',
      onnx: new Uint8Array(fixture('ocsvm', 'model.onnx')),
      meta: meta as ModelMetaInput,
    });
    const model = await cache.load(store, 'ocsvm-1', entry);
    expect(model.meta.preprocessing.type).toBe('standardize');
    await expectReproducesSklearn(model, cases('ocsvm'));
  });

  it('IsolationForest from a model.tar.gz package reproduces decision_function and predict', async () => {
    const pkg = new Uint8Array(fixture('isoforest.tar.gz'));
    const entry = await registerModelPackage(store, 'iso-1', pkg, 'isoforest.tar.gz');
    const model = await cache.load(store, 'iso-1', entry);
    expect(model.meta.output).toEqual({ name: 'scores', column: 0 });
    await expectReproducesSklearn(model, cases('isoforest'));
  });

  it('IsolationForest as a bare .onnx with its model.json registers to the same bytes', async () => {
    const meta = JSON.parse(fixture('isoforest', 'model.json').toString('utf8')) as unknown;
    const onnx = new Uint8Array(fixture('isoforest', 'model.onnx'));
    const bare = await registerModelPackage(store, 'iso-2', onnx, 'model.onnx', { meta });
    const pkg = new Uint8Array(fixture('isoforest.tar.gz'));
    const packaged = await registerModelPackage(store, 'iso-3', pkg, 'isoforest.tar.gz');
    expect(bare.sha256).toBe(packaged.sha256);
    await expectReproducesSklearn(await cache.load(store, 'iso-2', bare), cases('isoforest'));
  });
});
