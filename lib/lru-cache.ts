/**
 * A map that forgets its least recently used entries once their total weight passes a limit. Each entry weighs 1
 * unless told otherwise, so by default the limit is a count; a cache of parsed files passes their byte sizes. Only
 * entries older than the one just written (or reweighed) make room, so a single entry larger than the limit is kept
 * until a later write. Reads refresh recency (a Map iterates in insertion order, so the first key is the oldest).
 */
export class LruCache<K, V> {
  private readonly entries = new Map<K, { value: V; weight: number }>();
  private total = 0;
  /**
   * The most recently used key, while it is held: reading it again moves nothing. A read moves its entry to the end
   * by deleting and setting it, which makes a small Map shrink and grow its table, and a large one rehash as the
   * deleted entries pile up: for a cache read mostly by one key (a kernel by its shape), that was an allocation of
   * hundreds of bytes a read.
   */
  private newest: K | undefined;

  constructor(
    /** The most total weight kept. */
    private readonly maxWeight: number,
    /** Called for every entry evicted to make room (not for `delete` or `clear`). */
    private readonly onEvict?: (key: K, value: V) => void,
  ) {
    if (!(maxWeight >= 0)) throw new RangeError(`maxWeight must be at least 0, got ${maxWeight}`);
  }

  /** Entries held now. */
  get size(): number {
    return this.entries.size;
  }

  /** The total weight held now (bytes, for a cache weighed in bytes). */
  get weight(): number {
    return this.total;
  }

  /** The value of `key`, made the most recently used; `undefined` when absent. */
  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (key !== this.newest) {
      this.entries.delete(key);
      this.entries.set(key, entry);
      this.newest = key;
    }
    return entry.value;
  }

  /** The value of `key` without touching its recency; `undefined` when absent. */
  peek(key: K): V | undefined {
    return this.entries.get(key)?.value;
  }

  /** Whether `key` is held, without touching its recency. */
  has(key: K): boolean {
    return this.entries.has(key);
  }

  /** The most total weight kept. */
  get limit(): number {
    return this.maxWeight;
  }

  /** The least recently used value, without touching its recency; `undefined` when empty. */
  oldest(): V | undefined {
    for (const entry of this.entries.values()) return entry.value;
    return undefined;
  }

  /** Stores `value` under `key` as the most recently used, then evicts the oldest others while over the limit. */
  set(key: K, value: V, weight = 1): void {
    this.remove(key);
    this.entries.set(key, { value, weight });
    this.newest = key;
    this.total += weight;
    this.evict(key);
  }

  /** Changes the weight of a held entry (e.g. once its size is known) without touching its recency. */
  reweigh(key: K, weight: number): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.total += weight - entry.weight;
    entry.weight = weight;
    this.evict(key);
  }

  /** Forgets `key`; whether it was held. */
  delete(key: K): boolean {
    return this.remove(key);
  }

  /** Forgets everything. */
  clear(): void {
    this.entries.clear();
    this.newest = undefined;
    this.total = 0;
  }

  /** The held values, least recently used first. */
  values(): V[] {
    return [...this.entries.values()].map((e) => e.value);
  }

  private remove(key: K): boolean {
    const entry = this.entries.get(key);
    if (!entry) return false;
    this.entries.delete(key);
    if (key === this.newest) this.newest = undefined;
    this.total -= entry.weight;
    return true;
  }

  private evict(keep: K): void {
    // Most writes are within the limit: no iterator made for them.
    if (this.total <= this.maxWeight) return;
    for (const [key, entry] of this.entries) {
      // Only entries older than the one just written or reweighed make room for it.
      if (this.total <= this.maxWeight || key === keep) return;
      this.entries.delete(key);
      this.total -= entry.weight;
      this.onEvict?.(key, entry.value);
    }
  }
}
