import { fileURLToPath } from 'node:url';
import { KeptModelFiles, type ModelFilesFolder } from './kept-model-files';
import { LocalStore, type LocalStoreOptions } from './local-store';
import type { ObjectStore } from './object-store';
import type * as S3StoreModule from './s3-store';

/** How a worker opens a store. */
export interface OpenStoreOptions extends LocalStoreOptions {
  /**
   * The folder on this host where an S3 store's model files are kept across restarts, and its bound
   * (lib/store/kept-model-files.ts); a local store needs none.
   */
  modelFiles?: ModelFilesFolder | undefined;
  /** Told of a kept model file that could not be read or written (the store is read instead). */
  warn?: ((message: string) => void) | undefined;
  /** Keep model files when told, not as they are read (a shard thread: see {@link KeptModelFiles.writeDeferred}). */
  deferWrites?: boolean | undefined;
}

/**
 * Opens the store a URI names: `s3://bucket/prefix` for S3 or an S3-compatible server, anything else
 * (`file:///abs/path`, a plain path) for a local folder, with `options`. The one place where the two are told
 * apart. The S3 store (and the AWS SDK under it) loads on the first S3 URI: a worker's shard threads each
 * open the store, and a local one then spares every thread about 60 ms and 20 MB of loading the SDK.
 */
export function openStore(uri: string, options: OpenStoreOptions = {}): ObjectStore {
  const { modelFiles, warn, deferWrites, ...local } = options;
  if (uri.startsWith('s3://')) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded only where an S3 store is opened
    const { S3Store } = require('./s3-store') as typeof S3StoreModule;
    const store = S3Store.fromUri(uri);
    return modelFiles
      ? new KeptModelFiles(store, modelFiles, { warn, deferWrites, blocking: local.blockingReads })
      : store;
  }
  if (uri.startsWith('file://')) return new LocalStore(fileURLToPath(uri), local);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri))
    throw new Error(`unsupported store URI ${uri}: use s3://bucket/prefix or a folder`);
  return new LocalStore(uri, local);
}
