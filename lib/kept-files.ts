/**
 * Files a worker keeps in a folder on its host across restarts, by key: compiled programs (saved-programs.ts) and
 * copies of an S3 store's model files (store/kept-model-files.ts). What they share is how a file is kept:
 *
 * - named by the sha256 of its key, under a namespace folder (`<dir>/<namespace>/<2 hex>/<hash><suffix>`);
 * - written under a temporary name and renamed, so a reader never sees half a file, and a folder is made when a
 *   write finds it missing (the first write, or after a sweep removed it empty);
 * - headed by a magic string and the sha256 of its data: a damaged file is reported, deleted and read or computed
 *   again by the caller, never used (a change of format must change the magic);
 * - a read refreshes the file's modification time once a day, so {@link sweepKeptFiles} deletes what was not read
 *   for a week (a worker sweeps its folders at start), which bounds a folder by what was used lately;
 * - a problem (a folder that cannot be written, a file that cannot be read) is a warning, at most once a minute,
 *   never an error: the caller does without the file.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, futimesSync, mkdirSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir, open, readdir, rename, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { readOpenFileSync } from './read-sync';
import { errnoCode, messageOf } from './shared/errors';

/** A file not read for this long is deleted by a sweep (a week: a model scored hourly, or daily, stays). */
export const MAX_AGE_MS = 7 * 24 * 3_600_000;

/** A file's modification time, its last use, is refreshed on a read once it is this old (one write a day at most). */
const REFRESH_MS = 24 * 3_600_000;

/** The least time between two warnings of one folder: a folder that cannot be written must not flood the log. */
const WARN_EVERY_MS = 60_000;

/** A temporary file this old was left by a writer that died; a sweep deletes it. */
const STALE_TEMP_MS = 3_600_000;

const DIGEST_BYTES = 32;

/** How a folder's warnings name what it keeps. */
export interface KeptFilesWording {
  /** One file, as in "saved program <path> could not be read". */
  file: string;
  /** What the caller does instead of using a file, as in "...: compiling". */
  instead: string;
  /** What happens next time after a file could not be written, as in "...: it is compiled again next time". */
  later: string;
  /** The files, as in "(and 3 more problems with saved programs since the last)". */
  files: string;
}

/** Options of a {@link KeptFiles} folder. */
export interface KeptFilesOptions {
  /** Four ASCII characters that open every file of this kind. */
  magic: string;
  /** The file name's ending, which a sweep looks for. */
  suffix: string;
  wording: KeptFilesWording;
  /**
   * Told of a file that could not be read or written (the caller does without it), never of a miss: at most once
   * a minute, with the count of problems since the last warning.
   */
  warn?: ((message: string) => void) | undefined;
  /** The clock of last uses (ms); default Date.now. */
  now?: (() => number) | undefined;
  /**
   * Read and write files synchronously: for a folder used from a thread of its own (a shard thread), where nothing
   * else waits on its event loop. About 110 µs to read a 100-tree forest's program against 430 µs through
   * fs/promises.
   */
  blocking?: boolean | undefined;
}

/** Counters of a {@link KeptFiles} folder, for logs and tests. */
export interface KeptFilesStats {
  /** Files read (whole and undamaged). */
  read: number;
  /** Files written. */
  written: number;
  /** Files found damaged (deleted). */
  damaged: number;
}

/** The files of one kind kept in one folder, read and written by key. */
export class KeptFiles {
  readonly stats: KeptFilesStats = { read: 0, written: 0, damaged: 0 };
  private readonly magic: Buffer;
  private readonly report: (message: string) => void;
  private readonly now: () => number;
  private temps = 0;
  private lastWarning = -Infinity;
  private unreported = 0;

