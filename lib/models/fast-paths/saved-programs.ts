/**
 * Compiled programs of large models (forests) kept in a folder on the worker's host, so that a restarted worker, or
 * another one on the same host, reads a forest's program (about 86 KB and 0.1 ms for 100 trees) instead of
 * compiling it again (about 14 ms of CPU), the way onnxruntime's optimized-model file, TensorRT's engine cache and
 * PyTorch's compile cache keep their compiled forms. Small models (SVMs, PCA, autoencoders) are not kept: they
 * compile in tens of microseconds, less than opening a file costs.
 *
 * Content-addressed and tied to the code: a file is named by the hash of its model's key (sha256, input and output
 * names, feature count) under a folder named by the fingerprint of the compiler's own source and V8's version, so a
 * program is only ever read by the code that wrote it. Each file carries the sha256 of its contents: a damaged file
 * is reported, deleted and compiled again, never evaluated. Files are written under a temporary name and renamed,
 * so a reader never sees half a file. A file not read for {@link MAX_AGE_MS} is deleted by
 * {@link sweepSavedPrograms} (a worker sweeps at start), which bounds the folder by the models scored lately.
 *
 * A saved program replaces the compile, never the checksum: the device's own model bytes are still read and
 * verified against the index before its program is used (model-sessions.ts).
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  futimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, open, readdir, rename, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { threadId } from 'node:worker_threads';
import { readOpenFileSync } from '../../read-sync';
import { errnoCode, messageOf } from '../../shared/errors';
import type { GraphProgram } from './graph-program';

/** A file not read for this long is deleted by a sweep (a week: a model scored hourly, or daily, stays). */
export const MAX_AGE_MS = 7 * 24 * 3_600_000;

/** A file's modification time, its last use, is refreshed on a read once it is this old (one write a day at most). */
const REFRESH_MS = 24 * 3_600_000;

/** The least time between two warnings of one folder: a folder that cannot be written must not flood the log. */
const WARN_EVERY_MS = 60_000;

/** A temporary file this old was left by a writer that died; a sweep deletes it. */
const STALE_TEMP_MS = 3_600_000;

const MAGIC = Buffer.from('FSPG');
const HEADER_BYTES = MAGIC.length + 32;
const SUFFIX = '.prog';

let fingerprint: string | undefined;

/**
 * The fingerprint of this compiler: a hash of the fast path's source files (this folder) and V8's version. Any
 * change to how programs are built or evaluated changes it, and with it the folder programs are read from.
 */
export function compilerFingerprint(): string {
  if (fingerprint === undefined) {
    const hash = createHash('sha256').update(process.versions.v8);
    for (const name of readdirSync(__dirname).sort()) {
      if (!/\.(ts|js)$/.test(name) || name.endsWith('.d.ts')) continue;
      hash.update(name).update(readFileSync(join(__dirname, name)));
    }
    fingerprint = hash.digest('hex').slice(0, 16);
  }
  return fingerprint;
}

/** Options of a {@link SavedPrograms} folder. */
export interface SavedProgramsOptions {
  /**
   * Told of a file that could not be read or written (the model is compiled instead), never of a miss: at most once
   * a minute, with the count of problems since the last warning.
   */
  warn?: (message: string) => void;
  /** The clock of last uses (ms); default Date.now. */
  now?: () => number;
  /**
   * Read and write files synchronously: for a folder used from a thread of its own (a shard thread), where nothing
   * else waits on its event loop. About 110 µs to read a 100-tree forest's program against 430 µs through
   * fs/promises.
   */
  blocking?: boolean;
}

/** Counters of a {@link SavedPrograms} folder, for logs and tests. */
export interface SavedProgramsStats {
  /** Programs read from the folder. */
  read: number;
  /** Programs written to it. */
  written: number;
  /** Files found damaged (deleted). */
  damaged: number;
}

/** The programs kept in one folder, read and written by key. */
export class SavedPrograms {
  readonly stats: SavedProgramsStats = { read: 0, written: 0, damaged: 0 };
  private readonly report: (message: string) => void;
  private readonly now: () => number;
  private readonly blocking: boolean;
  private temps = 0;
  private lastWarning = -Infinity;
  private unreported = 0;

  constructor(
    /** The folder (created on the first write). */
    readonly dir: string,
    options: SavedProgramsOptions = {},
  ) {
    this.report = options.warn ?? ((message) => process.emitWarning(message));
    this.now = options.now ?? Date.now;
    this.blocking = options.blocking ?? false;
  }

