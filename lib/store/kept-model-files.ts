/**
 * Model files of an S3 store kept on the worker's host, so that a restarted worker, another worker process on the
 * same host (the autoscaler's) or another shard thread reads a device's model.json and model.onnx from the host's
 * disk instead of two GETs (about 0.8 ms of the worker's CPU each in the AWS SDK, and a round trip: a cold
 * 10,000-device run took 26.6 s on S3 against 2.6 s from a local folder, docs/benchmarks.md).
 *
 * A kept copy is used only where it is what a fresh worker would read: the freshness check lists the model files of
 * every shard before the shard reads any (lib/scoring/model-freshness.ts), and a copy is read only when the latest
 * listing that covers its key, less than an hour old, has the object with the size and ETag the copy was kept
 * with. A model.onnx replaced or deleted in the store therefore fails the device as on a fresh worker; a key that no
 * listing covers, or one listed without an ETag, is read from the store. What is kept is what a GET returned with
 * the listed ETag, under a file named by the store, the key, the ETag and the size; files are checksummed, renamed
 * into place whole and swept once not read for a week, or past the folder's bytes (lib/kept-files.ts). Only a model
 * version's own files (`models/<device>/<version>/...`) are kept: the index, which changes, is always read from the
 * store.
 */
import { KeptFiles, sweepKeptFiles, type SweepResult } from '../kept-files';
import { messageOf, ObjectNotFound } from '../shared/errors';
import { keys } from '../shared/keys';
import type { ModelFileReads } from '../shared/run-types';
import {
  compareKeys,
  type CallOptions,
  type ObjectStore,
  type StoredObject,
  type VersionedObject,
} from './object-store';

/** Listings remembered: the shards a worker thread has scored lately (it holds two at once). */
const LISTINGS_KEPT = 16;
/** A listing older than this vouches for no copy: every run lists its shards again. */
const LISTING_TRUSTED_MS = 3_600_000;

const SUFFIX = '.model';
/** The namespace folder of this layout of kept model files. */
const NAMESPACE = 'v1';

/** Where a worker keeps an S3 store's model files, and how many bytes of them at most. */
export interface ModelFilesFolder {
  dir: string;
  maxBytes: number;
  /**
   * Bytes of files a store that defers its writes holds in memory; the rest it GETs again to keep them (see
   * {@link KeptModelFilesOptions.deferWrites}). Default {@link HELD_MAX_BYTES}; tests set less.
   */
  heldMaxBytes?: number;
}

/** Options of {@link KeptModelFiles}. */
export interface KeptModelFilesOptions {
  /** Told of a file that could not be read or written (the store is read instead), at most once a minute. */
  warn?: ((message: string) => void) | undefined;
  /** Read and write the host's files synchronously (a shard thread, where nothing else waits on the event loop). */
  blocking?: boolean | undefined;
  /**
   * Keep the files read when told ({@link KeptModelFiles.writeDeferred}: a shard thread once idle, and as it closes),
   * not as they are read: up to {@link ModelFilesFolder.heldMaxBytes} of them held in memory, the rest GET
   * again from the store when told. Creating a file costs about as much of the thread's CPU as the GET it saves (0.1
   * to 0.6 ms here, 4 ms for a 100-tree forest under load), so a cold run does not pay for the next worker's files.
   */
  deferWrites?: boolean | undefined;
  /** The clock (ms); default Date.now. */
  now?: (() => number) | undefined;
}

/**
 * Deletes the model files kept in `folder` that were not read for a week, and the least recently used past its
 * bytes; see {@link sweepKeptFiles}.
 */
export function sweepKeptModelFiles(folder: ModelFilesFolder, now?: () => number): Promise<SweepResult> {
  return sweepKeptFiles(folder.dir, SUFFIX, { maxBytes: folder.maxBytes, ...(now ? { now } : {}) });
}

/** Bytes of files a store holds in memory to write later (see {@link KeptModelFilesOptions.deferWrites}). */
const HELD_MAX_BYTES = 64 * 2 ** 20;

/** A writer sweeps the folder each time it has written this share of its bytes (so it stays near its bound). */
const SWEEP_EVERY_SHARE = 1 / 8;

/** One listing a worker made: what it covered and what it found there. */
interface Listing {
  prefix: string;
  /** The range listed (`listRange`), or undefined for all of `prefix`. */
  range: { first: string; last: string } | undefined;
  at: number;
  objects: Map<string, StoredObject>;
}

/**
 * `store` with its model files kept in a folder on this host (see the module's comment); every other call goes to
 * the store as it is.
 */