  constructor(
    /** The folder (created on the first write). */
    readonly dir: string,
    /** The folder under `dir` the files live in: what they depend on beyond their key (a compiler's version). */
    private readonly namespace: string,
    private readonly options: KeptFilesOptions,
  ) {
    this.magic = Buffer.from(options.magic, 'ascii');
    if (this.magic.length !== 4) throw new RangeError(`kept files' magic must be 4 ASCII characters: ${options.magic}`);
    this.report = options.warn ?? ((message) => process.emitWarning(message));
    this.now = options.now ?? Date.now;
  }

  /** The file that holds the data of `key`. */
  fileOf(key: string): string {
    const name = createHash('sha256').update(key).digest('hex');
    return join(this.dir, this.namespace, name.slice(0, 2), name + this.options.suffix);
  }

  /**
   * The data kept for `key`, or undefined when there is none, it could not be read (a warning), or it is damaged:
   * its checksum does not match, or `check` says why it cannot be used (then it is deleted, with a warning).
   */
  async read(key: string, check?: (data: Buffer) => string | undefined): Promise<Buffer | undefined> {
    const file = this.fileOf(key);
    let bytes: Buffer;
    try {
      bytes = this.options.blocking ? this.readBlocking(file) : await this.readFile(file);
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        this.warn(
          `${this.options.wording.file} ${file} could not be read (${messageOf(err)}): ${this.options.wording.instead}`,
        );
      }
      return undefined;
    }
    const data = this.verified(bytes);
    const problem = typeof data === 'string' ? data : check?.(data);
    if (problem !== undefined) {
      this.stats.damaged++;
      const { wording } = this.options;
      this.warn(`${wording.file} ${file} is damaged (${problem}): deleted, ${wording.instead} again`);
      await unlink(file).catch((err: unknown) => {
        if (errnoCode(err) !== 'ENOENT') this.warn(`${wording.file} ${file} could not be deleted (${messageOf(err)})`);
      });
      return undefined;
    }
    this.stats.read++;
    return data as Buffer;
  }

  /** Keeps `data` for `key`; a failure is a warning (the caller does without it next time), never thrown. */
  async write(key: string, data: Uint8Array): Promise<void> {
    const file = this.fileOf(key);
    const digest = createHash('sha256').update(data).digest();
    const temp = `${file}.${process.pid}-${threadId}-${this.temps++}.tmp`;
    const bytes = Buffer.concat([this.magic, digest, data]);
    try {
      if (this.options.blocking) {
        try {
          writeFileSync(temp, bytes);
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') throw err;
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(temp, bytes);
        }
        renameSync(temp, file);
      } else {
        await writeFile(temp, bytes).catch(async (err: unknown) => {
          if (errnoCode(err) !== 'ENOENT') throw err;
          await mkdir(dirname(file), { recursive: true });
          await writeFile(temp, bytes);
        });
        await rename(temp, file);
      }
      this.stats.written++;
    } catch (err) {
      const { wording } = this.options;
      this.warn(`${wording.file} could not be written to ${file} (${messageOf(err)}): ${wording.later}`);
      await unlink(temp).catch(() => undefined);
    }
  }

  /** The data in a file's bytes, or why they are not whole. */
  private verified(bytes: Buffer): Buffer | string {
    const header = this.magic.length + DIGEST_BYTES;
    if (bytes.length < header || !bytes.subarray(0, this.magic.length).equals(this.magic)) {
      return `not a ${this.options.wording.file}`;
    }
    const data = bytes.subarray(header);
    const digest = createHash('sha256').update(data).digest();
    return digest.equals(bytes.subarray(this.magic.length, header)) ? data : 'checksum mismatch';
  }

  /** A file's bytes, its time refreshed when it is older than a day (see {@link REFRESH_MS}). */
  private async readFile(file: string): Promise<Buffer> {
    const handle = await open(file, 'r');
    try {
      const { mtimeMs } = await handle.stat();
      const bytes = await handle.readFile();
      const now = this.now();
      if (now - mtimeMs > REFRESH_MS) await handle.utimes(new Date(now), new Date(now));
      return bytes;
    } finally {
      await handle.close();
    }
  }

  /** {@link readFile}, synchronously. */
  private readBlocking(file: string): Buffer {
    const fd = openSync(file, 'r');
    try {
      const { size, mtimeMs } = fstatSync(fd);
      const bytes = readOpenFileSync(fd, size);
      const now = this.now();
      if (now - mtimeMs > REFRESH_MS) futimesSync(fd, new Date(now), new Date(now));
      return bytes;
    } finally {
      closeSync(fd);
    }
  }

  /** Reports `message` unless a warning went out less than a minute ago (then counts it for the next one). */
  private warn(message: string): void {
    const now = this.now();
    if (now - this.lastWarning < WARN_EVERY_MS) {
      this.unreported++;
      return;
    }
    const more =
      this.unreported > 0
        ? ` (and ${this.unreported} more problems with ${this.options.wording.files} since the last)`
        : '';
    this.report(message + more);
    this.lastWarning = now;
    this.unreported = 0;
  }
}

