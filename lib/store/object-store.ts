import { InvalidKey } from '../shared/errors';
/** The one interface behind the local-folder store and the S3 store. */

/**
 * Where aggregates, models, predictions and logs live. Keys are `/`-separated and validated by lib/shared/keys.
 * Every call takes an optional AbortSignal: a cancelled activity attempt stops its store calls and writes nothing
 * after the signal fires.
 */
export interface ObjectStore {
  /** The URI the store was opened with, credentials removed: safe to log and to put in a manifest. */
  readonly uri: string;
  /**
   * Reads worth having in flight at once where a caller has many to make (a shard reading its devices' models): a
   * remote store's round trips overlap (S3); undefined for a local one, whose reads wait for no network.
   */
  readonly concurrentReads?: number;
  /** The object's bytes; throws `ObjectNotFound` when there is none. */
  get(key: string, options?: CallOptions): Promise<Uint8Array>;
  /** The object's bytes, or `undefined` when there is none. */
  tryGet(key: string, options?: CallOptions): Promise<Uint8Array | undefined>;
  /** The object's bytes and version tag, or `undefined` when there is none; see {@link ObjectStore.putIf}. */
  getVersioned(key: string, options?: CallOptions): Promise<VersionedObject | undefined>;
  /** Writes the whole object atomically: a reader sees the old or the new bytes, never a part. */
  put(key: string, body: Uint8Array | string, options?: CallOptions): Promise<void>;
  /**
   * Writes the object only if it is still as the caller read it: `expected` is the version tag from
   * {@link ObjectStore.getVersioned}, or `null` for "only if there is no object". Returns the new version tag, or
   * `undefined` when another writer got there first (nothing was written). Of two writers that expect the same
   * version, at most one succeeds: the atomic step a commit fence needs (S3 conditional writes, `If-Match` /
   * `If-None-Match`; a lock file in the local store).
   */
  putIf(
    key: string,
    body: Uint8Array | string,
    expected: string | null,
    options?: CallOptions,
  ): Promise<string | undefined>;
  /** Every key under `prefix`, sorted. */
  list(prefix: string, options?: CallOptions): Promise<string[]>;
  /** Every object under `prefix` with its size and last-modified time, sorted by key. */
  listObjects(prefix: string, options?: CallOptions): Promise<StoredObject[]>;
  /** Deletes the object; deleting a missing key is not an error. */
  delete(key: string, options?: CallOptions): Promise<void>;
  /**
   * The objects under `prefix` whose keys lie between `first` and `last` (both included, in {@link compareKeys}
   * order), sorted. Only where a listing can begin at a key and end early (S3's StartAfter): the model files of one
   * shard's devices are then a few pages, where the fleet's, with every version, are many.
   */
  listRange?(prefix: string, first: string, last: string, options?: CallOptions): Promise<StoredObject[]>;
  /**
   * Each key's object (size and last-modified time), or `undefined` where there is none, in the order of `keys`.
   * Only where one call per key is cheaper than listing the folder around them (the local store: a `stat` each);
   * S3 has no such method, since one ListObjectsV2 request returns 1,000 keys for the price of one HEAD.
   */
  statObjects?(keys: readonly string[], options?: CallOptions): Promise<(StoredObject | undefined)[]>;
  /**
   * {@link statObjects} answered at once, without a promise: where the store's look is a synchronous system call
   * (the local store), so that a warm shard checks its devices' model files without waiting on anything.
   */
  statObjectsNow?(keys: readonly string[]): (StoredObject | undefined)[];
  /**
   * What the store's latest read of `key` found (its size and last-modified time, from the descriptor it read),
   * handed out once: undefined when the key was not read since the last call, or its read kept no such record.
   * Only where reads see it for free (the local store's synchronous reads, which `fstat` before reading).
   */
  takeReadStat?(key: string): StoredObject | undefined;
  /** The file of `key` on this host (`''`: the store's folder), where the store is a local folder. */
  localPath?(key: string): string;
}

/** Options of one store call. */
export interface CallOptions {
  /** Aborts the call (the activity's cancellation signal): it rejects and writes nothing afterwards. */
  signal?: AbortSignal | undefined;
}

/** An object's bytes and its version tag (S3's ETag, a content hash in the local store). */
export interface VersionedObject {
  body: Uint8Array;
  version: string;
}

/** One object of a listing. */
export interface StoredObject {
  key: string;
  /** Size in bytes. */
  size: number;
  /**
   * When the object was last written, by the store's clock: the file's modification time locally, S3's
   * LastModified (whole seconds on AWS). What retention decisions such as `predictions prune` compare with now.
   */
  lastModified: Date;
  /** S3's ETag (changes with every write); absent in the local store, where size and time tell a change. */
  etag?: string;
}

/**
 * S3's order of keys: by their UTF-8 bytes. JavaScript's `<` compares UTF-16 code units, which orders characters
 * above U+FFFF before U+E000 to U+FFFF, where UTF-8 puts them after.
 */
export function compareKeys(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Returns `key` when every `/`-separated segment is a plain name; a trailing `/` is allowed for prefixes. */
export function checkKey(store: string, key: string, { prefix = false } = {}): string {
  const end = prefix && key.endsWith('/') ? key.length - 1 : key.length;
  if (prefix && end === 0) return key;
  if (!plainSegments(key, end)) throw new InvalidKey(store, key);
  return key;
}

/**
 * Whether `key`'s first `end` characters (1 to 1,024) are `/`-separated segments none of which is empty, `.` or
 * `..`, with no backslash or control character: one pass, no allocation (every store call checks its key).
 */
function plainSegments(key: string, end: number): boolean {
  if (end === 0 || end > 1024) return false;
  let start = 0;
  for (let i = 0; i <= end; i++) {
    const c = i === end ? SLASH : key.charCodeAt(i);
    if (c === SLASH) {
      const n = i - start;
      const dots = n <= 2 && key.charCodeAt(start) === DOT && (n === 1 || key.charCodeAt(start + 1) === DOT);
      if (n === 0 || dots) return false;
      start = i + 1;
    } else if (c < 0x20 || c === BACKSLASH) return false;
  }
  return true;
}

const SLASH = 0x2f;
const DOT = 0x2e;
const BACKSLASH = 0x5c;
