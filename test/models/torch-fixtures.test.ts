/**
 * Autoencoders exported by PyTorch 2.15 (scripts/make-torch-fixtures.py), registered from their folders as torch
 * wrote them: the default exporter's weights in model.onnx.data included. Both exports take the compiled fast path
 * (LayerNormalization, Gelu or its Erf arithmetic, BatchNormalization, LeakyRelu) and reproduce torch's
 * reconstruction error through it and through their own onnxruntime session.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registerModels } from '../../lib/models/bulk-register';
import { readIndex } from '../../lib/models/model-index';
import { readModelUpload } from '../../lib/models/model-package';
import { isAnomaly } from '../../lib/models/model-output';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { modelsInFolder } from '../../lib/models/model-sources';
import { InvalidModel } from '../../lib/shared/errors';
import { keys } from '../../lib/shared/keys';
import { LocalStore } from '../../lib/store/local-store';
import { scoreWith } from '../support/score-prepared';
import type { SklearnCases } from '../support/sklearn-cases';

const FIXTURES = join(__dirname, '..', 'fixtures', 'torch');
const EXPORTS = ['autoencoder-dynamo', 'autoencoder-torchscript'];

let dir: string;
let store: LocalStore;
const fast = new ModelSessionCache();
const sessions = new ModelSessionCache({ batching: false });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-torch-'));
  store = new LocalStore(dir);
  const result = await registerModels(store, await modelsInFolder(FIXTURES));
  expect(result.failed).toEqual([]);
});
afterAll(async () => {
  await Promise.all([fast.close(), sessions.close()]);
  await rm(dir, { recursive: true, force: true });
});

const cases = async (name: string) =>
  JSON.parse(await readFile(join(FIXTURES, name, 'cases.json'), 'utf8')) as SklearnCases;

it.each(EXPORTS)('%s takes compiled:mlp and matches torch and its onnxruntime session', async (name) => {
  const entry = (await readIndex(store)).devices[name]!;
  const c = await cases(name);
  const x = new Float32Array(c.rows.flat());
  const model = await fast.prepare(store, name, entry);
  expect(model.path).toBe('compiled:mlp');
  const got = await scoreWith(model, x, c.rows.length);
  const viaSession = await sessions.prepare(store, name, entry);
  expect(viaSession.path).toBe('session');
  const reference = await scoreWith(viaSession, x, c.rows.length);
  got.forEach((s, i) => {
    expect(Math.abs(s - reference[i]!)).toBeLessThanOrEqual(1e-5 + 1e-5 * Math.abs(reference[i]!));
    const torch = c.decisionFunction[i]!;
    expect(Math.abs(s - torch)).toBeLessThanOrEqual(1e-5 + 1e-5 * Math.abs(torch));
  });
  expect(Array.from(got, (s) => (isAnomaly(model.meta, s) ? -1 : 1))).toEqual(c.predict);
  expect(new Set(c.predict)).toEqual(new Set([1, -1]));
});

it('stores the default export with its external data inside: one self-contained model.onnx', async () => {
  const folder = join(FIXTURES, 'autoencoder-dynamo');
  const [onnx, data, meta] = await Promise.all(
    ['model.onnx', 'model.onnx.data', 'model.json'].map((f) => readFile(join(folder, f))),
  );
  const entry = (await readIndex(store)).devices['autoencoder-dynamo']!;
  const stored = await store.get(keys.modelOnnx('autoencoder-dynamo', entry.version));
  expect(stored.length).toBeGreaterThan(onnx!.length);
  expect(Buffer.from(stored).includes(data!.subarray(0, 64))).toBe(true);
  expect(Buffer.from(stored).includes(data!.subarray(-64))).toBe(true);
  expect(Buffer.from(onnx!).includes('model.onnx.data')).toBe(true);
  expect(Buffer.from(stored).includes('model.onnx.data')).toBe(false);
  // model.onnx alone names a file it cannot read: refused, saying which tensor and file.
  const alone = readModelUpload('pump-1', new Uint8Array(onnx!), 'model.onnx', {
    meta: JSON.parse(meta!.toString('utf8')) as unknown,
  });
  await expect(alone).rejects.toBeInstanceOf(InvalidModel);
  await expect(alone).rejects.toThrow(
    /model\.onnx: tensor ".+": external data "model\.onnx\.data" cannot be read here/,
  );
});
