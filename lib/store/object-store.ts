import { InvalidKey } from '../shared/errors';
/** The one interface behind the local-folder store and the S3 store. */

/** Where aggregates, models, predictions and logs live. Keys are `/`-separated and validated by lib/shared/keys. */
export interface ObjectStore {
  /** The URI the store was opened with, credentials removed: safe to log and to put in a manifest. */
  readonly uri: string;
  /** The object's bytes; throws `ObjectNotFound` when there is none. */
  get(key: string): Promise<Uint8Array>;
  /** The object's bytes, or `undefined` when there is none. */
  tryGet(key: string): Promise<Uint8Array | undefined>;
  /** Writes the whole object atomically: a reader sees the old or the new bytes, never a part. */
  put(key: string, body: Uint8Array | string): Promise<void>;
  /** Every key under `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
  /** Every object under `prefix` with its size and last-modified time, sorted by key. */
  listObjects(prefix: string): Promise<StoredObject[]>;
  /** Deletes the object; deleting a missing key is not an error. */
  delete(key: string): Promise<void>;
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
}

/** Returns `key` when every `/`-separated segment is a plain name; a trailing `/` is allowed for prefixes. */
export function checkKey(store: string, key: string, { prefix = false } = {}): string {
  const body = prefix && key.endsWith('/') ? key.slice(0, -1) : key;
  if (prefix && body === '') return key;
  const ok =
    body.length > 0 &&
    body.length <= 1024 &&
    !/[\\\0-\x1f]/.test(body) &&
    body.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
  if (!ok) throw new InvalidKey(store, key);
  return key;
}
