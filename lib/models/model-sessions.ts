/**
 * The models a worker scores, in the cheapest form each can be scored in, cached across shards and windows:
 * recognised Mahalanobis graphs stacked many devices per call, graphs the compiled fast path takes as TypeScript
 * programs, anything else on its own verified onnxruntime session (onnx-session-pool.ts). model.json files are
 * cached by device and version, and checked against the index's sha256 before anything is scored.
 */
import { performance } from 'node:perf_hooks';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { LruCache } from '../lru-cache';
import { keys } from '../shared/keys';
import type { ObjectStore } from '../store/object-store';
import type { IndexEntry, ModelMeta } from './model-meta';
import { CompiledModels, type ProgramOrigin } from './fast-paths/compiled-models';
import { compileModel } from './fast-paths/compile-model';
import type { LinkedProgram } from './fast-paths/graph-evaluator';
import { SavedPrograms } from './fast-paths/saved-programs';
import { MahalanobisBatcher, recognizeMahalanobis, type MahalanobisParams } from './mahalanobis-batch';
import { readModelMeta } from './model-registry';
import { checkFinite, preprocess, readScores, scoresFirstColumn } from './model-output';
import {
  OnnxSessionPool,
  type LoadedModel,
  type ModelSessionCacheStats,
  type ModelSessionObserver,
} from './onnx-session-pool';
import { readVerifiedModel } from './verified-model';
import { ModelChecksumMismatch, ModelInferenceFailed, ModelOutputMismatch, ModelSessionFailed } from '../shared/errors';

/** Sessions a cache keeps by default. */
export const DEFAULT_MAX_SESSIONS = 4096;
/**
 * Sessions a gpu pool worker keeps by default. Each CUDA session holds a memory arena, cuBLAS and cuDNN handles
 * and a stream of its own: measured on an H200 (onnxruntime 1.30, driver 580), about 147 MiB of GPU memory for a
 * 16-feature Mahalanobis model, so that the 969th live session found the GPU full (docs/operations.md, "GPU
 * workers"). 64 of them hold about 9.2 GiB there; a large GPU takes more (`--max-sessions`).
 */
export const GPU_MAX_SESSIONS = 64;
/** Stacked parameter sets a cache keeps by default (about 300 bytes each at K = 8). */
export const DEFAULT_MAX_STACKED_MODELS = 250_000;
/** The largest model.onnx the Mahalanobis recogniser decodes. */
const MAX_STACKED_BYTES = 1 << 20;

/** Options of a {@link ModelSessionCache}. */
export interface ModelSessionCacheOptions {
  /** onnxruntime-node execution providers in order of preference, e.g. `['cuda', 'cpu']`; default `['cpu']`. */
  executionProviders?: readonly InferenceSession.ExecutionProviderConfig[];
  /** Sessions kept before the least recently used is released; default 4096. */
  maxSessions?: number;
  /** Threads per session for one inference. Default 1: a worker runs many small models side by side. */
  intraOpNumThreads?: number;
  /**
   * Profile each new session's first inference and report where its nodes ran (`observer.placement`). The gpu
   * pool sets it: onnxruntime runs operators CUDA lacks (ai.onnx.ml trees, SVMs) on CPU without telling.
   */
  checkPlacement?: boolean;
  observer?: ModelSessionObserver;
  /**
   * Score recognised Mahalanobis models stacked, many devices per inference call (default true). Off, every
   * model gets a session of its own, as any other architecture does.
   */
  batching?: boolean;
  /** Parameter sets of stacked models kept, by sha256; default 250,000 (about 300 bytes each at K = 8). */
  maxStackedModels?: number;
  /** Bytes of compiled fast-path programs kept (with `batching`); default 768 MiB. */
  maxCompiledBytes?: number;
  /**
   * Worker threads that compile models for the fast path, off the event loop; default 2. 0: models compile on the
   * calling thread (a shard thread, itself off the worker's event loop).
   */
  compileThreads?: number;
  /**
   * A folder on this host where compiled programs of large models (forests) are kept across restarts
   * (saved-programs.ts); none by default.
   */
  programsDir?: string;
  /**
   * Read and write saved programs synchronously (a cache on a shard thread, where nothing else waits on the event
   * loop); default false.
   */
  blockingReads?: boolean;
  /**
   * Save compiled programs when told ({@link ModelSessionCache.saveDeferredPrograms}), when evicted or on close,
   * not as they compile (a shard thread saves them once idle); default false.
   */
  deferProgramSaves?: boolean;
}

