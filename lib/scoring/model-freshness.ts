/**
 * The answer must not depend on the worker: a warm worker holds model files in its caches (model.json by device,
 * sessions and stacked parameters by the bytes' sha256), so a model.onnx deleted or overwritten in the store after
 * it was cached would go unnoticed where a fresh worker fails the device. The check, per device a shard prepares:
 * the size, and ETag or modification time, of its model.json and model.onnx; a device whose files changed since
 * this worker last used them, or are gone, is forgotten by the caches, so they are read and verified again and
 * fail exactly as on a fresh worker. On S3 they come from one listing per shard of the part of `models/` that
 * holds its devices' files, started with the shard (a request lists 1,000 keys: the whole folder, every version of
 * every device, is 20 requests one after the other for 10,000 devices of one version each, 1.6 s against a MinIO
 * on the same machine, and each shard thread listed it before its first device); in the local store from a `stat`
 * of the device's two files (no folder walk, and no run waits for a listing of the whole fleet before its first
 * device).
 */
import { LruCache } from '../lru-cache';
import { keys } from '../shared/keys';
import type { ModelSessionCache } from '../models/model-sessions';
import type { WatchedModels } from './model-watches';
import { compareKeys, type ObjectStore, type StoredObject } from '../store/object-store';

/** The devices of one shard of a run, which share a listing where the store lists ranges. */
export interface FreshnessScope {
  runId: string;
  shard: number;
  devices: readonly { device: string; version: string }[];
}

/** Listings of the most recent shards (or runs) a worker keeps (it scores a few shards at once at most). */
const LISTINGS_KEPT = 16;
/** Model versions whose fingerprint a worker remembers; more than that are checked again (read) when next used. */
const FINGERPRINTS_KEPT = 500_000;

/** One worker's record of the model files its caches hold. */
export class ModelFreshness {
  private readonly listings = new LruCache<string, Promise<Map<string, string>>>(LISTINGS_KEPT);
  private readonly used = new LruCache<string, string>(FINGERPRINTS_KEPT);

  /**
   * `watches`: a shard thread's watched model files (model-watches.ts): a device whose files are watched and
   * unchanged is taken as such without a `stat`.
   */
  constructor(private readonly watches?: WatchedModels) {}

  /**
   * Whether the device's model files are, by a look that waits on nothing (the store's `statObjectsNow`), as this
   * worker last prepared them: true only then, and the caches may be used as they are (nothing is forgotten, or to
   * be recorded). False where the store has no such look, this worker has not prepared the device, or its files
   * changed: {@link check} then decides, as for any device.
   */
  unchangedNow(store: ObjectStore, device: string, version: string): boolean {
    if (!store.statObjectsNow) return false;
    const id = idOf(store, device, version);
    const known = this.used.get(id);
    if (known === undefined) return false;
    if (this.watches?.unchanged(id)) return true;
    const files = filesOf(device, version);
    const unchanged = fingerprintOf(printsOf(store.statObjectsNow(files))) === known;
    if (unchanged) this.watch(store, id, device, version, known);
    return unchanged;
  }

  /** Asks for a watch of the device's files, found as `fingerprint` just now, where the store is a local folder. */
  private watch(store: ObjectStore, id: string, device: string, version: string, fingerprint: string): void {
    if (store.localPath) this.watches?.watch(id, store.localPath(''), device, version, fingerprint);
  }

  /**
   * Resolves once every change to watched model files made before this call is known (a turn of the worker's event
   * loop): call before a shard prepares its devices. At once without watches.
   */
  settle(): Promise<void> {
    return this.watches?.settle() ?? Promise.resolve();
  }

  /** Asks for the watches of the devices read or found unchanged by `stat` since the last call (once a shard prepared). */
  flush(): void {
    this.watches?.flush();
  }

  /**
   * Makes `sessions` forget the device's model when its files are not as they were when this worker last scored
   * with them. Call before preparing the device. Returns the files' fingerprint when it is new to this worker (pass
   * it to {@link ModelFreshness.prepared} once the device was prepared), undefined when unchanged. A device this
   * worker has not prepared before, on a store whose reads see each file's size and time (the local store on a
   * shard thread), is not looked up first: its fingerprint is what preparing it reads (two `stat`s fewer per cold
   * device; the files as read, not as they were a moment before).
   */
  async check(
    store: ObjectStore,
    scope: FreshnessScope,
    device: string,
    version: string,
    sessions: ModelSessionCache,
  ): Promise<string | undefined> {
    const files = filesOf(device, version);
    const id = idOf(store, device, version);
    const known = this.used.get(id);
    if (known === undefined && store.takeReadStat) {
      // Records of earlier reads say nothing of this preparation's.
      for (const f of files) store.takeReadStat(f);
      sessions.forget(store, device, version);
      return FROM_READS;
    }
    let prints: (string | undefined)[];
    if (store.statObjects) {
      prints = printsOf(await store.statObjects(files));
    } else {
      const listing = await this.listing(store, scope);
      prints = files.map((f) => listing.get(f));
    }
    const fingerprint = fingerprintOf(prints);
    if (known === fingerprint) return undefined;
    this.used.delete(id);
    sessions.forget(store, device, version);
    return fingerprint;
  }

