/** A registered model given to another device in a store, for tests that need more devices than the demo seeds. */
import { readIndex } from '../../lib/models/model-index';
import { keys } from '../../lib/shared/keys';
import type { ObjectStore } from '../../lib/store/object-store';

/** Copies `from`'s model v0001 to `device`: the same bytes, its own index entry and model.json. */
export async function copyModel(store: ObjectStore, device: string, from = 'dev-00001'): Promise<void> {
  await store.put(keys.modelOnnx(device, 'v0001'), await store.get(keys.modelOnnx(from, 'v0001')));
  const meta = JSON.parse(Buffer.from(await store.get(keys.modelMeta(from, 'v0001'))).toString()) as object;
  await store.put(keys.modelMeta(device, 'v0001'), JSON.stringify({ ...meta, device }));
  const index = await readIndex(store);
  index.devices[device] = { ...index.devices[from]! };
  await store.put(keys.modelIndex(), JSON.stringify(index));
}
