/**
 * Where things are on the embedded default, and the environment variables that move them. The store URI and
 * the Temporal address are the only things that differ between one machine and production.
 */
import { resolve } from 'node:path';

/** The project-local data folder (git-ignored): Temporal's SQLite file, the local store, worker logs. */
export function dataDir(): string {
  return resolve(process.env.FLEETSCORE_DATA_DIR ?? '.fleetscore');
}

/** The store to use when none is given: `FLEETSCORE_STORE`, else the local folder `.fleetscore/store`. */
export function defaultStoreUri(): string {
  return process.env.FLEETSCORE_STORE ?? resolve(dataDir(), 'store');
}
