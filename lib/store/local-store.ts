import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFile as readFileWithCallback, readFileSync, statSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { checkKey, type CallOptions, type ObjectStore, type StoredObject, type VersionedObject } from './object-store';
import { errnoCode, ObjectNotFound, StoreContended } from '../shared/errors';
import { forEachLimited } from '../shared/concurrency';
import { readOpenFileSync } from '../read-sync';

/** File system calls a listing has in flight at once (libuv runs four at a time by default). */
const FS_CONCURRENCY = 16;
/**
 * The largest file read synchronously with `blockingReads`: SVMs, PCA, autoencoders and every model.json. Larger
 * files (a forest of 25 trees is 190 KB) are read asynchronously, so that reads from disk overlap. Chosen by
 * reasoning, not by a measured difference: 1,000 forests read synchronously were not slower cold (7.4 s against
 * 7.8 s with the page cache dropped), and 10,000 forests were as slow cold on shard threads with this limit (84 s)
 * as without it (87 s).
 */
export const BLOCKING_READ_MAX_BYTES = 64 * 1024;
/** How long a conditional write waits for another writer's lock before giving up (a retry may then succeed). */
const LOCK_WAIT_MS = 30_000;
/** A lock of another host older than this is taken to be left by a writer that died (same host: the pid tells). */
const LOCK_STALE_MS = 60_000;

/** Options of a {@link LocalStore}. */
export interface LocalStoreOptions {
  /**
   * Read files of at most {@link BLOCKING_READ_MAX_BYTES} synchronously (default false). Only for a thread that runs
   * nothing a disk wait would delay (a shard thread): there a synchronous read costs a fraction of the four
   * thread-pool round trips of an asynchronous one. Larger files (forests) are read asynchronously, so that reads
   * from disk overlap.
   */
  blockingReads?: boolean;
}

/** Records of reads kept for {@link LocalStore.takeReadStat}: a shard's devices in flight take theirs at once. */
const READ_STATS_KEPT = 1024;

/**
 * The embedded default store: a local folder laid out exactly like the S3 bucket. Writes go to a temporary
 * file and are renamed into place, so a crash never leaves half an object under its real key. Version tags
 * are content hashes; a conditional write holds a lock file beside its key while it compares and renames.
 */
export class LocalStore implements ObjectStore {
  readonly uri: string;
  private readonly root: string;
  /** `root` with one trailing separator, the start of every file's path. */
  private readonly rootDir: string;

  private readonly blockingReads: boolean;
  /** What the latest synchronous read of each key found, until taken ({@link LocalStore.takeReadStat}). */
  private readonly readStats = new Map<string, StoredObject>();

  constructor(root: string, options: LocalStoreOptions = {}) {
    this.root = resolve(root);
    this.rootDir = this.root.endsWith(sep) ? this.root : this.root + sep;
    this.uri = pathToFileURL(this.root).href;
    this.blockingReads = options.blockingReads ?? false;
  }

  localPath(key: string): string {
    return key === '' ? this.root : this.path(key);
  }

  /** The file or folder of `key`: a checked key has no empty, `.` or `..` segment, so it never leaves the root. */
  private path(key: string, prefix = false): string {
    checkKey(this.uri, key, { prefix });
    const body = key.endsWith('/') ? key.slice(0, -1) : key;
    if (body === '') return this.root;
    return this.rootDir + (sep === '/' ? body : body.replaceAll('/', sep));
  }

  async get(key: string, options?: CallOptions): Promise<Uint8Array> {
    const body = await this.tryGet(key, options);
    if (body === undefined) throw new ObjectNotFound(this.uri, key);
    return body;
  }

