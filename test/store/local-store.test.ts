import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalStore, type LocalStoreOptions } from '../../lib/store/local-store';
import { describeStoreContract } from './store-contract';

const tempStore = async (
  options: LocalStoreOptions = {},
): Promise<{ dir: string; store: LocalStore; cleanup(): Promise<void> }> => {
  const dir = await mkdtemp(join(tmpdir(), 'fleetscore-local-store-'));
  return { dir, store: new LocalStore(dir, options), cleanup: () => rm(dir, { recursive: true, force: true }) };
};

describeStoreContract('LocalStore', tempStore);
// As a shard thread opens it: the same contract with synchronous reads.
describeStoreContract('LocalStore with blocking reads', () => tempStore({ blockingReads: true }));

describe('LocalStore', () => {
  it('reads a named pipe to its end with blocking reads, as a file whose size says nothing', async () => {
    const { dir, store, cleanup } = await tempStore({ blockingReads: true });
    try {
      const fifo = join(dir, 'pipe.bin');
      execFileSync('mkfifo', [fifo]);
      // Another process writes it: the read blocks this thread until that writer opens the pipe.
      const writer = spawn('sh', ['-c', `printf 'hello pipe' > '${fifo}'`]);
      const exited = new Promise((done) => writer.once('exit', done));
      expect(Buffer.from(await store.get('pipe.bin')).toString()).toBe('hello pipe');
      await exited;
    } finally {
      await cleanup();
    }
  });

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

  it('stats keys one by one as a listing would report them, undefined where there is no file', async () => {
    const { store, cleanup } = await tempStore();
    try {
      await store.put('m/a/model.json', '{}');
      await store.put('m/a/model.onnx', new Uint8Array(70));
      const stats = await store.statObjects(['m/a/model.onnx', 'm/b/model.onnx', 'm/a', 'm/a/model.json']);
      const [json, onnx] = await store.listObjects('m/a/');
      expect(stats).toEqual([onnx, undefined, undefined, json]);
      expect(stats[0]?.size).toBe(70);
      await expect(store.statObjects(['../x'])).rejects.toThrow(/key/);
    } finally {
      await cleanup();
    }
  });

  it('hands out what a synchronous read of a key found, once, as its stat reports it', async () => {
    const { dir, store, cleanup } = await tempStore({ blockingReads: true });
    try {
      await store.put('m/a/model.onnx', new Uint8Array(70));
      expect(store.takeReadStat('m/a/model.onnx')).toBeUndefined();
      await store.get('m/a/model.onnx');
      const [listed] = await store.statObjects(['m/a/model.onnx']);
      expect(store.takeReadStat('m/a/model.onnx')).toEqual(listed);
      expect(store.takeReadStat('m/a/model.onnx')).toBeUndefined();
      // An event loop's store reads asynchronously, without the file's stat: nothing is kept.
      const plain = new LocalStore(dir);
      await plain.get('m/a/model.onnx');
      expect(plain.takeReadStat('m/a/model.onnx')).toBeUndefined();
    } finally {
      await cleanup();
    }
  });
});
