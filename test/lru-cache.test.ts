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
});