/**
 * How a device's model is scored: stacked with other devices' Mahalanobis models in one onnxruntime call,
 * compiled into a TypeScript program (named by the family its operators make), or its own session.
 */
export type FastPath = 'stacked-mahalanobis' | `compiled:${LinkedProgram['program']['family']}` | 'session';

/**
 * A device's model in the cheapest form to score: the parameters of a recognised Mahalanobis graph, scored
 * with other devices in one stacked call ({@link ModelSessionCache.scoreStacked}), or a session of its own.
 */
export type PreparedModel =
  | { kind: 'stacked'; path: FastPath; device: string; version: string; meta: ModelMeta; params: MahalanobisParams }
  | {
      kind: 'session';
      path: FastPath;
      device: string;
      version: string;
      meta: ModelMeta;
      model: LoadedModel;
      /** For a compiled program: where it came from (held in memory, the saved-programs folder, compiled now). */
      program?: ProgramOrigin;
      /** For the model's own session, with the fast paths on: why the compiler refused the graph. */
      refused?: string;
    };

/**
 * Every model a worker scores, prepared once and cached: the fast paths' forms (stacked parameters by sha256,
 * compiled programs by sha256 and names) and the sessions of the rest ({@link OnnxSessionPool}: an LRU by
 * sha256, so devices sharing the same bytes share one session), plus their model.json files keyed by device and
 * version (versions are immutable).
 */
export class ModelSessionCache {
  private readonly sessions: OnnxSessionPool;
  private readonly metas: LruCache<string, ModelMeta>;
  /** Devices (store|device|version) whose own model.onnx bytes this cache has read and verified. */
  private readonly verified: LruCache<string, true>;
  private readonly observer: ModelSessionObserver;
  private readonly batching: boolean;
  private readonly maxStackedModels: number;
  /** sha256 -> parameters, or null for a model that is not a stacked-able Mahalanobis graph. */
  private readonly stacked: LruCache<string, MahalanobisParams | null>;
  private readonly batcher: MahalanobisBatcher;
  private readonly compiled: CompiledModels;
  /**
   * Per store (by URI), each device's model as {@link prepareCached} last returned it, returned again while its
   * version and checksum are the ones asked for and its stacked parameters or compiled program are still the ones
   * held: a warm run then makes no key string and no object for a device (each made about 1.8 KB of garbage a device
   * a run: half of what a warm shard allocated, and the collections that go with it).
   */
  private readonly warm = new Map<string, LruCache<string, WarmModel>>();

  constructor(options: ModelSessionCacheOptions = {}) {
    const executionProviders = options.executionProviders ?? ['cpu'];
    const maxSessions = options.maxSessions ?? DEFAULT_MAX_SESSIONS;
    this.observer = options.observer ?? {};
    this.batching = options.batching ?? true;
    this.maxStackedModels = options.maxStackedModels ?? DEFAULT_MAX_STACKED_MODELS;
    const observer = this.observer;
    this.batcher = new MahalanobisBatcher({
      executionProviders,
      ...(options.checkPlacement
        ? { onPlacement: (placement) => observer.placement?.({ session: 'stacked', placement }) }
        : {}),
    });
    const saved = options.programsDir
      ? new SavedPrograms(options.programsDir, {
          blocking: options.blockingReads ?? false,
          ...(observer.warning ? { warn: (m: string) => observer.warning?.(m) } : {}),
        })
      : undefined;
    this.compiled = new CompiledModels({
      maxBytes: options.maxCompiledBytes,
      threads: options.compileThreads,
      deferSaves: options.deferProgramSaves ?? false,
      ...(saved ? { saved } : {}),
    });
    this.sessions = new OnnxSessionPool({
      executionProviders,
      maxSessions,
      intraOpNumThreads: options.intraOpNumThreads ?? 1,
      checkPlacement: options.checkPlacement ?? false,
      observer: this.observer,
      readModel: (store, device, version, sha256) => this.readOwn(store, device, version, sha256),
    });
    this.stacked = new LruCache(this.maxStackedModels);
    // model.json files are small and immutable: keep as many as models are kept, stacked or with a session.
    this.metas = new LruCache(Math.max(maxSessions, this.maxStackedModels));
    this.verified = new LruCache(Math.max(maxSessions, this.maxStackedModels));
  }

