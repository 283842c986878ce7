/**
 * A store's identity: the canonical form of its URI, the same whichever spelling named it (`.fleetscore/store`,
 * its absolute path, `file:///…/store`; `s3://bucket/prefix/` with or without the endpoint in the query). Runs of
 * one window on two stores are two runs; runs of one window on one store, however the store was spelt, are one.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseS3Uri } from './s3-store';

/** The canonical URI of the store `uri` names: `s3://bucket[/prefix]` or `file:///absolute/path`. */
export function canonicalStoreUri(uri: string): string {
  if (uri.startsWith('s3://')) {
    const { bucket, prefix } = parseS3Uri(uri);
    return `s3://${bucket}${prefix === '' ? '' : `/${prefix.slice(0, -1)}`}`;
  }
  const path = uri.startsWith('file://') ? fileURLToPath(uri) : resolve(uri);
  return pathToFileURL(path).href;
}

/** Eight hex characters that stand for the store in a workflow id: a hash of its canonical URI. */
export function storeTag(uri: string): string {
  return createHash('sha256').update(canonicalStoreUri(uri)).digest('hex').slice(0, 8);
}