  /**
   * Starts the scope's listing now where {@link check} will need one (a store without `statObjects`), so that it
   * runs while the shard reads its window's parts and waits for its turn to prepare, not after.
   */
  prefetch(store: ObjectStore, scope: FreshnessScope): void {
    if (!store.statObjects) void this.listing(store, scope);
  }

  /**
   * Records that the device's model, with the fingerprint {@link ModelFreshness.check} returned, was prepared; a
   * fingerprint to be taken from the reads is taken now, with a `stat` of any file preparing did not read (the
   * model of a device without rows).
   */
  async prepared(store: ObjectStore, device: string, version: string, fingerprint: string): Promise<void> {
    let recorded = fingerprint;
    if (fingerprint === FROM_READS) {
      const files = filesOf(device, version);
      const read = files.map((f) => store.takeReadStat?.(f));
      const unread = files.filter((_, i) => !read[i]);
      const stats = unread.length > 0 && store.statObjects ? await store.statObjects(unread) : [];
      recorded = fingerprintOf(
        files.map((f, i) => {
          const o = read[i] ?? stats[unread.indexOf(f)];
          return o && print(o);
        }),
      );
    }
    const id = idOf(store, device, version);
    this.used.set(id, recorded);
    // Found as read just now: watched from the worker's next idle moment, so that the next run after a cold one
    // takes the device without a `stat` too (the watch is armed only if the files are still as read).
    this.watch(store, id, device, version, recorded);
  }

  /**
   * The model files' listing, key to fingerprint (S3): where the store lists ranges, the shard's, from the first of
   * its devices' files to the last in the store's key order, once per shard; otherwise all of `models/`, once per
   * run (and store) on this worker.
   */
  private listing(store: ObjectStore, scope: FreshnessScope): Promise<Map<string, string>> {
    const id = `${scope.runId}${store.listRange ? `/${scope.shard}` : ''}|${store.uri}`;
    let listing = this.listings.get(id);
    if (!listing) {
      const range = store.listRange && keyRange(scope);
      const objects = range
        ? store.listRange!(keys.modelsRoot(), range.first, range.last)
        : store.listObjects(keys.modelsRoot());
      listing = objects.then((found) => new Map(found.map((o) => [o.key, print(o)])));
      // A failed listing is not kept: the next shard (or the retry) lists again.
      listing.catch(() => this.listings.delete(id));
      this.listings.set(id, listing);
    }
    return listing;
  }
}

/** Stands for a fingerprint {@link ModelFreshness.prepared} takes from the files preparing read. */
const FROM_READS = 'from-reads';

/** A device's model version in one store: the key of what this worker records of it. */
function idOf(store: ObjectStore, device: string, version: string): string {
  return `${store.uri}|${device}|${version}`;
}

/** The model files whose fingerprint is the device's. */
function filesOf(device: string, version: string): string[] {
  return [keys.modelMeta(device, version), keys.modelOnnx(device, version)];
}

/** The first and the last of the scope's model files in the store's key order; undefined for no devices. */
function keyRange(scope: FreshnessScope): { first: string; last: string } | undefined {
  let first: string | undefined;
  let last: string | undefined;
  for (const { device, version } of scope.devices) {
    for (const f of filesOf(device, version)) {
      if (first === undefined || compareKeys(f, first) < 0) first = f;
      if (last === undefined || compareKeys(f, last) > 0) last = f;
    }
  }
  return first === undefined || last === undefined ? undefined : { first, last };
}

/** One string of the files' prints, `missing` for a file that is not there. */
export function fingerprintOf(prints: readonly (string | undefined)[]): string {
  return prints.map((p) => p ?? 'missing').join('|');
}

/** Each object's print, undefined where there is none. */
function printsOf(objects: readonly (StoredObject | undefined)[]): (string | undefined)[] {
  return objects.map((o) => o && print(o));
}

/** What changes when an object is written again: its size and ETag (S3), or size and modification time (local). */
export function print(o: StoredObject): string {
  return `${o.size}:${o.etag ?? o.lastModified.getTime()}`;
}
