/**
 * A worker's cache of parsed aggregate parts, and the one way to read a window's parts into `WindowAggregates`
 * (a part that fails as a whole is kept as such, so exactly the devices it may hold fail naming it).
 */
import { LruCache } from '../lru-cache';
import type { AggregatesLayout } from '../shared/names';
import type { ObjectStore } from '../store/object-store';
import type { Window } from '../shared/window';
import { refusedPartName } from './aggregate-parts';
import { listAggregateParts } from './window-input';
import { InvalidAggregates } from '../shared/errors';
import {
  partFromShared,
  readAggregatesPart,
  readSharedPart,
  type AggregatesPart,
  type SharedPart,
} from './aggregates-part';
import { WindowAggregates } from './window-aggregates';

type Entry = { part: AggregatesPart } | { error: InvalidAggregates };

/** What another thread of the worker has of a part: nothing yet (this thread reads it), the part, or its failure. */
export type ExchangedPart = { read: true } | { shared: SharedPart } | { error: InvalidAggregates };

/**
 * The worker's parts exchange, as a shard thread sees it (lib/scoring/part-exchange.ts): a part one thread read is
 * taken by the others, in shared memory, instead of each reading and parsing the whole window.
 */
export interface PartExchange {
  /** The part of id `id` from another thread, or `{ read: true }`: read it here, then say `parsed` or `released`. */
  want(id: string): Promise<ExchangedPart>;
  /** The part this thread read, for the others. */
  parsed(id: string, part: { shared: SharedPart } | { error: InvalidAggregates }): void;
  /** This thread could not read the part (a store error): another may try. */
  released(id: string): void;
}

/**
 * Bytes of parsed Arrow parts a worker's caches keep by default (shared out among its shard threads, each of which
 * holds the whole window, in memory shared with the others: part-exchange.ts): a 100,000-device window of 60 rows and
 * 7 float features is 281 MB of Arrow, about 330 MB held with its timestamps and runs (AggregatesPart.heldBytes), and
 * fits each of two threads' shares; with 1 GiB a worker at 100,000 forests peaked at 4,377 MB, with 768 MiB (and as
 * much for compiled programs) at 4,046 MB, each thread then holding its own copy (docs/benchmarks.md).
 */
export const DEFAULT_AGGREGATES_BYTES = 768 * 2 ** 20;

/**
 * A worker's cache of parsed aggregate parts, so the shards of one run read and parse each part once instead
 * of once per shard. Entries are keyed by run id, store and key: a re-run plans anew and reads the files
 * again. Bounded by the bytes of the parts it holds, least recently used first out.
 */
export class AggregatesCache {
  private readonly entries: LruCache<string, Promise<Entry>>;

  constructor(
    maxBytes = DEFAULT_AGGREGATES_BYTES,
    /** The worker's exchange of parts between its shard threads; none on the event loop and in tools. */
    private readonly exchange?: PartExchange,
  ) {
    this.entries = new LruCache(maxBytes);
  }

  /** The window's aggregates from `parts` (store keys pinned in the plan of run `runId`), read under `layout`. */
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
    if (hit) return hit;
    const loading = (async (): Promise<Entry> => {
      const refused = refusedPartName(key);
      if (refused !== undefined) return { error: new InvalidAggregates(refused, { file: key }) };
      const got = await this.exchange?.want(id);
      if (got && 'error' in got) return got;
      const part = got && 'shared' in got ? partFromShared(got.shared) : await this.read(store, key, id);
      if ('error' in part) return part;
      // Features converted to floats as devices ask for them add to what the part holds (weighed while this entry
      // is the one held: a part evicted and read again is another entry).
      part.onGrow = () => {
        if (this.entries.peek(id) === loading) this.entries.reweigh(id, part.heldBytes);
      };
      return { part };
    })();
    // Weighs nothing until its bytes are known.
    this.entries.set(id, loading, 0);
    loading.then(
      (e) => this.entries.reweigh(id, 'part' in e ? e.part.heldBytes : 0),
      // A store error is not cached: the next shard (or the retry) reads the file again.
      () => this.entries.delete(id),
    );
    return loading;
  }

  /** Reads and parses a part here (for the other threads too, with an exchange); its failure as a whole if it fails. */
  private async read(
    store: ObjectStore,
    key: string,
    id: string,
  ): Promise<AggregatesPart | { error: InvalidAggregates }> {
    const exchange = this.exchange;
    try {
      const bytes = await store.get(key);
      if (!exchange) return readAggregatesPart(key, bytes);
      const { part, shared } = readSharedPart(key, bytes);
      exchange.parsed(id, { shared });
      return part;
    } catch (err) {
      // A part that fails as a whole is remembered as such; WindowAggregates fails the devices that ask.
      if (err instanceof InvalidAggregates) {
        exchange?.parsed(id, { error: err });
        return { error: err };
      }
      exchange?.released(id);
      throw err;
    }
  }
}

/** Options of `loadWindowAggregates`. */
export interface LoadAggregatesOptions {
  /** Keep only parts that hold at least one of these devices (all parts when omitted). */
  devices?: ReadonlySet<string>;
}

/**
 * Reads every part of `window` from the store, once, without a worker's cache: for tests, the benchmark and tools.
 * A part that fails as a whole is kept in `failedParts`; store errors (network, permissions) throw.
 */
export async function loadWindowAggregates(
  store: ObjectStore,
  window: Window,
  { devices }: LoadAggregatesOptions = {},
): Promise<WindowAggregates> {
  const keys = await listAggregateParts(store, window);
  const all = await new AggregatesCache(0).window(store, window, keys, 'load');
  if (!devices) return all;
  const wanted = all.parts.filter((p) => p.devices.some((d) => devices.has(d)));
  return new WindowAggregates(window, wanted, all.failedParts);
}