  /** Session cache counters (models on a fast path hold no session and count nowhere here). */
  get stats(): ModelSessionCacheStats {
    return this.sessions.stats;
  }

  /** Sessions held now. */
  get size(): number {
    return this.sessions.size;
  }

  /**
   * The device's model at the index entry's version, with a verified, cached session. Throws ModelNotFound,
   * InvalidModel, ModelChecksumMismatch (all non-retryable) or ModelSessionFailed.
   */
  async load(store: ObjectStore, device: string, entry: Pick<IndexEntry, 'version' | 'sha256'>): Promise<LoadedModel> {
    const meta = await this.meta(store, device, entry);
    if (this.sessions.holds(entry.sha256)) await this.verifyOnce(store, device, entry.version, entry.sha256);
    return this.sessions.load(store, device, entry, meta);
  }

  /**
   * The device's model prepared for scoring: a recognised Mahalanobis graph as verified parameters (no session),
   * anything else as a loaded session. Throws what {@link load} throws.
   */
  async prepare(
    store: ObjectStore,
    device: string,
    entry: Pick<IndexEntry, 'version' | 'sha256'>,
  ): Promise<PreparedModel> {
    return this.prepareCached(store, device, entry) ?? this.prepareUncached(store, device, entry);
  }

  /** {@link prepare} for a device that {@link prepareCached} has just missed: the same answer, one lookup fewer. */
  async prepareUncached(
    store: ObjectStore,
    device: string,
    entry: Pick<IndexEntry, 'version' | 'sha256'>,
  ): Promise<PreparedModel> {
    const { version, sha256 } = entry;
    const meta = await this.meta(store, device, entry);
    // Read (and verified) at most once here; a cache hit keyed by the bytes' sha256 (stacked parameters, a compiled
    // program) is used only once this device's own bytes were verified, so the answer does not depend on which
    // device, or which worker, filled the cache.
    // Made by a call, not a named closure: tsx names each named closure it makes, once per cold device here.
    const load = once(() => this.readOwn(store, device, version, sha256));
    if (this.batching && scoresFirstColumn(meta)) {
      let params = this.stacked.get(sha256);
      const hit = params !== undefined;
      if (params === undefined) {
        params = stackedParams(await load(), meta);
        this.stacked.set(sha256, params);
      }
      if (params) {
        await this.verifyOnce(store, device, version, sha256);
        return this.stackedModel(device, version, meta, params, hit);
      }
    }
    if (this.batching) {
      const key = compiledKey(meta, sha256);
      const found = await this.compiled.get(key, load, meta.input.name, meta.output.name, meta.features.length);
      if (found) {
        await this.verifyOnce(store, device, version, sha256);
        return this.compiledPrepared(device, version, meta, found.linked, found.origin);
      }
    }
    const refused = this.batching ? this.compiled.refusal(compiledKey(meta, sha256)) : undefined;
    const model = await this.load(store, device, entry);
    return { kind: 'session', path: 'session', device, version, meta, model, ...(refused ? { refused } : {}) };
  }

