import type { ObjectStore } from '../../lib/store/object-store';

/**
 * `store` with its listings replaced: what a concurrent writer or an eventually consistent listing looks like to
 * the code under test, while reads and writes go through.
 */
export function withListing(store: ObjectStore, listing: Pick<ObjectStore, 'list' | 'listObjects'>): ObjectStore {
  return {
    uri: store.uri,
    get: (k) => store.get(k),
    tryGet: (k) => store.tryGet(k),
    getVersioned: (k) => store.getVersioned(k),
    put: (k, b) => store.put(k, b),
    putIf: (k, b, expected) => store.putIf(k, b, expected),
    delete: (k) => store.delete(k),
    list: (p) => listing.list(p),
    listObjects: (p) => listing.listObjects(p),
  };
}
