/**
 * The behaviour every `ObjectStore` must share, so the embedded default and S3 stay interchangeable: the same
 * suite runs against the local folder (unit) and a real S3 server (integration).
 */
import { randomBytes } from 'node:crypto';
import { type ObjectStore } from '../../lib/store/object-store';
import { InvalidKey, ObjectNotFound } from '../../lib/shared/errors';

/** A fresh, empty store for one test and how to dispose of it. */
export interface OpenedStore {
  store: ObjectStore;
  cleanup(): Promise<void>;
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8');

/** Registers the shared store tests under `describe(name)`; `open` is called once per test for an empty store. */
export function describeStoreContract(name: string, open: () => Promise<OpenedStore>): void {
  describe(`${name} (ObjectStore contract)`, () => {
    let opened: OpenedStore | undefined;
    let store: ObjectStore;

    beforeEach(async () => {
      opened = await open();
      store = opened.store;
    });

    afterEach(async () => {
      await opened?.cleanup();
      opened = undefined;
    });

    it('returns the exact bytes that were put', async () => {
      const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
      await store.put('models/dev-1/v1/model.onnx', bytes);
      const got = await store.get('models/dev-1/v1/model.onnx');
      expect(Object.prototype.toString.call(got)).toBe('[object Uint8Array]');
      expect(Buffer.from(got).equals(Buffer.from(bytes))).toBe(true);
    });

    it('stores strings as UTF-8', async () => {
      const s = '{"device":"pump-7","note":"héllo ✓ 🚀"}\n';
      await store.put('models/index.json', s);
      const got = await store.get('models/index.json');
      expect(got.byteLength).toBe(Buffer.byteLength(s));
      expect(text(got)).toBe(s);
      expect(text((await store.tryGet('models/index.json'))!)).toBe(s);
    });

    it('stores an empty object', async () => {
      await store.put('empty.txt', '');
      expect((await store.get('empty.txt')).byteLength).toBe(0);
    });

    it('replaces an object on overwrite, also with a shorter body', async () => {
      await store.put('a/b.json', 'first version, the longer one');
      await store.put('a/b.json', 'second');
      expect(text(await store.get('a/b.json'))).toBe('second');
      expect(await store.list('a/')).toEqual(['a/b.json']);
    });

    it('reads a missing key as undefined from tryGet and ObjectNotFound from get', async () => {
      await store.put('present.json', '1');
      await expect(store.tryGet('missing/key.json')).resolves.toBeUndefined();
      const err = await store.get('missing/key.json').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ObjectNotFound);
      expect(err).toMatchObject({ name: 'ObjectNotFound', key: 'missing/key.json', store: store.uri });
    });

    describe('conditional writes', () => {
      it('creates only when absent, and tells the loser', async () => {
        const first = await store.putIf('predictions/window=W/_manifest.json', 'run A', null);
        expect(first).toEqual(expect.any(String));
        await expect(store.putIf('predictions/window=W/_manifest.json', 'run B', null)).resolves.toBeUndefined();
        const read = await store.getVersioned('predictions/window=W/_manifest.json');
        expect(read && text(read.body)).toBe('run A');
        expect(read?.version).toBe(first);
      });

      it('replaces only the version that was read', async () => {
        await store.put('m.json', 'v1');
        const v1 = (await store.getVersioned('m.json'))!.version;
        const v2 = await store.putIf('m.json', 'v2', v1);
        expect(v2).toEqual(expect.any(String));
        expect(v2).not.toBe(v1);
        // A writer that read v1 has lost: nothing is written.
        await expect(store.putIf('m.json', 'v2 from a stale reader', v1)).resolves.toBeUndefined();
        expect(text(await store.get('m.json'))).toBe('v2');
        await expect(store.putIf('m.json', 'v3', null)).resolves.toBeUndefined();
        await expect(store.getVersioned('absent.json')).resolves.toBeUndefined();
      });

      it('lets exactly one of many racing writers win', async () => {
        await store.put('race.json', 'start');
        const { version } = (await store.getVersioned('race.json'))!;
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) => store.putIf('race.json', `writer ${i}`, version)),
        );
        const winners = results.flatMap((r, i) => (r === undefined ? [] : [i]));
        expect(winners).toHaveLength(1);
        expect(text(await store.get('race.json'))).toBe(`writer ${winners[0]}`);
        expect(await store.list('')).toEqual(['race.json']);
      });
    });

    it('writes nothing once the call is aborted', async () => {
      const aborted = AbortSignal.abort(new Error('attempt cancelled'));
      await expect(store.put('late/write.json', 'x', { signal: aborted })).rejects.toThrow();
      await expect(store.putIf('late/cas.json', 'x', null, { signal: aborted })).rejects.toThrow();
      await expect(store.get('late/write.json', { signal: aborted })).rejects.toThrow();
      expect(await store.list('late/')).toEqual([]);
    });

    describe('list', () => {
      beforeEach(async () => {
        // Written out of order: list must sort.
        for (const key of ['b/x.txt', 'a/e.txt', 'ab.txt', 'a/b/d.txt', 'a-z.txt', 'a/b/c.txt', 'a/bc.txt']) {
          await store.put(key, key);
        }
      });

      it('returns every key, sorted, for the empty prefix', async () => {
        expect(await store.list('')).toEqual([
          'a-z.txt',
          'a/b/c.txt',
          'a/b/d.txt',
          'a/bc.txt',
          'a/e.txt',
          'ab.txt',
          'b/x.txt',
        ]);
      });

      it('returns keys in nested folders under a folder prefix, and nothing beside it', async () => {
        expect(await store.list('a/')).toEqual(['a/b/c.txt', 'a/b/d.txt', 'a/bc.txt', 'a/e.txt']);
        expect(await store.list('a/b/')).toEqual(['a/b/c.txt', 'a/b/d.txt']);
        expect(await store.list('b/')).toEqual(['b/x.txt']);
      });

      it('matches a prefix that ends inside a name', async () => {
        expect(await store.list('a')).toEqual(['a-z.txt', 'a/b/c.txt', 'a/b/d.txt', 'a/bc.txt', 'a/e.txt', 'ab.txt']);
        expect(await store.list('a/b')).toEqual(['a/b/c.txt', 'a/b/d.txt', 'a/bc.txt']);
        expect(await store.list('a/b/c')).toEqual(['a/b/c.txt']);
        expect(await store.list('a/b/c.txt')).toEqual(['a/b/c.txt']);
      });

      it('returns nothing for an unknown prefix', async () => {
        expect(await store.list('zzz/')).toEqual([]);
        expect(await store.list('a/zzz')).toEqual([]);
        expect(await store.list('b/x.txt/')).toEqual([]);
      });
    });

    describe('listObjects', () => {
      it('lists what list lists, with each size and a last-modified time of when it was written', async () => {
        // Stores may keep whole seconds (S3's LastModified): compare with the second the writes began in.
        const start = Math.floor(Date.now() / 1000) * 1000;
        await store.put('r/b.bin', new Uint8Array(300));
        await store.put('r/a/x.json', '{"é":1}');
        await store.put('r/a/empty', '');
        await store.put('rr.txt', 'beside the prefix');
        const end = Date.now();
        const objects = await store.listObjects('r/');
        expect(objects.map((o) => o.key)).toEqual(await store.list('r/'));
        expect(objects.map(({ key, size }) => ({ key, size }))).toEqual([
          { key: 'r/a/empty', size: 0 },
          { key: 'r/a/x.json', size: Buffer.byteLength('{"é":1}') },
          { key: 'r/b.bin', size: 300 },
        ]);
        for (const { lastModified } of objects) {
          expect(Object.prototype.toString.call(lastModified)).toBe('[object Date]');
          expect(lastModified.getTime()).toBeGreaterThanOrEqual(start);
          // A little slack for a server clock (MinIO's is this machine's) that rounds up.
          expect(lastModified.getTime()).toBeLessThanOrEqual(end + 1000);
        }
        expect((await store.listObjects('')).map((o) => o.key)).toEqual(await store.list(''));
        expect(await store.listObjects('nothing/')).toEqual([]);
      });

      it('moves the last-modified time forward on overwrite and forgets deleted objects', async () => {
        await store.put('m/k.json', 'first');
        const [first] = await store.listObjects('m/');
        await new Promise((r) => setTimeout(r, 1100));
        await store.put('m/k.json', 'second, longer');
        const [second] = await store.listObjects('m/');
        expect(second?.size).toBe(Buffer.byteLength('second, longer'));
        expect(second!.lastModified.getTime()).toBeGreaterThan(first!.lastModified.getTime());
        await store.delete('m/k.json');
        expect(await store.listObjects('m/')).toEqual([]);
      });
    });

    it('deletes an object, and deleting a missing key succeeds', async () => {
      await store.put('d/one.txt', '1');
      await store.put('d/two.txt', '2');
      await store.delete('d/one.txt');
      await expect(store.tryGet('d/one.txt')).resolves.toBeUndefined();
      expect(await store.list('d/')).toEqual(['d/two.txt']);
      await expect(store.delete('d/one.txt')).resolves.toBeUndefined();
      await expect(store.delete('never/was.txt')).resolves.toBeUndefined();
      expect(text(await store.get('d/two.txt'))).toBe('2');
    });

    describe.each(['../x', '/abs', 'a//b', 'a/./b', 'a/../b', 'a\\b', '', 'a/b/', 'nul\0byte', '..', 'a/..', 'a/\nb'])(
      'rejects the invalid key %j',
      (key) => {
        it('in get, tryGet, put and delete', async () => {
          for (const call of [
            () => store.get(key),
            () => store.tryGet(key),
            () => store.put(key, 'x'),
            () => store.delete(key),
          ]) {
            const err = await call().then(
              () => undefined,
              (e: unknown) => e,
            );
            expect(err).toBeInstanceOf(InvalidKey);
            expect(err).toMatchObject({ name: 'InvalidKey', key });
          }
          expect(await store.list('')).toEqual([]);
        });
      },
    );

    it.each(['../', '/abs', 'a//', 'a/./', 'a\\'])('rejects the invalid list prefix %j', async (prefix) => {
      await expect(store.list(prefix)).rejects.toBeInstanceOf(InvalidKey);
      await expect(store.listObjects(prefix)).rejects.toBeInstanceOf(InvalidKey);
    });

    it('round-trips an object larger than 2 MB', async () => {
      const big = randomBytes(2 * 1024 * 1024 + 12_345);
      await store.put('aggregates/window=2026-11-21T12/part-00000.arrow', big);
      const got = await store.get('aggregates/window=2026-11-21T12/part-00000.arrow');
      expect(got.byteLength).toBe(big.byteLength);
      expect(Buffer.from(got).equals(big)).toBe(true);
    });

    it('keeps concurrent puts to different keys apart', async () => {
      const keys = Array.from({ length: 24 }, (_, i) => `c/shard-${String(i).padStart(5, '0')}.json`);
      await Promise.all(keys.map((key) => store.put(key, `body of ${key}`)));
      expect(await store.list('c/')).toEqual(keys);
      const bodies = await Promise.all(keys.map((key) => store.get(key)));
      expect(bodies.map(text)).toEqual(keys.map((key) => `body of ${key}`));
    });
  });
}
