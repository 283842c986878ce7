import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keys } from '../../lib/shared/keys';
import { registerModel, sha256Hex, type ModelMetaInput } from '../../lib/models/model-registry';
import { isAnomaly } from '../../lib/models/model-output';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import { buildMahalanobisModel } from '../../lib/models/onnx-builder';
import { LocalStore } from '../../lib/store/local-store';
import { ModelChecksumMismatch } from '../../lib/shared/errors';
import { twoFeatureMeta } from '../support/model-files';

const identity2 = [
  [1, 0],
  [0, 1],
];
const meta = twoFeatureMeta;

let dir: string;
let store: LocalStore;
let cache: ModelSessionCache;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-sessions-'));
  store = new LocalStore(dir);
  cache = new ModelSessionCache();
});
afterEach(async () => {
  await cache.close();
  await rm(dir, { recursive: true, force: true });
});

async function register(device: string, mean: number[], extra: Partial<ModelMetaInput> = {}) {
  const onnx = buildMahalanobisModel({ mean, precision: identity2 });
  return registerModel(store, { device, onnx, meta: { ...meta, ...extra } });
}

describe('ModelSessionCache', () => {
  it('loads a registered model and scores rows', async () => {
    const entry = await register('pump-1', [1, 2]);
    const model = await cache.load(store, 'pump-1', entry);
    expect(model.meta).toMatchObject({ device: 'pump-1', version: 'v0001', threshold: 9 });
    const scores = await model.score(new Float32Array([1, 2, 2, 2, 4, 6]), 3);
    expect(Array.from(scores)).toEqual([0, 1, 25]);
    expect(Array.from(scores, (s) => isAnomaly(model.meta, s))).toEqual([false, false, true]);
    expect(await model.score(new Float32Array(0), 0)).toHaveLength(0);
    await expect(model.score(new Float32Array(3), 2)).rejects.toThrow(RangeError);
  });

  it('detects model.onnx bytes that do not match the recorded sha256', async () => {
    const entry = await register('pump-1', [0, 0]);
    const other = buildMahalanobisModel({ mean: [5, 5], precision: identity2 });
    await store.put(keys.modelOnnx('pump-1', entry.version), other);
    const err = cache.load(store, 'pump-1', entry);
    await expect(err).rejects.toThrow(ModelChecksumMismatch);
    await expect(err).rejects.toMatchObject({
      device: 'pump-1',
      file: 'models/pump-1/v0001/model.onnx',
      field: 'sha256',
      expected: entry.sha256,
      actual: sha256Hex(other),
    });
    expect(cache.size).toBe(0);
  });

  it('detects an index entry whose sha256 disagrees with model.json', async () => {
    const entry = await register('pump-1', [0, 0]);
    const wrong = { version: entry.version, sha256: 'f'.repeat(64) };
    await expect(cache.load(store, 'pump-1', wrong)).rejects.toMatchObject({
      name: 'ModelChecksumMismatch',
      file: 'models/pump-1/v0001/model.json',
      recordedIn: 'models/index.json',
    });
  });

  it('applies standardize preprocessing to a copy of the rows', async () => {
    const entry = await register('pump-1', [0, 0], {
      preprocessing: { type: 'standardize', mean: [10, -4], scale: [2, 0.5] },
    });
    const model = await cache.load(store, 'pump-1', entry);
    const rows = new Float32Array([10, -4, 12, -3, 6, -4]);
    const scores = await model.score(rows, 3);
    // ((x - mean) / scale)² summed: [0, 0], [1, 2], [-2, 0].
    expect(Array.from(scores)).toEqual([0, 5, 4]);
    expect(Array.from(rows)).toEqual([10, -4, 12, -3, 6, -4]);
  });

  it('reuses the session on a cache hit and shares it between devices with the same bytes', async () => {
    const a = await register('pump-1', [0, 0]);
    const b = await register('pump-2', [0, 0]);
    expect(b.sha256).toBe(a.sha256);
    const first = await cache.load(store, 'pump-1', a);
    const again = await cache.load(store, 'pump-1', a);
    const other = await cache.load(store, 'pump-2', b);
    expect(cache.stats).toEqual({ hits: 2, misses: 1, evictions: 0 });
    expect(cache.size).toBe(1);
    expect(other.meta.device).toBe('pump-2');
    for (const m of [first, again, other]) expect(Array.from(await m.score(new Float32Array([3, 4]), 1))).toEqual([25]);
  });

  it('evicts the least recently used session and reloads it when an evicted model scores again', async () => {
    cache = new ModelSessionCache({ maxSessions: 2 });
    const a = await register('pump-a', [0, 0]);
    const b = await register('pump-b', [1, 1]);
    const c = await register('pump-c', [2, 2]);
    const modelA = await cache.load(store, 'pump-a', a);
    await cache.load(store, 'pump-b', b);
    await cache.load(store, 'pump-a', a); // a is now the most recently used
    await cache.load(store, 'pump-c', c); // evicts b
    expect(cache.size).toBe(2);
    expect(cache.stats).toEqual({ hits: 1, misses: 3, evictions: 1 });
    await cache.load(store, 'pump-b', b); // evicts a, now the least recently used
    expect(cache.stats).toEqual({ hits: 1, misses: 4, evictions: 2 });
    // modelA's session was released; scoring loads and verifies it again (evicting c).
    expect(Array.from(await modelA.score(new Float32Array([3, 4]), 1))).toEqual([25]);
    expect(cache.stats).toEqual({ hits: 1, misses: 5, evictions: 3 });
    expect(cache.size).toBe(2);
  });

  it('releases every session on close and stays usable', async () => {
    const a = await register('pump-1', [0, 0]);
    const model = await cache.load(store, 'pump-1', a);
    await cache.close();
    expect(cache.size).toBe(0);
    expect(Array.from(await model.score(new Float32Array([0, 1]), 1))).toEqual([1]);
    expect(cache.size).toBe(1);
  });

  it('scores concurrently while a session is evicted, releasing it only when idle', async () => {
    cache = new ModelSessionCache({ maxSessions: 1 });
    const a = await register('pump-a', [0, 0]);
    const b = await register('pump-b', [1, 1]);
    const modelA = await cache.load(store, 'pump-a', a);
    const rows = new Float32Array(20_000).fill(1);
    const running = modelA.score(rows, 10_000);
    await cache.load(store, 'pump-b', b); // evicts a while it may still be running
    const scores = await running;
    expect(scores).toHaveLength(10_000);
    expect(scores[0]).toBe(2);
  });
});

