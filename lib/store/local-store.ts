import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { checkKey, type ObjectStore, type StoredObject } from './object-store';
import { ObjectNotFound } from '../shared/errors';

/**
 * The embedded default store: a local folder laid out exactly like the S3 bucket. Writes go to a temporary
 * file and are renamed into place, so a crash never leaves half an object under its real key.
 */
export class LocalStore implements ObjectStore {
  readonly uri: string;
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.uri = pathToFileURL(this.root).href;
  }

  private path(key: string, prefix = false): string {
    checkKey(this.uri, key, { prefix });
    const p = join(this.root, ...key.split('/').filter(Boolean));
    if (p !== this.root && !p.startsWith(this.root + sep)) throw new Error(`unreachable: ${key} escapes ${this.root}`);
    return p;
  }

  async get(key: string): Promise<Uint8Array> {
    const body = await this.tryGet(key);
    if (body === undefined) throw new ObjectNotFound(this.uri, key);
    return body;
  }

  async tryGet(key: string): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(this.path(key)));
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async put(key: string, body: Uint8Array | string): Promise<void> {
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, body, { flush: true });
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    return (await this.walk(prefix)).map((f) => f.key);
  }

  async listObjects(prefix: string): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    for (const { key, path } of await this.walk(prefix)) {
      try {
        const { size, mtime } = await stat(path);
        out.push({ key, size, lastModified: mtime });
      } catch (err) {
        // Deleted between the walk and the stat: no longer an object of the listing.
        if (!isMissing(err)) throw err;
      }
    }
    return out;
  }

  /** The files under `prefix` (keys sorted), without temporary files of writes in progress. */
  private async walk(prefix: string): Promise<{ key: string; path: string }[]> {
    checkKey(this.uri, prefix, { prefix: true });
    // Walk the deepest folder the prefix names, then filter by the full prefix (it may end inside a name).
    const folder = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/') + 1) : '';
    const out: { key: string; path: string }[] = [];
    const walk = async (rel: string): Promise<void> => {
      const dir = join(this.root, ...rel.split('/').filter(Boolean));
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (isMissing(err)) return;
        throw err;
      }
      for (const e of entries) {
        const key = rel + e.name;
        if (e.isDirectory()) await walk(`${key}/`);
        else if (e.isFile() && !e.name.endsWith('.tmp') && key.startsWith(prefix))
          out.push({ key, path: join(dir, e.name) });
      }
    };
    await walk(folder);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
