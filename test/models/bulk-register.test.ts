import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keys } from '../../lib/shared/keys';
import { registerModels } from '../../lib/models/bulk-register';
import { readIndex } from '../../lib/models/model-index';
import { sha256Hex } from '../../lib/models/model-registry';
import { modelsInFolder, modelsInList } from '../../lib/models/model-sources';
import { InvalidModelSource } from '../../lib/shared/errors';
import { LocalStore } from '../../lib/store/local-store';
import { twoFeatureMeta, twoFeatureModel, writeModelFolder } from '../support/model-files';

/** A local store that counts writes of models/index.json. */
class CountingStore extends LocalStore {
  indexWrites = 0;
  override put(key: string, body: Uint8Array | string): Promise<void> {
    if (key === keys.modelIndex()) this.indexWrites++;
    return super.put(key, body);
  }
}

let dir: string;
let store: CountingStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-bulk-'));
  store = new CountingStore(join(dir, 'store'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('registerModels', () => {
  it('writes every version, then moves the index once for the whole fleet', async () => {
    const root = join(dir, 'models');
    const devices = Array.from({ length: 40 }, (_, i) => `pump-${String(i).padStart(3, '0')}`);
    for (const d of devices) await writeModelFolder(root, d, d === 'pump-007' ? { pool: 'gpu' } : {});
    const progress: number[] = [];
    const result = await registerModels(store, await modelsInFolder(root), {
      concurrency: 4,
      onProgress: (done) => progress.push(done),
    });
    expect(result.failed).toEqual([]);
    expect(result.indexMoved).toBe(true);
    expect(store.indexWrites).toBe(1);
    expect(progress).toHaveLength(40);
    // Not told how to decide a model's path, it says none.
    expect(result.paths).toBeUndefined();
    const index = await readIndex(store);
    expect(Object.keys(index.devices).sort()).toEqual(devices);
    expect(index.devices['pump-007']).toEqual({ version: 'v0001', pool: 'gpu', sha256: sha256Hex(twoFeatureModel) });

    // A second bulk registration writes the next version of each device.
    // Told how, it decides it once for 40 models of one kind of graph.
    const decided: number[] = [];
    const again = await registerModels(store, await modelsInFolder(root), {
      pathOf: async (_device, onnx) => (decided.push(onnx.length), { path: 'stacked-mahalanobis' }),
    });
    expect(new Set(again.registered.map((r) => r.version))).toEqual(new Set(['v0002']));
    expect(decided).toHaveLength(1);
    expect(again.paths).toEqual({ counts: { 'stacked-mahalanobis': 40 }, sessions: [] });
    expect(store.indexWrites).toBe(2);
  });

  it('moves nothing when one model is bad, naming its device and field; --partial moves the good ones', async () => {
    const root = join(dir, 'models');
    await writeModelFolder(root, 'pump-1');
    await writeModelFolder(root, 'pump-2', { preprocesing: { type: 'none' } });
    await writeModelFolder(root, 'pump-3');
    const result = await registerModels(store, await modelsInFolder(root));
    expect(result.indexMoved).toBe(false);
    expect(store.indexWrites).toBe(0);
    expect(result.registered.map((r) => r.device).sort()).toEqual(['pump-1', 'pump-3']);
    expect(result.failed).toEqual([
      expect.objectContaining({ device: 'pump-2', source: join(root, 'pump-2'), field: 'preprocesing' }),
    ]);
    expect(result.failed[0]!.reason).toMatch(/model\.json: preprocesing: unknown key "preprocesing".*"preprocessing"/);
    expect(await store.tryGet(keys.modelIndex())).toBeUndefined();

    const partial = await registerModels(store, await modelsInFolder(root), { partial: true });
    expect(partial.indexMoved).toBe(true);
    // The versions of the first try stay unreferenced; the index points at the second try's.
    expect((await readIndex(store)).devices).toEqual({
      'pump-1': expect.objectContaining({ version: 'v0002' }),
      'pump-3': expect.objectContaining({ version: 'v0002' }),
    });
  });

  it('refuses a device given twice, and a model whose files cannot be read, and lets a store error through', async () => {
    const root = join(dir, 'models');
    await writeModelFolder(root, 'pump-1');
    await writeFile(join(dir, 'list.csv'), 'pump-1,models/pump-1\npump-1,models/pump-1\npump-2,missing.onnx,m.json\n');
    const result = await registerModels(store, await modelsInList(join(dir, 'list.csv')));
    expect(result.failed.map((f) => f.device).sort()).toEqual(['pump-1', 'pump-1', 'pump-2']);
    expect(result.failed.find((f) => f.device === 'pump-2')!.reason).toMatch(/ENOENT.*missing\.onnx|m\.json/);
    expect(result.indexMoved).toBe(false);

    const broken = new (class extends LocalStore {
      override put(): Promise<void> {
        return Promise.reject(new Error('store down'));
      }
    })(join(dir, 'store'));
    await expect(registerModels(broken, await modelsInFolder(root))).rejects.toThrow('store down');
  });
});

describe('model sources', () => {
  it('reads a list of packages, bare .onnx files with their model.json, and folders, relative to the list', async () => {
    await writeModelFolder(join(dir, 'a'), 'pump-1');
    await writeFile(join(dir, 'a', 'bare.onnx'), twoFeatureModel);
    await writeFile(join(dir, 'a', 'bare.json'), JSON.stringify(twoFeatureMeta));
    const list = ['device,file,meta', '# a comment', '', 'pump-1,a/pump-1', 'pump-2, a/bare.onnx, a/bare.json'];
    await writeFile(join(dir, 'list.csv'), list.join('\n'));
    const sources = await modelsInList(join(dir, 'list.csv'));
    expect(sources.map((s) => s.device)).toEqual(['pump-1', 'pump-2']);
    const result = await registerModels(store, sources);
    expect(result.registered.map((r) => r.device).sort()).toEqual(['pump-1', 'pump-2']);
  });

  it('refuses folder entries and list lines that are not models, by name', async () => {
    const root = join(dir, 'models');
    await writeModelFolder(root, 'pump-1');
    await writeFile(join(root, 'notes.txt'), 'hi');
    await writeFile(join(root, '.DS_Store'), '');
    const err = await modelsInFolder(root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidModelSource);
    expect((err as Error).message).toMatch(/not a model: notes\.txt \(expected/);

    await writeFile(join(dir, 'list.csv'), 'pump-1,a.onnx\npump-2\n');
    await expect(modelsInList(join(dir, 'list.csv'))).rejects.toThrow(
      /list\.csv: line 2: expected device,file\[,meta\]/,
    );
  });
});
