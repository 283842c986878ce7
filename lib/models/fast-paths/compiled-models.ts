/**
 * The compiled-graph fast path's cache: programs by model checksum and output, bounded by the bytes they hold (a
 * 25-tree forest from skl2onnx about 23 KB, an SVM a few kilobytes), compiled in worker threads (small models on
 * the calling thread, where they cost less than the round trip to a thread). A model the fast path does not take
 * is remembered as such, so its bytes are read once and it goes to its own session.
 *
 * A fleet scored every hour in the same order defeats a plain least-recently-used cache once its programs outgrow
 * the budget: each new program evicts one the same run needs later, and the next hour finds none of them. So a
 * program is cached only while that costs no program used in the last {@link PROTECTED_MS}: a fleet larger than
 * the budget keeps the same share compiled hour after hour (the rest compile each hour, used and dropped), and
 * programs of models no longer scored make room once they are older than that.
 */
import { LruCache } from '../../lru-cache';
import { compileModel } from './compile-model';
import { CompileThreads } from './compile-threads';
import { linkProgram, type LinkedProgram } from './graph-evaluator';
import type { GraphProgram } from './graph-program';
import { graphOpTypes } from './onnx-reader';
import type { SavedPrograms } from './saved-programs';
import { UnsupportedGraph } from './tensor';

/**
 * Bytes of compiled programs a worker keeps by default (shared out among its shard threads): about 35,000 forests
 * of 25 trees from skl2onnx (23 KB each); chosen with the parsed-parts budget (DEFAULT_AGGREGATES_BYTES) so that
 * a worker scoring 100,000 forests stays within 4 GB.
 */
export const DEFAULT_MAX_COMPILED_BYTES = 768 * 2 ** 20;

/** Options of a {@link CompiledModels} cache. */
export interface CompiledModelsOptions {
  /** Bytes of compiled programs kept before the least recently used is dropped; default 768 MiB. */
  maxBytes?: number;
  /**
   * Compile threads; default 2. 0: every model compiles on the calling thread, for a caller that is itself a
   * thread off the worker's event loop (a shard thread).
   */
  threads?: number;
  /**
   * Models of at most this many bytes (and {@link INLINE_MAX_NODES} nodes) compile on the calling thread; default
   * {@link INLINE_MAX_BYTES}. Any other (a forest) compiles on a compile thread, never on the event loop's.
   */
  inlineMaxBytes?: number;
  /** The clock programs' last uses are read from (ms); default Date.now. */
  now?: () => number;
  /**
   * Where programs of models over {@link CompiledModelsOptions.saveMinBytes} are kept across restarts (read before
   * compiling, written after); none by default.
   */
  saved?: SavedPrograms;
  /** The smallest model whose program is saved; default {@link INLINE_MAX_BYTES} (smaller ones compile faster). */
  saveMinBytes?: number;
  /**
   * Save a compiled program later, not as it compiles: when {@link CompiledModels.saveDeferred} is called (a shard
   * thread calls it once idle), when the program is evicted, or on {@link CompiledModels.close}. A cold run then
   * waits on no file creation (9 % of a cold forest thread's time under load). Default false.
   */
  deferSaves?: boolean;
}

/** Where a program came from: this cache's memory, the saved-programs folder, or a compile just now. */
export const PROGRAM_ORIGINS = ['cached', 'saved', 'compiled'] as const;
export type ProgramOrigin = (typeof PROGRAM_ORIGINS)[number];

/** A program and where it came from. */
export interface FoundProgram {
  linked: LinkedProgram;
  origin: ProgramOrigin;
}

/** A cached program and when it was last used. */
interface Held {
  linked: LinkedProgram;
  usedAt: number;
}

/**
 * The largest model compiled on the calling thread. An SVM, PCA or autoencoder of a few kilobytes compiles there
 * in about 0.1 ms, a third to a fifth of what sending its bytes to a compile thread and its program back costs
 * the process (docs/benchmarks.md); a forest of 25 trees (190 KB) takes about 10 ms, which the event loop must
 * not spend.
 */
export const INLINE_MAX_BYTES = 64 * 1024;

/**
 * The most nodes a model compiled on the calling thread has: a forest's trees take about 27 nodes each and cost
 * far more per byte than an SVM's support vectors, so even a two-tree forest goes to a compile thread, and so does
 * any graph with a tree ensemble node (a classifier's forest is one node: a 27 KB XGBoost model compiles in about
 * 0.5 ms).
 */
export const INLINE_MAX_NODES = 32;

/**
 * How long after its last use a program is never evicted for a newer one: longer than a run, shorter than an hour,
 * so programs an hourly run used are still there for the next one.
 */
export const PROTECTED_MS = 45 * 60_000;

/** Models the fast path did not take, remembered by key (a few dozen bytes each). */
const MAX_REFUSED = 100_000;

/** Compiled programs, least recently used first, within a byte budget. */
export class CompiledModels {
  private readonly programs: LruCache<string, Held>;
  private readonly refused = new LruCache<string, string>(MAX_REFUSED);
  private readonly inFlight = new Map<string, Promise<FoundProgram | undefined>>();
  private readonly threads: CompileThreads | undefined;
  private readonly inlineMaxBytes: number;
  private readonly now: () => number;
  private readonly saved: SavedPrograms | undefined;
  private readonly saveMinBytes: number;
  private readonly deferSaves: boolean;
  /** With `deferSaves`: programs compiled and held in `programs` but not saved yet, oldest first. */
  private readonly unsaved = new Map<string, GraphProgram>();
  /** Saves of evicted programs under way (never awaited by a compile; awaited by close). */
  private readonly evictedSaves = new Set<Promise<void>>();