  /** The file that holds the program of `key`. */
  fileOf(key: string): string {
    const name = createHash('sha256').update(key).digest('hex');
    return join(this.dir, compilerFingerprint(), name.slice(0, 2), name + SUFFIX);
  }

  /** The program saved for `key`, or undefined when there is none (or it could not be read: then a warning). */
  async read(key: string): Promise<GraphProgram | undefined> {
    const file = this.fileOf(key);
    let bytes: Buffer;
    try {
      bytes = this.blocking ? this.readBlocking(file) : await this.readFile(file);
    } catch (err) {
      const code = errnoCode(err);
      if (code !== 'ENOENT' && code !== 'ENOTDIR')
        this.warn(`saved program ${file} could not be read (${messageOf(err)}): compiling`);
      return undefined;
    }
    const program = decode(bytes, key);
    if (typeof program === 'string') {
      this.stats.damaged++;
      this.warn(`saved program ${file} is damaged (${program}): deleted, compiling again`);
      await unlink(file).catch((err: unknown) => {
        if (errnoCode(err) !== 'ENOENT') this.warn(`saved program ${file} could not be deleted (${messageOf(err)})`);
      });
      return undefined;
    }
    this.stats.read++;
    return program;
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

  /** Saves the program of `key`; a failure is a warning (the program is compiled again next time), never thrown. */
  async write(key: string, program: GraphProgram): Promise<void> {
    const file = this.fileOf(key);
    const payload = serialize({ key, program });
    const digest = createHash('sha256').update(payload).digest();
    const temp = `${file}.${process.pid}-${threadId}-${this.temps++}.tmp`;
    const bytes = Buffer.concat([MAGIC, digest, payload]);
    try {
      // The folder is made when a write finds it missing (the first into it, or after a sweep removed it empty).
      if (this.blocking) {
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
      this.warn(`program could not be saved to ${file} (${messageOf(err)}): it is compiled again next time`);
      await unlink(temp).catch(() => undefined);
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
      this.unreported > 0 ? ` (and ${this.unreported} more problems with saved programs since the last)` : '';
    this.report(message + more);
    this.lastWarning = now;
    this.unreported = 0;
  }
}

/** What a sweep of a programs folder did. */
export interface SweepResult {
  /** Files deleted: not read for the maximum age, or temporary files left by a writer that died. */
  deleted: number;
  /** Files kept, and their bytes. */
  kept: number;
  keptBytes: number;
}

/**
 * Deletes the files of `dir` not read for `maxAgeMs` (programs of models no longer scored, or written by another
 * version of the compiler), temporary files left by a writer that died, and folders left empty. A folder that does
 * not exist is swept at once.
 */
export async function sweepSavedPrograms(
  dir: string,
  options: { maxAgeMs?: number; now?: () => number } = {},
): Promise<SweepResult> {
  const maxAge = options.maxAgeMs ?? MAX_AGE_MS;
  const now = (options.now ?? Date.now)();
  const result: SweepResult = { deleted: 0, kept: 0, keptBytes: 0 };
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
      if (!e.isFile() || !(e.name.endsWith(SUFFIX) || e.name.endsWith('.tmp'))) continue;
      const info = await stat(path).catch((err: unknown) => {
        if (errnoCode(err) === 'ENOENT') return undefined;
        throw err;
      });
      if (!info) continue;
      const age = now - info.mtimeMs;
      if (age > (e.name.endsWith('.tmp') ? STALE_TEMP_MS : maxAge)) {
        await unlink(path).catch((err: unknown) => {
          if (errnoCode(err) !== 'ENOENT') throw err;
        });
        result.deleted++;
      } else {
        result.kept++;
        result.keptBytes += info.size;
      }
    }
  };
  await walk(dir, 0);
  return result;
}

/** The program in a file's bytes, or why they are not one. */
function decode(bytes: Buffer, key: string): GraphProgram | string {
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return 'not a saved program';
  const payload = bytes.subarray(HEADER_BYTES);
  const digest = createHash('sha256').update(payload).digest();
  if (!digest.equals(bytes.subarray(MAGIC.length, HEADER_BYTES))) return 'checksum mismatch';
  let value: unknown;
  try {
    value = deserialize(payload);
  } catch (err) {
    return `unreadable: ${messageOf(err)}`;
  }
  const saved = value as { key?: unknown; program?: Partial<GraphProgram> } | null;
  if (saved?.key !== key) return 'saved for another model';
  if (!Array.isArray(saved.program?.nodes)) return 'no program';
  return saved.program as GraphProgram;
}