  /**
   * The device's model prepared on a fast path when everything that takes is cached here (its model.json, that its
   * bytes were verified, and its stacked parameters or compiled program), without reading or waiting for anything;
   * undefined otherwise: then {@link prepare} it. What a warm worker does for most devices: no promise, closure or
   * store call, where `prepare` makes several of each. The model.json it returns with the model is the one
   * {@link modelMeta} would.
   */
  prepareCached(
    store: ObjectStore,
    device: string,
    entry: Pick<IndexEntry, 'version' | 'sha256'>,
  ): PreparedModel | undefined {
    if (!this.batching) return undefined;
    const { version, sha256 } = entry;
    let byDevice = this.warm.get(store.uri);
    const warm = byDevice?.get(device);
    if (warm && warm.prepared.version === version && warm.prepared.meta.sha256 === sha256) {
      const { prepared, key, held } = warm;
      const still = prepared.kind === 'stacked' ? this.stacked.get(key) : this.compiled.cached(key);
      if (still === held) {
        this.observer.cacheLookup?.(true);
        if (prepared.kind === 'session') this.observer.program?.('cached');
        return prepared;
      }
    }
    const id = this.id(store, device, version);
    const meta = this.metas.get(id);
    if (!meta || meta.sha256 !== sha256 || !this.verified.has(id)) return undefined;
    let made: WarmModel | undefined;
    if (scoresFirstColumn(meta)) {
      const params = this.stacked.get(sha256);
      if (params === undefined) return undefined;
      if (params)
        made = { prepared: this.stackedModel(device, version, meta, params, true), key: sha256, held: params };
    }
    if (!made) {
      const key = compiledKey(meta, sha256);
      const program = this.compiled.cached(key);
      if (!program) return undefined;
      made = { prepared: this.compiledPrepared(device, version, meta, program, 'cached'), key, held: program };
    }
    if (!byDevice) {
      byDevice = new LruCache(this.metas.limit);
      this.warm.set(store.uri, byDevice);
    }
    byDevice.set(device, made);
    return made.prepared;
  }

  /** Starts the compile threads of the fast path now rather than on the first model (a worker does at start). */
  startCompileThreads(): void {
    this.compiled.start();
  }

  /** The device's validated model.json (cached), without reading or compiling the model itself. */
  modelMeta(store: ObjectStore, device: string, entry: Pick<IndexEntry, 'version' | 'sha256'>): Promise<ModelMeta> {
    return this.meta(store, device, entry);
  }

  /**
   * Scores stacked models, many devices per inference call. Returns, per item, its scores or the device-level
   * error (a NaN or infinite score) that fails that device alone.
   */
  async scoreStacked(
    items: readonly { model: Extract<PreparedModel, { kind: 'stacked' }>; x: Float32Array; rows: number }[],
  ): Promise<(Float32Array | ModelOutputMismatch)[]> {
    if (items.length === 0) return [];
    const rows = items.reduce((n, i) => n + i.rows, 0);
    const started = performance.now();
    const scores = await this.batcher.score(
      items.map((i) => ({ params: i.model.params, x: preprocess(i.model.meta, i.x), rows: i.rows })),
    );
    this.observer.inference?.((performance.now() - started) / 1000, rows);
    return items.map((item, j) => {
      const { device, version, meta } = item.model;
      try {
        return checkFinite(scores[j]!, meta.output.name, device, keys.modelOnnx(device, version));
      } catch (err) {
        if (err instanceof ModelOutputMismatch) return err;
        throw err;
      }
    });
  }

  /**
   * Forgets what this cache knows of one device's model files (its model.json, and that its model.onnx bytes were
   * verified): the next `prepare` or `load` reads and checks them again, failing exactly as on a fresh worker when
   * they were deleted or changed. Sessions, stacked parameters and compiled programs stay, keyed by the bytes'
   * sha256.
   */
  forget(store: ObjectStore, device: string, version: string): void {
    const id = this.id(store, device, version);
    this.metas.delete(id);
    this.verified.delete(id);
    this.warm.get(store.uri)?.delete(device);
  }

  /** Saves up to `max` compiled programs whose save was deferred; how many are left. */
  saveDeferredPrograms(max?: number): Promise<number> {
    return this.compiled.saveDeferred(max);
  }

