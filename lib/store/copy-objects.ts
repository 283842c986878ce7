import { forEachLimited } from '../shared/concurrency';
import type { ObjectStore } from './object-store';

/** Store calls in flight at once while copying: enough to hide an S3 round trip, few enough for a local disk. */
const COPY_CONCURRENCY = 16;

/**
 * Copies every object under `prefix` from one store to another under the same keys (a local fleet into a bucket,
 * say), `COPY_CONCURRENCY` at a time. Returns the number of objects copied. Each object is written whole, as
 * `put` writes it; objects already in `to` are overwritten, and nothing in `to` is deleted.
 */
export async function copyObjects(from: ObjectStore, to: ObjectStore, prefix = ''): Promise<number> {
  const keys = await from.list(prefix);
  await forEachLimited(keys, COPY_CONCURRENCY, async (key) => to.put(key, await from.get(key)));
  return keys.length;
}