/** What a sweep of a folder of kept files did. */
export interface SweepResult {
  /**
   * Files deleted: not read for the maximum age, the least recently used past the maximum bytes, or temporary files
   * left by a writer that died.
   */
  deleted: number;
  /** Files kept, and their bytes. */
  kept: number;
  keptBytes: number;
}

/** Options of {@link sweepKeptFiles}. */
export interface SweepOptions {
  /** Files not read for this long are deleted (default {@link MAX_AGE_MS}, a week). */
  maxAgeMs?: number;
  /**
   * The folder's bound: past it, files are deleted from the least recently used (by modification time, which a read
   * refreshes once a day) until it holds no more. None by default.
   */
  maxBytes?: number;
  now?: () => number;
}

/**
 * Deletes the files ending in `suffix` under `dir` not read for `maxAgeMs` (no longer used, or kept under another
 * namespace), the least recently used past `maxBytes`, temporary files left by a writer that died, and folders left
 * empty. A folder that does not exist is swept at once.
 */
export async function sweepKeptFiles(dir: string, suffix: string, options: SweepOptions = {}): Promise<SweepResult> {
  const maxAge = options.maxAgeMs ?? MAX_AGE_MS;
  const now = (options.now ?? Date.now)();
  const result: SweepResult = { deleted: 0, kept: 0, keptBytes: 0 };
  const kept: { path: string; mtimeMs: number; size: number }[] = [];
  const remove = (path: string) =>
    unlink(path).catch((err: unknown) => {
      if (errnoCode(err) !== 'ENOENT') throw err;
    });
  const walk = async (folder: string, depth: number): Promise<void> => {
    let entries;
    try {
      entries = await readdir(folder, { withFileTypes: true });
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const path = join(folder, e.name);
      if (e.isDirectory() && depth < 2) {
        await walk(path, depth + 1);
        await rmdir(path).catch((err: unknown) => {
          const code = errnoCode(err);
          if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOENT') throw err;
        });
        continue;
      }
      if (!e.isFile() || !(e.name.endsWith(suffix) || e.name.endsWith('.tmp'))) continue;
      const info = await stat(path).catch((err: unknown) => {
        if (errnoCode(err) === 'ENOENT') return undefined;
        throw err;
      });
      if (!info) continue;
      const temp = e.name.endsWith('.tmp');
      if (now - info.mtimeMs > (temp ? STALE_TEMP_MS : maxAge)) {
        await remove(path);
        result.deleted++;
      } else {
        result.kept++;
        result.keptBytes += info.size;
        if (!temp) kept.push({ path, mtimeMs: info.mtimeMs, size: info.size });
      }
    }
  };
  await walk(dir, 0);
  if (options.maxBytes !== undefined && result.keptBytes > options.maxBytes) {
    kept.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const file of kept) {
      if (result.keptBytes <= options.maxBytes) break;
      await remove(file.path);
      result.deleted++;
      result.kept--;
      result.keptBytes -= file.size;
    }
  }
  return result;
}