export class KeptModelFiles implements ObjectStore {
  readonly uri: string;
  readonly concurrentReads?: number;
  readonly listRange?: ObjectStore['listRange'];
  readonly files: KeptFiles;
  private readonly now: () => number;
  /** Newest last. */
  private readonly listings: Listing[] = [];
  private writtenSinceSweep = 0;
  private sweeping = false;
  /** Files to keep later, by id, oldest first; see {@link KeptModelFilesOptions.deferWrites}. */
  private readonly deferred = new Map<string, Uint8Array>();
  private deferredBytes = 0;
  /** Files to keep later that were not held (past the bytes held): GET again as listed then. By id, oldest first. */
  private readonly refetch = new Map<string, StoredObject>();
  private refetchBytes = 0;
  /** GETs made to keep files that were not held (see {@link KeptModelFiles.writeDeferred}), for metrics. */
  fetched = 0;

  constructor(
    private readonly store: ObjectStore,
    private readonly folder: ModelFilesFolder,
    private readonly options: KeptModelFilesOptions = {},
  ) {
    this.uri = store.uri;
    if (store.concurrentReads !== undefined) this.concurrentReads = store.concurrentReads;
    this.now = options.now ?? Date.now;
    this.files = new KeptFiles(folder.dir, NAMESPACE, {
      magic: 'FSMF',
      suffix: SUFFIX,
      wording: {
        file: 'kept model file',
        instead: 'reading it from the store',
        later: 'it is read from the store again next time',
        files: 'kept model files',
      },
      warn: options.warn,
      now: options.now,
      blocking: options.blocking,
    });
    if (store.listRange) {
      this.listRange = async (prefix, first, last, callOptions) => {
        const at = this.now();
        const found = await store.listRange!(prefix, first, last, callOptions);
        this.remember({ prefix, range: { first, last }, at, objects: byKey(found) });
        return found;
      };
    }
  }

  async get(key: string, options?: CallOptions): Promise<Uint8Array> {
    const body = await this.tryGet(key, options);
    if (body === undefined) throw new ObjectNotFound(this.uri, key);
    return body;
  }

  tryGet(key: string, options?: CallOptions): Promise<Uint8Array | undefined> {
    return this.read(key, options);
  }

  /**
   * This store as one shard reads its models through it: every call goes here, and `reads` counts where each model
   * file the shard read came from (its log, status and manifest say so).
   */
  counting(reads: ModelFileReads): ObjectStore {
    const tryGet = (key: string, options?: CallOptions) => this.read(key, options, reads);
    return {
      uri: this.uri,
      ...(this.concurrentReads !== undefined && { concurrentReads: this.concurrentReads }),
      get: async (key, options) => {
        const body = await tryGet(key, options);
        if (body === undefined) throw new ObjectNotFound(this.uri, key);
        return body;
      },
      tryGet,
      getVersioned: (key, options) => this.getVersioned(key, options),
      put: (key, body, options) => this.put(key, body, options),
      putIf: (key, body, expected, options) => this.putIf(key, body, expected, options),
      list: (prefix, options) => this.list(prefix, options),
      listObjects: (prefix, options) => this.listObjects(prefix, options),
      delete: (key, options) => this.delete(key, options),
      ...(this.listRange && { listRange: this.listRange }),
    };
  }

  private async read(key: string, options?: CallOptions, reads?: ModelFileReads): Promise<Uint8Array | undefined> {
    if (!isVersionFile(key)) return this.store.tryGet(key, options);
    const listed = this.listed(key);
    if (!listed?.etag) {
      if (reads) reads.store++;
      return this.store.tryGet(key, options);
    }
    const id = `${this.uri}\n${key}\n${listed.etag}\n${listed.size}`;
    const kept =
      this.deferred.get(id) ??
      (await this.files.read(id, (data) =>
        data.length === listed.size ? undefined : `${data.length} bytes, listed with ${listed.size}`,
      ));
    if (kept) {
      if (reads) reads.host++;
      return kept;
    }
    if (reads) reads.store++;
    const got = await this.store.getVersioned(key, options);
    // Kept only as listed: a write between the listing and this read is not what the listing vouches for.
    if (got && got.version === listed.etag && got.body.length === listed.size) await this.keep(id, got.body, listed);
    return got?.body;
  }

  /**
   * Writes up to `max` of the files whose writing was deferred, oldest first: those held in memory, then up to
   * `fetch` of those to GET again from the store (none for a thread that is closing), each kept only if the store
   * still has it as it was listed. Returns how many are left. A GET that fails is warned of, and the files not
   * fetched yet are not kept (the next worker reads them from the store).
   */
  async writeDeferred(max = Infinity, { fetch = Infinity }: { fetch?: number } = {}): Promise<number> {
    let n = 0;
    for (const [id, body] of this.deferred) {
      if (n >= max) break;
      n++;
      this.deferred.delete(id);
      this.deferredBytes -= body.length;
      await this.write(id, body);
    }
    await this.fetchAndWrite(Math.min(max - n, fetch));
    return this.deferred.size + this.refetch.size;
  }

