/**
 * Compiled programs of large models (forests) kept in a folder on the worker's host, so that a restarted worker, or
 * another one on the same host, reads a forest's program (about 86 KB and 0.1 ms for 100 trees) instead of
 * compiling it again (about 14 ms of CPU), the way onnxruntime's optimized-model file, TensorRT's engine cache and
 * PyTorch's compile cache keep their compiled forms. Small models (SVMs, PCA, autoencoders) are not kept: they
 * compile in tens of microseconds, less than opening a file costs.
 *
 * Content-addressed and tied to the code: a file is named by the hash of its model's key (sha256, input and output
 * names, feature count) under a folder named by the fingerprint of the compiler's own source and V8's version, so a
 * program is only ever read by the code that wrote it. Files are kept as lib/kept-files.ts keeps them: checksummed
 * (a damaged file is reported, deleted and compiled again, never evaluated), renamed into place whole, and deleted
 * by {@link sweepSavedPrograms} once not read for a week (a worker sweeps at start), which bounds the folder by the
 * models scored lately.
 *
 * A saved program replaces the compile, never the checksum: the device's own model bytes are still read and
 * verified against the index before its program is used (model-sessions.ts).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { KeptFiles, sweepKeptFiles, type KeptFilesStats, type SweepResult } from '../../kept-files';
import { messageOf } from '../../shared/errors';
import type { GraphProgram } from './graph-program';

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
  /** Read and write files synchronously, as a shard thread does (see {@link KeptFilesOptions.blocking}). */
  blocking?: boolean;
}

/** The programs kept in one folder, read and written by key. */
export class SavedPrograms {
  private readonly files: KeptFiles;

  constructor(
    /** The folder (created on the first write). */
    readonly dir: string,
    options: SavedProgramsOptions = {},
  ) {
    this.files = new KeptFiles(dir, compilerFingerprint(), {
      magic: 'FSPG',
      suffix: SUFFIX,
      wording: {
        file: 'saved program',
        instead: 'compiling',
        later: 'it is compiled again next time',
        files: 'saved programs',
      },
      warn: options.warn,
      now: options.now,
      blocking: options.blocking,
    });
  }

  get stats(): KeptFilesStats {
    return this.files.stats;
  }

  /** The file that holds the program of `key`. */
  fileOf(key: string): string {
    return this.files.fileOf(key);
  }

  /** The program saved for `key`, or undefined when there is none (or it could not be read: then a warning). */
  async read(key: string): Promise<GraphProgram | undefined> {
    let program: GraphProgram | undefined;
    const found = await this.files.read(key, (data) => {
      const decoded = decode(data, key);
      if (typeof decoded === 'string') return decoded;
      program = decoded;
      return undefined;
    });
    return found && program;
  }

  /** Saves the program of `key`; a failure is a warning (the program is compiled again next time), never thrown. */
  write(key: string, program: GraphProgram): Promise<void> {
    return this.files.write(key, serialize({ key, program }));
  }
}

/**
 * Deletes the programs of `dir` not read for a week (or `maxAgeMs`): of models no longer scored, or written by
 * another version of the compiler; see {@link sweepKeptFiles}.
 */
export function sweepSavedPrograms(
  dir: string,
  options: { maxAgeMs?: number; now?: () => number } = {},
): Promise<SweepResult> {
  return sweepKeptFiles(dir, SUFFIX, options);
}

/** The program in a file's data, or why it is not one. */
function decode(payload: Buffer, key: string): GraphProgram | string {
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
