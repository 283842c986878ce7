import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalStore } from '../../lib/store/local-store';
import { describeStoreContract } from './store-contract';

const tempStore = async (): Promise<{ dir: string; store: LocalStore; cleanup(): Promise<void> }> => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetscore-local-store-'));
  return { dir, store: new LocalStore(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
};

describeStoreContract('LocalStore', tempStore);

describe('LocalStore', () => {
  it('names its folder as a file:// URI', async () => {
    const { dir, store, cleanup } = await tempStore();
    try {
      expect(store.uri).toBe(pathToFileURL(dir).href);
    } finally {
      await cleanup();
    }
  });

  it('lays keys out as folders and leaves no temporary files behind', async () => {
    const { dir, store, cleanup } = await tempStore();
    try {
      await Promise.all([store.put('p/w/one.json', '1'), store.put('p/w/one.json', '2'), store.put('p/two.json', '3')]);
      expect((await readdir(join(dir, 'p', 'w'))).sort()).toEqual(['one.json']);
      expect((await readdir(join(dir, 'p'))).sort()).toEqual(['two.json', 'w']);
    } finally {
      await cleanup();
    }
  });
});
