import { LruCache } from '../lib/lru-cache';

describe('LruCache', () => {
  it('evicts the least recently used entries past the limit, reads refreshing recency', () => {
    const evicted: string[] = [];
    const cache = new LruCache<string, number>(2, (key) => evicted.push(key));
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.get('a')).toBe(1);
    cache.set('c', 3);
    expect(evicted).toEqual(['b']);
    expect([cache.has('a'), cache.has('b'), cache.has('c')]).toEqual([true, false, true]);
    expect(cache.values()).toEqual([1, 3]);
  });

  it('peeks at a value without refreshing its recency', () => {
    const evicted: string[] = [];
    const cache = new LruCache<string, number>(2, (key) => evicted.push(key));
    cache.set('a', 1);
    cache.set('b', 2);
    expect([cache.peek('a'), cache.peek('z')]).toEqual([1, undefined]);
    cache.set('c', 3);
    expect(evicted).toEqual(['a']);
  });

  it('bounds the total weight, keeps an entry just written even when it alone is over, and reweighs', () => {
    const cache = new LruCache<string, string>(10);
    cache.set('small', 's', 4);
    cache.set('big', 'b', 20);
    expect([cache.has('small'), cache.has('big')]).toEqual([false, true]);
    cache.set('next', 'n', 1);
    expect(cache.has('big')).toBe(false);

    const sized = new LruCache<string, string>(10);
    sized.set('old', 'o', 5);
    sized.set('loading', 'l', 0);
    sized.set('newer', 'n', 0);
    sized.reweigh('loading', 8);
    // Only entries older than the reweighed one make room for it.
    expect([sized.has('old'), sized.has('loading'), sized.has('newer')]).toEqual([false, true, true]);
  });

  it('forgets on delete and clear without calling onEvict', () => {
    const evicted: string[] = [];
    const cache = new LruCache<string, number>(5, (key) => evicted.push(key));
    cache.set('a', 1);
    cache.set('b', 2);
    expect(cache.delete('a')).toBe(true);
    expect(cache.delete('a')).toBe(false);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(evicted).toEqual([]);
  });

  it('agrees with a plain list model over a long mix of reads, writes, reweighs, peeks, deletes and clears', () => {
    // The model: entries oldest first, evicting from the front past the limit (never the entry written or reweighed,
    // nor any newer one).
    type Entry = { key: number; value: number; weight: number };
    let model: Entry[] = [];
    const limit = 8;
    const evicted: number[] = [];
    const modelEvicted: number[] = [];
    const modelWeight = () => model.reduce((sum, e) => sum + e.weight, 0);
    const evictBefore = (keep: number) => {
      let total = modelWeight();
      while (total > limit && model[0] && model[0].key !== keep) {
        const victim = model.shift()!;
        total -= victim.weight;
        modelEvicted.push(victim.key);
      }
    };
    const cache = new LruCache<number, number>(limit, (key) => evicted.push(key));
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let step = 0; step < 5_000; step++) {
      const key = rand(10);
      const at = model.findIndex((e) => e.key === key);
      switch (rand(6)) {
        case 0:
        case 1: {
          const entry = at >= 0 ? model.splice(at, 1)[0] : undefined;
          if (entry) model.push(entry);
          expect(cache.get(key)).toBe(entry?.value);
          break;
        }
        case 2: {
          if (at >= 0) model.splice(at, 1);
          const weight = rand(5);
          model.push({ key, value: step, weight });
          cache.set(key, step, weight);
          evictBefore(key);
          break;
        }
        case 3: {
          const weight = rand(7);
          if (at >= 0) {
            model[at]!.weight = weight;
            evictBefore(key);
          }
          cache.reweigh(key, weight);
          break;
        }
        case 4:
          if (at >= 0) model.splice(at, 1);
          expect(cache.delete(key)).toBe(at >= 0);
          break;
        default:
          expect(cache.peek(key)).toBe(at >= 0 ? model[at]!.value : undefined);
          if (rand(50) === 0) {
            model = [];
            cache.clear();
          }
      }
      expect(cache.values()).toEqual(model.map((e) => e.value));
      expect(cache.oldest()).toBe(model[0]?.value);
      expect([cache.size, cache.weight]).toEqual([model.length, modelWeight()]);
    }
    expect(evicted).toEqual(modelEvicted);
    expect(evicted.length).toBeGreaterThan(100);
  });
});
