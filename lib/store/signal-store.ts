import type { CallOptions, ObjectStore } from './object-store';

/**
 * `store` with `signal` passed to every call that does not bring its own: what an activity attempt works through,
 * so that once its cancellation signal fires (a workflow cancel, a heartbeat timeout, a worker's drain timeout)
 * every store call of the attempt rejects and nothing is written after it, however deep in lib/ the call is made.
 */
export function withSignal(store: ObjectStore, signal: AbortSignal | undefined): ObjectStore {
  if (!signal) return store;
  const opts = (options?: CallOptions): CallOptions => ({ signal, ...options });
  return {
    uri: store.uri,
    ...(store.concurrentReads !== undefined && { concurrentReads: store.concurrentReads }),
    get: (key, options) => store.get(key, opts(options)),
    tryGet: (key, options) => store.tryGet(key, opts(options)),
    getVersioned: (key, options) => store.getVersioned(key, opts(options)),
    put: (key, body, options) => store.put(key, body, opts(options)),
    putIf: (key, body, expected, options) => store.putIf(key, body, expected, opts(options)),
    list: (prefix, options) => store.list(prefix, opts(options)),
    listObjects: (prefix, options) => store.listObjects(prefix, opts(options)),
    delete: (key, options) => store.delete(key, opts(options)),
    ...(store.listRange && {
      listRange: (prefix: string, first: string, last: string, options?: CallOptions) =>
        store.listRange!(prefix, first, last, opts(options)),
    }),
    ...(store.statObjects && {
      statObjects: (keys: readonly string[], options?: CallOptions) => store.statObjects!(keys, opts(options)),
    }),
    ...(store.statObjectsNow && {
      statObjectsNow: (keys: readonly string[]) => {
        signal.throwIfAborted();
        return store.statObjectsNow!(keys);
      },
    }),
    ...(store.takeReadStat && { takeReadStat: (key: string) => store.takeReadStat!(key) }),
  };
}
