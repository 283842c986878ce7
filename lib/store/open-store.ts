import { fileURLToPath } from 'node:url';
import { LocalStore, type LocalStoreOptions } from './local-store';
import type { ObjectStore } from './object-store';
import { S3Store } from './s3-store';

/**
 * Opens the store a URI names: `s3://bucket/prefix` for S3 or an S3-compatible server, anything else
 * (`file:///abs/path`, a plain path) for a local folder, with `local`'s options. The one place where the two are
 * told apart.
 */
export function openStore(uri: string, local: LocalStoreOptions = {}): ObjectStore {
  if (uri.startsWith('s3://')) return S3Store.fromUri(uri);
  if (uri.startsWith('file://')) return new LocalStore(fileURLToPath(uri), local);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri))
    throw new Error(`unsupported store URI ${uri}: use s3://bucket/prefix or a folder`);
  return new LocalStore(uri, local);
}