  /**
   * Read with `fs.readFile`'s callback form, not `fs/promises`: its FileHandle machinery cost the event loop about
   * twice as much per file (a cold run reads two files per device). Not synchronously on an event loop that runs
   * anything else: a model not yet in the page cache would hold it for the disk's latency. With `blockingReads` (a
   * shard thread) a small file is read synchronously: a cold run of 10,000 SVMs took 4.4 to 4.9 s instead of 7.5 to
   * 9.2 s with the files in the page cache, and 7.4 s instead of 8.0 s with them on disk (docs/benchmarks.md).
   */
  async tryGet(key: string, options?: CallOptions): Promise<Uint8Array | undefined> {
    const path = this.path(key);
    try {
      if (this.blockingReads) return await this.readBlocking(key, path, options?.signal);
      return ownBytes(await readWithCallback(path, options?.signal));
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  /**
   * With `blockingReads`: the file read synchronously when it holds at most {@link BLOCKING_READ_MAX_BYTES}, else
   * asynchronously from the same descriptor. Open, fstat, read and close, where a `stat` before `readFileSync` made
   * five system calls: a cold run reads two files a device, and a system call costs about 5 µs on this machine.
   */
  private async readBlocking(key: string, path: string, signal: AbortSignal | undefined): Promise<Uint8Array> {
    signal?.throwIfAborted();
    const fd = openSync(path, 'r');
    try {
      const stat = fstatSync(fd);
      // Not a regular file (a named pipe): its size says nothing, so it is read to its end, as readFileSync does.
      if (!stat.isFile()) return ownBytes(readFileSync(fd));
      this.noteRead(key, stat.size, stat.mtime);
      const size = stat.size;
      if (size > BLOCKING_READ_MAX_BYTES) return ownBytes(await readWithCallback(fd, signal));
      // Its own memory, not the shared pool's, so the bytes are handed out without a copy.
      const bytes = readOpenFileSync(fd, size);
      return new Uint8Array(bytes.buffer, 0, bytes.length);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The size and modification time of the file the latest synchronous read of `key` read, once. The freshness
   * check takes a cold device's fingerprint from its reads instead of a `stat` of each file beforehand.
   */
  takeReadStat(key: string): StoredObject | undefined {
    const stat = this.readStats.get(key);
    if (stat) this.readStats.delete(key);
    return stat;
  }

  /** Keeps what a read of `key` found; the oldest records go past {@link READ_STATS_KEPT} (never taken). */
  private noteRead(key: string, size: number, lastModified: Date): void {
    this.readStats.delete(key);
    this.readStats.set(key, { key, size, lastModified });
    if (this.readStats.size > READ_STATS_KEPT) this.readStats.delete(this.readStats.keys().next().value!);
  }

  async getVersioned(key: string, options?: CallOptions): Promise<VersionedObject | undefined> {
    const body = await this.tryGet(key, options);
    return body === undefined ? undefined : { body, version: contentVersion(body) };
  }

  async put(key: string, body: Uint8Array | string, options?: CallOptions): Promise<void> {
    const target = this.path(key);
    const tmp = await this.writeTemporary(target, body, options);
    try {
      options?.signal?.throwIfAborted();
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async putIf(
    key: string,
    body: Uint8Array | string,
    expected: string | null,
    options?: CallOptions,
  ): Promise<string | undefined> {
    const target = this.path(key);
    const tmp = await this.writeTemporary(target, body, options);
    try {
      const release = await this.lock(`${target}.lock.tmp`, options);
      try {
        const current = await this.getVersioned(key, options);
        if ((current?.version ?? null) !== expected) return undefined;
        options?.signal?.throwIfAborted();
        await rename(tmp, target);
        return contentVersion(typeof body === 'string' ? Buffer.from(body) : body);
      } finally {
        await release();
      }
    } finally {
      await rm(tmp, { force: true });
    }
  }

  async list(prefix: string, options?: CallOptions): Promise<string[]> {
    return (await this.walk(prefix, options)).map((f) => f.key);
  }

  async listObjects(prefix: string, options?: CallOptions): Promise<StoredObject[]> {
    const found = await this.walk(prefix, options);
    const out = new Array<StoredObject | undefined>(found.length);
    await forEachLimited(found, FS_CONCURRENCY, async ({ key, path }, i) => {
      options?.signal?.throwIfAborted();
      try {
        const { size, mtime } = await stat(path);
        out[i] = { key, size, lastModified: mtime };
      } catch (err) {
        // Deleted between the walk and the stat: no longer an object of the listing.
        if (!isMissing(err)) throw err;
      }
    });
    return out.filter((o) => o !== undefined);
  }

  /**
   * A synchronous `stat` per key: about 10 µs each for a local file, where going through libuv's thread pool costs
   * the event loop several times that (a warm run stats two files per device).
   */
  statObjects(keys: readonly string[], options?: CallOptions): Promise<(StoredObject | undefined)[]> {
    return Promise.resolve().then(() => {
      options?.signal?.throwIfAborted();
      return this.statObjectsNow(keys);
    });
  }

  statObjectsNow(keys: readonly string[]): (StoredObject | undefined)[] {
    return keys.map((key) => this.statFile(key));
  }

  private statFile(key: string): StoredObject | undefined {
    try {
      const s = statSync(this.path(key));
      return s.isFile() ? { key, size: s.size, lastModified: s.mtime } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async delete(key: string, options?: CallOptions): Promise<void> {
    const path = this.path(key);
    options?.signal?.throwIfAborted();
    await rm(path, { force: true });
  }

  /** Writes `body` next to `target` under a temporary name (skipped by listings) and returns that name. */
  private async writeTemporary(target: string, body: Uint8Array | string, options?: CallOptions): Promise<string> {
    await mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, body, { flush: true, signal: options?.signal });
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return tmp;
  }

  /**
   * Takes the lock file `path` (created exclusively, naming its holder) and returns its release. A lock whose
   * holder died is broken: on this host when its process is gone, from another host when it is old.
   */
  private async lock(path: string, options?: CallOptions): Promise<() => Promise<void>> {
    const holder = JSON.stringify({ host: hostname(), pid: process.pid, at: Date.now() });
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
      options?.signal?.throwIfAborted();
      try {
        const file = await open(path, 'wx');
        try {
          await file.writeFile(holder);
        } finally {
          await file.close();
        }
        return () => rm(path, { force: true });
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw err;
      }
      if (await isStaleLock(path)) {
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new StoreContended(`${this.uri}: ${path} is held by another writer for over ${LOCK_WAIT_MS / 1000} s`, {
          file: path,
        });
      }
      await sleep(wait, undefined, { signal: options?.signal });
    }
  }

  /** The files under `prefix` (keys sorted), without temporary files of writes in progress. */
  private async walk(prefix: string, options?: CallOptions): Promise<{ key: string; path: string }[]> {
    checkKey(this.uri, prefix, { prefix: true });
    // Walk the deepest folder the prefix names, then filter by the full prefix (it may end inside a name).
    const folder = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/') + 1) : '';
    const out: { key: string; path: string }[] = [];
    // Folder by folder, a level at a time, several reads in flight: a models/ folder of 100,000 devices is as
    // many folders, and one read after another would wait on each.
    for (let level = [folder]; level.length > 0;) {
      const next: string[] = [];
      await forEachLimited(level, FS_CONCURRENCY, async (rel) => {
        options?.signal?.throwIfAborted();
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
          if (e.isDirectory()) next.push(`${key}/`);
          else if (e.isFile() && !e.name.endsWith('.tmp') && key.startsWith(prefix))
            out.push({ key, path: join(dir, e.name) });
        }
      });
      level = next;
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }
}

/** The local store's version tag of some bytes: their sha256. */
function contentVersion(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('hex');
}

/**
 * A file's bytes as a plain Uint8Array. A Buffer that owns its whole memory (fs allocates one per file of 4 KiB
 * and more) is viewed, not copied; one cut from Node's shared pool (a smaller file) is copied, so that no caller
 * holds, or hands on, the pool.
 */
function ownBytes(buf: Buffer): Uint8Array {
  return buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength
    ? new Uint8Array(buf.buffer, 0, buf.byteLength)
    : new Uint8Array(buf);
}

/** `fs.readFile` in its callback form, as a promise (see {@link LocalStore.tryGet}); a descriptor stays open. */
function readWithCallback(path: string | number, signal: AbortSignal | undefined): Promise<Buffer> {
  return new Promise((done, fail) =>
    readFileWithCallback(path, { signal }, (err, data) => (err ? fail(err) : done(data))),
  );
}

/** Whether the lock file's holder is gone: a dead process on this host, or an old lock from another host. */
async function isStaleLock(path: string): Promise<boolean> {
  let holder: { host?: unknown; pid?: unknown; at?: unknown };
  try {
    holder = JSON.parse(await readFile(path, 'utf8')) as typeof holder;
  } catch (err) {
    // Gone already (released): look again. Created but never written: stale once it is old.
    if (isMissing(err)) return false;
    if (err instanceof SyntaxError) return Date.now() - (await stat(path)).mtimeMs > LOCK_STALE_MS;
    throw err;
  }
  if (holder.host === hostname() && typeof holder.pid === 'number') return !isAlive(holder.pid);
  return typeof holder.at !== 'number' || Date.now() - holder.at > LOCK_STALE_MS;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

function isMissing(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}
