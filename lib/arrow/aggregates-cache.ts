import { readAggregatesPart, WindowAggregates, type AggregatesPart } from './aggregates';
import type { AggregatesLayout } from '../shared/names';
import type { ObjectStore } from '../store/object-store';
import type { Window } from '../shared/window';
import { InvalidAggregates } from '../shared/errors';

type Entry = { part: AggregatesPart; bytes: number } | { error: InvalidAggregates; bytes: number };

/**
 * A worker's cache of parsed aggregate parts, so the shards of one run read and parse each part once instead
 * of once per shard. Entries are keyed by run id, store and key: a re-run plans anew and reads the files
 * again. Bounded by the bytes of the parts it holds, least recently used first out.
 */
export class AggregatesCache {
  private readonly entries = new Map<string, Promise<Entry>>();
  private readonly sizes = new Map<string, number>();
  private total = 0;

  constructor(private readonly maxBytes = 1024 * 1024 * 1024) {}

  /** The window's aggregates from `parts` (store keys pinned in the plan `runId`), read under `layout`. */
  async window(
    store: ObjectStore,
    window: Window,
    parts: readonly string[],
    runId: string,
    layout: AggregatesLayout = 'any',
  ): Promise<WindowAggregates> {
    const entries = await Promise.all(parts.map((key) => this.part(store, key, runId)));
    const ok: AggregatesPart[] = [];
    const failed: InvalidAggregates[] = [];
    for (const e of entries) {
      if ('part' in e) ok.push(e.part);
      else failed.push(e.error);
    }
    return new WindowAggregates(window, ok, failed, layout);
  }

  private part(store: ObjectStore, key: string, runId: string): Promise<Entry> {
    const id = `${runId}\n${store.uri}\n${key}`;
    const hit = this.entries.get(id);
    if (hit) {
      // Refresh recency: Map iteration order is insertion order.
      this.entries.delete(id);
      this.entries.set(id, hit);
      return hit;
    }
    const loading = (async (): Promise<Entry> => {
      const bytes = await store.get(key);
      try {
        return { part: readAggregatesPart(key, bytes), bytes: bytes.byteLength };
      } catch (err) {
        // A part that fails as a whole is remembered as such; WindowAggregates fails the devices that ask.
        if (err instanceof InvalidAggregates) return { error: err, bytes: 0 };
        throw err;
      }
    })();
    this.entries.set(id, loading);
    loading.then(
      (e) => this.account(id, e.bytes),
      // A store error is not cached: the next shard (or the retry) reads the file again.
      () => this.entries.delete(id),
    );
    return loading;
  }

  private account(id: string, bytes: number): void {
    if (!this.entries.has(id)) return;
    this.sizes.set(id, bytes);
    this.total += bytes;
    for (const oldest of this.entries.keys()) {
      if (this.total <= this.maxBytes || oldest === id) break;
      this.entries.delete(oldest);
      this.total -= this.sizes.get(oldest) ?? 0;
      this.sizes.delete(oldest);
    }
  }
}
