/** Reading a model's ONNX bytes from the store only when they are the bytes the index names. */
import { keys } from '../shared/keys';
import { ModelChecksumMismatch, ModelNotFound } from '../shared/errors';
import type { ObjectStore } from '../store/object-store';
import { sha256Hex } from './model-registry';

/** The model's bytes, verified against the sha256 the index and model.json record. */
export async function readVerifiedModel(
  store: ObjectStore,
  device: string,
  version: string,
  sha256: string,
): Promise<Uint8Array> {
  const file = keys.modelOnnx(device, version);
  const bytes = await store.tryGet(file);
  if (bytes === undefined) throw new ModelNotFound(device, file);
  const actual = sha256Hex(bytes);
  if (actual !== sha256) {
    const recordedIn = `${keys.modelIndex()} and ${keys.modelMeta(device, version)}`;
    throw new ModelChecksumMismatch(device, file, sha256, actual, recordedIn);
  }
  return bytes;
}