  /**
   * Saves the programs whose save was deferred and releases every session. The cache stays usable: a later `load`
   * creates sessions again.
   */
  async close(): Promise<void> {
    this.metas.clear();
    this.verified.clear();
    this.warm.clear();
    this.stacked.clear();
    await this.batcher.close();
    await this.compiled.close();
    await this.sessions.close();
  }

  /** Recognised Mahalanobis parameters as a prepared model; counts a cache lookup (hit or not) for the observer. */
  private stackedModel(
    device: string,
    version: string,
    meta: ModelMeta,
    params: MahalanobisParams,
    hit: boolean,
  ): PreparedModel {
    this.observer.cacheLookup?.(hit);
    return { kind: 'stacked', path: 'stacked-mahalanobis', device, version, meta, params };
  }

  /** A compiled program as a prepared model; counts a cache lookup (a hit when it was in memory) for the observer. */
  private compiledPrepared(
    device: string,
    version: string,
    meta: ModelMeta,
    program: LinkedProgram,
    origin: ProgramOrigin,
  ): PreparedModel {
    this.observer.cacheLookup?.(origin === 'cached');
    this.observer.program?.(origin);
    const path: FastPath = `compiled:${program.program.family}`;
    const model = new CompiledModel(device, version, meta, program, this.observer);
    return { kind: 'session', path, device, version, meta, model, program: origin };
  }

  private async meta(
    store: ObjectStore,
    device: string,
    entry: Pick<IndexEntry, 'version' | 'sha256'>,
  ): Promise<ModelMeta> {
    const key = this.id(store, device, entry.version);
    let meta = this.metas.get(key);
    if (!meta) {
      meta = await readModelMeta(store, device, entry.version);
      this.metas.set(key, meta);
    }
    if (meta.sha256 !== entry.sha256) {
      const file = keys.modelMeta(device, entry.version);
      throw new ModelChecksumMismatch(device, file, entry.sha256, meta.sha256, keys.modelIndex());
    }
    return meta;
  }

  /** The key of one device's model version in a store, for what this cache knows of its files. */
  private id(store: ObjectStore, device: string, version: string): string {
    return `${store.uri}|${device}|${version}`;
  }

  /** Reads and verifies the device's own model.onnx bytes, and remembers that they were. */
  private async readOwn(store: ObjectStore, device: string, version: string, sha256: string): Promise<Uint8Array> {
    const bytes = await readVerifiedModel(store, device, version, sha256);
    this.verified.set(this.id(store, device, version), true);
    return bytes;
  }

  /** Reads and verifies the device's own model.onnx bytes, unless this cache already has. */
  private async verifyOnce(store: ObjectStore, device: string, version: string, sha256: string): Promise<void> {
    if (!this.verified.has(this.id(store, device, version))) await this.readOwn(store, device, version, sha256);
  }
}

/**
 * A compiled program scored as a session is: model.json's preprocessing, the program, and its output read as scores
 * (a reconstruction's error computed with the reconstruction where the program is a chain of dense layers).
 */
class CompiledModel implements LoadedModel {
  private readonly file: string;

  constructor(
    readonly device: string,
    readonly version: string,
    readonly meta: ModelMeta,
    private readonly program: LinkedProgram,
    private readonly observer: ModelSessionObserver,
  ) {
    this.file = keys.modelOnnx(device, version);
  }

  score(x: Float32Array, rows: number): Promise<Float32Array> {
    // What scoreNow throws rejects the promise.
    return new Promise((resolve) => resolve(this.scoreNow(x, rows)));
  }