describe('ModelSessionCache.prepare and scoreStacked', () => {
  it('stacks recognised Mahalanobis models and scores them as their own sessions would', async () => {
    const a = await register('pump-1', [1, 2]);
    const b = await register('pump-2', [0, 0], { preprocessing: { type: 'standardize', mean: [1, 1], scale: [2, 2] } });
    const pa = await cache.prepare(store, 'pump-1', a);
    const pb = await cache.prepare(store, 'pump-2', b);
    expect([pa.kind, pb.kind]).toEqual(['stacked', 'stacked']);
    if (pa.kind !== 'stacked' || pb.kind !== 'stacked') return;
    const xa = new Float32Array([1, 2, 2, 2, 4, 6]);
    const xb = new Float32Array([1, 1, 5, 3]);
    const [sa, sb] = await cache.scoreStacked([
      { model: pa, x: xa, rows: 3 },
      { model: pb, x: xb, rows: 2 },
    ]);
    expect(Array.from(sa as Float32Array)).toEqual(
      Array.from(await (await cache.load(store, 'pump-1', a)).score(xa, 3)),
    );
    // Standardised first: (5-1)/2 = 2, (3-1)/2 = 1, so 2² + 1² = 5.
    expect(Array.from(sb as Float32Array)).toEqual([0, 5]);
  });

  it('takes a stacked model from the cache once prepared, and not after it was forgotten', async () => {
    const a = await register('pump-1', [1, 2]);
    expect(cache.prepareCached(store, 'pump-1', a)).toBeUndefined();
    const prepared = await cache.prepare(store, 'pump-1', a);
    expect(cache.prepareCached(store, 'pump-1', a)).toEqual(prepared);
    cache.forget(store, 'pump-1', a.version);
    expect(cache.prepareCached(store, 'pump-1', a)).toBeUndefined();
  });

  it('returns the same prepared model again while its parameters are held, and none for another version or once they were evicted', async () => {
    const small = new ModelSessionCache({ maxStackedModels: 1 });
    try {
      const a = await register('pump-1', [1, 2]);
      const b = await register('pump-2', [3, 4]);
      const prepared = await small.prepare(store, 'pump-1', a);
      const warm = small.prepareCached(store, 'pump-1', a);
      expect(warm).toEqual(prepared);
      expect(small.prepareCached(store, 'pump-1', a)).toBe(warm);
      expect(small.prepareCached(store, 'pump-1', { ...a, version: 'v0002' })).toBeUndefined();
      expect(small.prepareCached(store, 'pump-1', { ...a, sha256: b.sha256 })).toBeUndefined();
      // One parameter set held: pump-2's evicts pump-1's, whose prepared model is then not returned.
      await small.prepare(store, 'pump-2', b);
      expect(small.prepareCached(store, 'pump-1', a)).toBeUndefined();
      expect(await small.prepare(store, 'pump-1', a)).toEqual(prepared);
    } finally {
      await small.close();
    }
  });

  it('fails only the device whose stacked scores are not finite', async () => {
    const a = await register('pump-1', [0, 0]);
    const b = await register('pump-2', [0, 0]);
    const [pa, pb] = [await cache.prepare(store, 'pump-1', a), await cache.prepare(store, 'pump-2', b)];
    if (pa.kind !== 'stacked' || pb.kind !== 'stacked') throw new Error('expected stacked models');
    const [sa, sb] = await cache.scoreStacked([
      { model: pa, x: new Float32Array([1, 1]), rows: 1 },
      { model: pb, x: new Float32Array([NaN, 1]), rows: 1 },
    ]);
    expect(Array.from(sa as Float32Array)).toEqual([2]);
    expect(sb).toMatchObject({ name: 'ModelOutputMismatch', device: 'pump-2', field: 'output' });
  });

  it('gives other graphs, and every model when batching is off, a session of their own', async () => {
    const entry = await register('pump-1', [1, 2]);
    const unbatched = new ModelSessionCache({ batching: false });
    try {
      const prepared = await unbatched.prepare(store, 'pump-1', entry);
      expect(prepared.kind).toBe('session');
    } finally {
      await unbatched.close();
    }
  });
});

describe('isAnomaly', () => {
  it('compares strictly above or below the threshold', () => {
    expect(isAnomaly({ anomalyWhen: 'above', threshold: 1 }, 1.5)).toBe(true);
    expect(isAnomaly({ anomalyWhen: 'above', threshold: 1 }, 1)).toBe(false);
    expect(isAnomaly({ anomalyWhen: 'below', threshold: 0 }, -0.1)).toBe(true);
    expect(isAnomaly({ anomalyWhen: 'below', threshold: 0 }, 0)).toBe(false);
    expect(isAnomaly({ anomalyWhen: 'below', threshold: 0 }, Number.NaN)).toBe(false);
  });
});