  constructor(options: CompiledModelsOptions = {}) {
    // A program evicted before its deferred save is saved now, while it is still at hand.
    this.programs = new LruCache(options.maxBytes ?? DEFAULT_MAX_COMPILED_BYTES, (key) => this.saveEvicted(key));
    const threads = options.threads ?? 2;
    this.threads = threads === 0 ? undefined : new CompileThreads(threads);
    this.inlineMaxBytes = options.inlineMaxBytes ?? INLINE_MAX_BYTES;
    this.now = options.now ?? Date.now;
    this.saved = options.saved;
    this.saveMinBytes = options.saveMinBytes ?? INLINE_MAX_BYTES;
    this.deferSaves = options.deferSaves ?? false;
  }

  /** Starts every compile thread now. */
  start(): void {
    this.threads?.start();
  }

  /** Compile threads running now: none until a model over the inline limit comes (or {@link start}). */
  get threadsRunning(): number {
    return this.threads?.running ?? 0;
  }

  /** Bytes held by cached programs now. */
  get heldBytes(): number {
    return this.programs.weight;
  }

  /** Whether `key` was compiled (true), refused (false) or not seen yet (undefined), without loading anything. */
  known(key: string): boolean | undefined {
    return this.programs.has(key) ? true : this.refused.has(key) ? false : undefined;
  }

  /** The program of `key` when it is compiled and held now (counted as a use), without waiting for anything. */
  cached(key: string): LinkedProgram | undefined {
    const hit = this.programs.get(key);
    if (hit) hit.usedAt = this.now();
    return hit?.linked;
  }

  /**
   * The program computing `output` from `input` ([rows, features] float32) for the model `key` (sha256, names
   * and feature count), read from the saved-programs folder or compiled from `load()`'s bytes on a miss;
   * undefined when the fast path does not take it.
   */
  async get(
    key: string,
    load: () => Promise<Uint8Array>,
    input: string,
    output: string,
    features: number,
  ): Promise<FoundProgram | undefined> {
    const hit = this.cached(key);
    if (hit) return { linked: hit, origin: 'cached' };
    if (this.refused.has(key)) return undefined;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.compile(key, load, input, output, features).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  /** Why the fast path refused `key`, when it did. */
  refusal(key: string): string | undefined {
    return this.refused.get(key);
  }

  /** Programs whose save is deferred (see {@link CompiledModelsOptions.deferSaves}) and not done yet. */
  get unsavedCount(): number {
    return this.unsaved.size;
  }

  /**
   * Saves up to `max` programs whose save was deferred, oldest first; how many are left. A failed save is a
   * warning of the saved-programs folder, as any is.
   */
  async saveDeferred(max = Infinity): Promise<number> {
    for (let n = 0; n < max; n++) {
      const key = this.unsaved.keys().next().value;
      if (key === undefined) break;
      await this.saveNow(key);
    }
    return this.unsaved.size;
  }

  /** Saves every deferred program, then drops every program and ends the compile threads. */
  async close(): Promise<void> {
    await this.saveDeferred();
    await Promise.all(this.evictedSaves);
    this.programs.clear();
    this.refused.clear();
    await this.threads?.close();
  }

  /** Whether `bytes` compile on the calling thread (malformed ones do too: they fail at once, naming why). */
  private small(bytes: Uint8Array): boolean {
    if (bytes.length > this.inlineMaxBytes) return false;
    try {
      // A tree ensemble costs far more per byte than the models the limits were set for, in one node or in many.
      const ops = graphOpTypes(bytes, INLINE_MAX_NODES);
      return ops !== undefined && !ops.some((op) => op.startsWith('TreeEnsemble'));
    } catch (err) {
      if (err instanceof UnsupportedGraph) return true;
      throw err;
    }
  }

  private async compile(
    key: string,
    load: () => Promise<Uint8Array>,
    input: string,
    output: string,
    features: number,
  ): Promise<FoundProgram | undefined> {
    const bytes = await load();
    const saved = bytes.length >= this.saveMinBytes ? this.saved : undefined;
    let program: GraphProgram | undefined = await saved?.read(key);
    const origin = program ? 'saved' : 'compiled';
    if (!program) {
      const result =
        !this.threads || this.small(bytes)
          ? compileModel(bytes, input, output, features)
          : await this.threads.compile(bytes, input, output, features);
      if ('unsupported' in result) {
        this.refused.set(key, result.unsupported);
        return undefined;
      }
      program = result.program;
    }
    const linked = linkProgram(program);
    const held = this.admits(program.bytes);
    if (held) this.programs.set(key, { linked, usedAt: this.now() }, program.bytes);
    if (saved && origin === 'compiled') {
      // Deferred only while held: a program not cached would be gone by the time of its save.
      if (this.deferSaves && held) this.unsaved.set(key, program);
      else await saved.write(key, program);
    }
    return { linked, origin };
  }

  /** Starts saving the deferred program of `key`, evicted, if it has one (at once with blocking saves). */
  private saveEvicted(key: string): void {
    if (!this.unsaved.has(key)) return;
    const saving = this.saveNow(key).finally(() => this.evictedSaves.delete(saving));
    this.evictedSaves.add(saving);
  }

  /** Saves the deferred program of `key`, if it has one. */
  private async saveNow(key: string): Promise<void> {
    const program = this.unsaved.get(key);
    if (!program) return;
    this.unsaved.delete(key);
    await this.saved?.write(key, program);
  }

  /** Whether a new program of `weight` bytes is cached: it fits, or the oldest program is past its protection. */
  private admits(weight: number): boolean {
    if (this.programs.weight + weight <= this.programs.limit) return true;
    const oldest = this.programs.oldest();
    return oldest === undefined || this.now() - oldest.usedAt > PROTECTED_MS;
  }
}
