/** A small valid model and its model.json as a user has them on disk, for tests of registration. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelMetaInput } from '../../lib/models/model-registry';
import { buildMahalanobisModel } from '../../lib/models/onnx-builder';

/** A Mahalanobis model over two features, mean 0 and identity precision. */
export const twoFeatureModel = buildMahalanobisModel({
  mean: [0, 0],
  precision: [
    [1, 0],
    [0, 1],
  ],
});

/** The model.json of {@link twoFeatureModel}. */
export const twoFeatureMeta: ModelMetaInput = {
  pool: 'cpu',
  features: ['a', 'b'],
  input: { name: 'X' },
  output: { name: 'score' },
  anomalyWhen: 'above',
  threshold: 9,
};

/** Writes `<root>/<device>/model.onnx` and `model.json` (with `patch` merged into the metadata). */
export async function writeModelFolder(root: string, device: string, patch: object = {}): Promise<void> {
  await mkdir(join(root, device), { recursive: true });
  await writeFile(join(root, device, 'model.onnx'), twoFeatureModel);
  await writeFile(join(root, device, 'model.json'), JSON.stringify({ ...twoFeatureMeta, ...patch }));
}