  /** GETs again and writes up to `max` of the files to keep that were not held in memory (see writeDeferred). */
  private async fetchAndWrite(max: number): Promise<void> {
    let n = 0;
    for (const [id, listed] of this.refetch) {
      if (n++ >= max) break;
      this.refetch.delete(id);
      this.refetchBytes -= listed.size;
      let got: VersionedObject | undefined;
      try {
        this.fetched++;
        got = await this.store.getVersioned(listed.key);
      } catch (err) {
        const warn = this.options.warn ?? ((message: string) => process.emitWarning(message));
        warn(
          `model file ${listed.key} could not be read from ${this.uri} to keep it on this host: ${messageOf(err)}; ` +
            `${this.refetch.size} more not kept (read from the store again next time)`,
        );
        this.refetch.clear();
        this.refetchBytes = 0;
        break;
      }
      if (got && got.version === listed.etag && got.body.length === listed.size) await this.write(id, got.body);
    }
  }

  getVersioned(key: string, options?: CallOptions): Promise<VersionedObject | undefined> {
    return this.store.getVersioned(key, options);
  }

  put(key: string, body: Uint8Array | string, options?: CallOptions): Promise<void> {
    return this.store.put(key, body, options);
  }

  putIf(
    key: string,
    body: Uint8Array | string,
    expected: string | null,
    options?: CallOptions,
  ): Promise<string | undefined> {
    return this.store.putIf(key, body, expected, options);
  }

  list(prefix: string, options?: CallOptions): Promise<string[]> {
    return this.store.list(prefix, options);
  }

  async listObjects(prefix: string, options?: CallOptions): Promise<StoredObject[]> {
    const at = this.now();
    const found = await this.store.listObjects(prefix, options);
    this.remember({ prefix, range: undefined, at, objects: byKey(found) });
    return found;
  }

  delete(key: string, options?: CallOptions): Promise<void> {
    return this.store.delete(key, options);
  }

  /**
   * Keeps `body`, read as `listed`, as the file `id`: now, or once the thread is idle from memory, or by a GET then
   * (see {@link KeptModelFilesOptions.deferWrites}); not at all past what the folder keeps.
   */
  private async keep(id: string, body: Uint8Array, listed: StoredObject): Promise<void> {
    if (!this.options.deferWrites) return this.write(id, body);
    if (this.deferred.has(id) || this.refetch.has(id)) return;
    if (this.deferredBytes + body.length <= (this.folder.heldMaxBytes ?? HELD_MAX_BYTES)) {
      this.deferred.set(id, body);
      this.deferredBytes += body.length;
    } else if (this.refetchBytes + body.length <= this.folder.maxBytes) {
      this.refetch.set(id, listed);
      this.refetchBytes += body.length;
    }
  }

  /** Writes the file, and sweeps the folder (in the background) each time writes reach a share of its bound. */
  private async write(id: string, body: Uint8Array): Promise<void> {
    await this.files.write(id, body);
    this.writtenSinceSweep += body.length;
    if (this.sweeping || this.writtenSinceSweep < this.folder.maxBytes * SWEEP_EVERY_SHARE) return;
    this.sweeping = true;
    this.writtenSinceSweep = 0;
    void sweepKeptModelFiles(this.folder, this.options.now)
      .catch((err: unknown) => {
        const warn = this.options.warn ?? ((message: string) => process.emitWarning(message));
        warn(`kept model files in ${this.folder.dir} could not be swept: ${messageOf(err)}`);
      })
      .finally(() => (this.sweeping = false));
  }

  /** Remembers a listing, forgetting the oldest past {@link LISTINGS_KEPT} and those that vouch for nothing now. */
  private remember(listing: Listing): void {
    this.listings.push(listing);
    const since = this.now() - LISTING_TRUSTED_MS;
    while (this.listings.length > LISTINGS_KEPT || (this.listings[0]?.at ?? Infinity) < since) this.listings.shift();
  }

  /**
   * What the newest listing that covers `key` found of it: the object, null when it was not there, undefined when
   * no listing of the last hour covers the key.
   */
  private listed(key: string): StoredObject | null | undefined {
    const since = this.now() - LISTING_TRUSTED_MS;
    for (let i = this.listings.length - 1; i >= 0; i--) {
      const { prefix, range, at, objects } = this.listings[i]!;
      if (at < since) continue;
      if (!key.startsWith(prefix)) continue;
      if (range && (compareKeys(key, range.first) < 0 || compareKeys(key, range.last) > 0)) continue;
      return objects.get(key) ?? null;
    }
    return undefined;
  }
}

function byKey(objects: readonly StoredObject[]): Map<string, StoredObject> {
  return new Map(objects.map((o) => [o.key, o]));
}

/** Whether `key` is a file of one model version (`models/<device>/<version>/<file>`), which is never rewritten. */
function isVersionFile(key: string): boolean {
  const root = keys.modelsRoot();
  return key.startsWith(root) && key.split('/').length === 4;
}