  scoreNow(x: Float32Array, rows: number): Float32Array {
    const { device, meta, program, file, observer } = this;
    const k = meta.features.length;
    if (!Number.isInteger(rows) || rows < 0 || x.length !== rows * k) {
      throw new RangeError(`device ${device}: expected ${rows} rows × ${k} features, got ${x.length} values`);
    }
    if (rows === 0) return new Float32Array(0);
    const input = preprocess(meta, x);
    const started = performance.now();
    const error = meta.output.reconstructionError;
    // A chain of dense layers computes a reconstruction's error with the reconstruction, in one call.
    const errors = error && program.reconstructionError(input, rows, k, error);
    if (errors) {
      observer.inference?.((performance.now() - started) / 1000, rows);
      return checkFinite(errors, meta.output.name, device, file);
    }
    let out;
    try {
      out = program.runInScratch(input, rows, k);
    } catch (err) {
      throw new ModelInferenceFailed(device, file, err);
    }
    observer.inference?.((performance.now() - started) / 1000, rows);
    const data = out.type === 'float' ? (out.data as Float32Array) : Float32Array.from(out.data);
    const scores = readScores(new Tensor('float32', data, out.dims), meta, rows, device, file, input);
    // A score column read as it is still lies in the scratch memory the next evaluation reuses: kept as a copy.
    return scores === data ? scores.slice() : scores;
  }
}

/**
 * A device's model as {@link ModelSessionCache.prepareCached} returned it, with what it was made from: the stacked
 * parameters (by the model's sha256) or the compiled program (by its key) it holds, which must still be the cache's.
 */
interface WarmModel {
  prepared: PreparedModel;
  key: string;
  held: MahalanobisParams | LinkedProgram;
}

/**
 * The parameters of a Mahalanobis graph that `meta` scores as it is (stacked), or null. A graph of K features holds
 * K + K² floats: one over 1 MiB (K > 500) is not worth decoding on the event loop's thread (a large forest would
 * block it); the compiled path takes it instead. A feature count that disagrees with model.json goes the session
 * way, which reports it precisely.
 */
function stackedParams(bytes: Uint8Array, meta: ModelMeta): MahalanobisParams | null {
  if (!scoresFirstColumn(meta) || bytes.length > MAX_STACKED_BYTES) return null;
  const params = recognizeMahalanobis(bytes, meta.input.name, meta.output.name);
  return params && params.k === meta.features.length ? params : null;
}

/**
 * The path a worker scores a model on (batching on, its default), and why not a compiled one when it is `session`:
 * what registration reports, so that a model that will cost a session per device is known before its first run.
 * Decided as {@link ModelSessionCache.prepare} decides, on this thread (a 100-tree forest compiles in about 10 ms).
 */
export function fastPathOf(bytes: Uint8Array, meta: ModelMeta): { path: FastPath; reason?: string } {
  if (stackedParams(bytes, meta)) return { path: 'stacked-mahalanobis' };
  const result = compileModel(bytes, meta.input.name, meta.output.name, meta.features.length);
  if ('program' in result) return { path: `compiled:${result.program.family}` };
  return { path: 'session', reason: result.unsupported };
}

/**
 * {@link fastPathOf}, and for a cpu-pool model no fast path takes, a session created on the CPU and released: a model
 * that onnxruntime cannot load (an operator it does not have, an opset it does not know) would otherwise be
 * registered and fail its device at every run. A gpu-pool model is not loaded here: it may use operators only the
 * CUDA provider has. Throws ModelSessionFailed naming the device and `file` (the model as registration was given
 * it).
 */
export async function scoringPathOf(
  device: string,
  bytes: Uint8Array,
  meta: ModelMeta,
  file: string,
): Promise<{ path: FastPath; reason?: string }> {
  const decided = fastPathOf(bytes, meta);
  if (decided.path !== 'session' || meta.pool !== 'cpu') return decided;
  let session: InferenceSession;
  try {
    session = await InferenceSession.create(bytes, { executionProviders: ['cpu'] });
  } catch (err) {
    throw new ModelSessionFailed(device, file, err);
  }
  await session.release();
  return decided;
}

/** `read`, called at most once: its first call's promise, returned to every call. */
function once<T>(read: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | undefined;
  return () => (result ??= read());
}

/** What a compiled program is cached under: the model's bytes and the names and width it is evaluated with. */
function compiledKey(meta: ModelMeta, sha256: string): string {
  return `${sha256}|${meta.input.name}|${meta.output.name}|${meta.features.length}`;
}
