/**
 * ONNX Runtime sessions for the models a worker scores, cached across shards and windows. A session is created
 * only after the model's bytes match the sha256 in the index and in model.json, and is released when evicted.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { LruCache } from '../lru-cache';
import { keys } from '../shared/keys';
import type { ObjectStore } from '../store/object-store';
import type { IndexEntry, ModelMeta } from './model-meta';
import { CompiledModels } from './fast-paths/compiled-models';
import type { LinkedProgram } from './fast-paths/graph-evaluator';
import { MahalanobisBatcher, recognizeMahalanobis, type MahalanobisParams } from './mahalanobis-batch';
import { readModelMeta, sha256Hex } from './model-registry';
import { readProfiles, type NodePlacement } from './provider-probe';
import {
  ModelChecksumMismatch,
  ModelInferenceFailed,
  ModelNotFound,
  ModelOutputMismatch,
  ModelSessionFailed,
} from '../shared/errors';
import { reconstructionError } from './reconstruction-error';

/** The largest model.onnx the Mahalanobis recogniser decodes. */
const MAX_STACKED_BYTES = 1 << 20;

/** Where a new session's nodes ran on its first inference, as onnxruntime's profiler recorded it. */
export interface SessionPlacement {
  device: string;
  version: string;
  sha256: string;
  placement: NodePlacement;
}

/** Hooks for worker metrics and logs; every hook is optional and must not throw. */
export interface ModelSessionObserver {
  /** A model lookup: `hit` when its session was cached (or being created), else a new session was created. */
  cacheLookup?(hit: boolean): void;
  /** One inference call: its wall time and the rows it scored. */
  inference?(seconds: number, rows: number): void;
  /** Where a new session's nodes ran (only with `checkPlacement`). */
  placement?(placement: SessionPlacement): void;
}

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
  /** Bytes of compiled fast-path programs kept (with `batching`); default 1 GiB. */
  maxCompiledBytes?: number;
  /** Worker threads that compile models for the fast path, off the event loop; default 2. */
  compileThreads?: number;
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
  | { kind: 'session'; path: FastPath; device: string; version: string; meta: ModelMeta; model: LoadedModel };

/** A model ready to score: its validated model.json and a function from feature rows to scores. */
export interface LoadedModel {
  readonly device: string;
  readonly version: string;
  readonly meta: ModelMeta;
  /** Scores `rows` rows of `meta.features.length` float32 features (row-major); one score per row. */
  score(x: Float32Array, rows: number): Promise<Float32Array>;
}

/**
 * Whether a score is anomalous under the model's rule: strictly above or strictly below the threshold (so a
 * OneClassSVM / IsolationForest decision_function of exactly 0 is normal, as in scikit-learn). NaN is never
 * anomalous: callers should treat a non-finite score as a failed row.
 */
export function isAnomaly(meta: Pick<ModelMeta, 'anomalyWhen' | 'threshold'>, score: number): boolean {
  return meta.anomalyWhen === 'above' ? score > meta.threshold : score < meta.threshold;
}

interface SessionEntry {
  session: InferenceSession;
  inFlight: number;
  evicted: boolean;
  released: boolean;
  /** The folder the session profiles its first inference into, until that profile has been read. */
  profileDir?: string;
  placement?: Omit<SessionPlacement, 'placement'>;
}

/** Cache counters, for worker metrics and tests. */
export interface ModelSessionCacheStats {
  hits: number;
  misses: number;
  evictions: number;
}

/**
 * An LRU cache of ONNX Runtime sessions keyed by the model's sha256 (devices sharing the same bytes share one
 * session), plus their model.json files keyed by device and version (versions are immutable). An evicted session
 * is released once no inference is running on it; a `LoadedModel` whose session was evicted transparently
 * loads (and re-verifies) it again.
 */
export class ModelSessionCache {
  readonly stats: ModelSessionCacheStats = { hits: 0, misses: 0, evictions: 0 };
  private readonly sessions: LruCache<string, SessionEntry>;
  private readonly pending = new Map<string, Promise<SessionEntry>>();
  /** Sessions the last insertion evicted, released (once idle) by `acquire`. */
  private evicted: SessionEntry[] = [];
  private readonly metas: LruCache<string, ModelMeta>;
  /** Devices (store|device|version) whose own model.onnx bytes this cache has read and verified. */
  private readonly verified: LruCache<string, true>;
  private readonly executionProviders: readonly InferenceSession.ExecutionProviderConfig[];
  private readonly maxSessions: number;
  private readonly intraOpNumThreads: number;
  private readonly checkPlacement: boolean;
  private readonly observer: ModelSessionObserver;
  private readonly batching: boolean;
  private readonly maxStackedModels: number;
  /** sha256 -> parameters, or null for a model that is not a stacked-able Mahalanobis graph. */
  private readonly stacked: LruCache<string, MahalanobisParams | null>;
  private readonly batcher: MahalanobisBatcher;
  private readonly compiled: CompiledModels;

  constructor(options: ModelSessionCacheOptions = {}) {
    this.executionProviders = options.executionProviders ?? ['cpu'];
    this.checkPlacement = options.checkPlacement ?? false;
    this.observer = options.observer ?? {};
    this.maxSessions = options.maxSessions ?? 4096;
    this.intraOpNumThreads = options.intraOpNumThreads ?? 1;
    this.batching = options.batching ?? true;
    this.maxStackedModels = options.maxStackedModels ?? 250_000;
    this.batcher = new MahalanobisBatcher(this.executionProviders);
    this.compiled = new CompiledModels({ maxBytes: options.maxCompiledBytes, threads: options.compileThreads });
    if (!Number.isInteger(this.maxSessions) || this.maxSessions < 1) {
      throw new RangeError('maxSessions must be an integer of at least 1');
    }
    this.sessions = new LruCache(this.maxSessions, (_, victim) => this.evicted.push(victim));
    this.stacked = new LruCache(this.maxStackedModels);
    // model.json files are small and immutable: keep as many as models are kept, stacked or with a session.
    this.metas = new LruCache(Math.max(this.maxSessions, this.maxStackedModels));
    this.verified = new LruCache(Math.max(this.maxSessions, this.maxStackedModels));
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
    const { version } = entry;
    const meta = await this.meta(store, device, entry);
    const file = keys.modelOnnx(device, version);
    if (this.sessions.has(entry.sha256) || this.pending.has(entry.sha256)) {
      await this.verifyOnce(store, device, version, entry.sha256);
    }
    let current = await this.acquire(store, device, version, entry.sha256);
    const { session } = current;
    if (!session.inputNames.includes(meta.input.name)) {
      throw new ModelOutputMismatch(`session has no input ${meta.input.name}`, device, file, 'input.name');
    }
    if (!session.outputNames.includes(meta.output.name)) {
      throw new ModelOutputMismatch(`session has no output ${meta.output.name}`, device, file, 'output.name');
    }
    return {
      device,
      version,
      meta,
      score: async (x, rows) => {
        if (current.evicted) current = await this.acquire(store, device, version, entry.sha256);
        return this.score(current, device, version, meta, x, rows);
      },
    };
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
    const { version, sha256 } = entry;
    const meta = await this.meta(store, device, entry);
    // Read (and verified) at most once here; a cache hit keyed by the bytes' sha256 (stacked parameters, a compiled
    // program) is used only once this device's own bytes were verified, so the answer does not depend on which
    // device, or which worker, filled the cache.
    let bytes: Promise<Uint8Array> | undefined;
    const load = () => (bytes ??= this.readOwn(store, device, version, sha256));
    const verified = async () => {
      if (!bytes && !this.verified.has(this.id(store, device, version))) await load();
    };
    if (this.batching && meta.output.column === 0 && !meta.output.reconstructionError) {
      let params = this.stacked.get(sha256);
      const hit = params !== undefined;
      if (params === undefined) {
        // A Mahalanobis graph of K features holds K + K² floats: one over 1 MiB (K > 500) is not worth decoding
        // here, on the event loop's thread (a large forest would block it); the compiled path takes it instead.
        const bytes = await load();
        params =
          bytes.length > MAX_STACKED_BYTES
            ? null
            : (recognizeMahalanobis(bytes, meta.input.name, meta.output.name) ?? null);
        // A feature count that disagrees with model.json goes the session way, which reports it precisely.
        if (params && params.k !== meta.features.length) params = null;
        this.stacked.set(sha256, params);
      }
      if (params) {
        await verified();
        this.observer.cacheLookup?.(hit);
        return { kind: 'stacked', path: 'stacked-mahalanobis', device, version, meta, params };
      }
    }
    if (this.batching) {
      const key = `${sha256}|${meta.input.name}|${meta.output.name}|${meta.features.length}`;
      const hit = this.compiled.known(key) === true;
      const program = await this.compiled.get(key, load, meta.input.name, meta.output.name, meta.features.length);
      if (program) {
        await verified();
        this.observer.cacheLookup?.(hit);
        const path: FastPath = `compiled:${program.program.family}`;
        return {
          kind: 'session',
          path,
          device,
          version,
          meta,
          model: this.compiledModel(device, version, meta, program),
        };
      }
    }
    return { kind: 'session', path: 'session', device, version, meta, model: await this.load(store, device, entry) };
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
  }

  /** Releases every session. The cache stays usable: a later `load` creates sessions again. */
  async close(): Promise<void> {
    const entries = this.sessions.values();
    this.sessions.clear();
    this.metas.clear();
    this.verified.clear();
    this.stacked.clear();
    await this.batcher.close();
    await this.compiled.close();
    await Promise.all(entries.map((e) => this.evict(e)));
  }

  /** A compiled program as a LoadedModel: preprocessing, evaluation and the score read as a session's is. */
  private compiledModel(device: string, version: string, meta: ModelMeta, program: LinkedProgram): LoadedModel {
    const file = keys.modelOnnx(device, version);
    const k = meta.features.length;
    return {
      device,
      version,
      meta,
      score: (x, rows) => {
        if (!Number.isInteger(rows) || rows < 0 || x.length !== rows * k) {
          throw new RangeError(`device ${device}: expected ${rows} rows × ${k} features, got ${x.length} values`);
        }
        if (rows === 0) return Promise.resolve(new Float32Array(0));
        const input = preprocess(meta, x);
        const started = performance.now();
        let out;
        try {
          out = program.run(input, rows, k);
        } catch (err) {
          return Promise.reject(new ModelInferenceFailed(device, file, err));
        }
        this.observer.inference?.((performance.now() - started) / 1000, rows);
        const data = out.type === 'float' ? (out.data as Float32Array) : Float32Array.from(out.data);
        return Promise.resolve(readScores(new Tensor('float32', data, out.dims), meta, rows, device, file, input));
      },
    };
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
    const bytes = await readVerified(store, device, version, sha256);
    this.verified.set(this.id(store, device, version), true);
    return bytes;
  }

  /** Reads and verifies the device's own model.onnx bytes, unless this cache already has. */
  private async verifyOnce(store: ObjectStore, device: string, version: string, sha256: string): Promise<void> {
    if (!this.verified.has(this.id(store, device, version))) await this.readOwn(store, device, version, sha256);
  }

  private async acquire(store: ObjectStore, device: string, version: string, sha256: string): Promise<SessionEntry> {
    const hit = this.sessions.get(sha256);
    if (hit) {
      this.stats.hits += 1;
      this.observer.cacheLookup?.(true);
      return hit;
    }
    const inProgress = this.pending.get(sha256);
    if (inProgress) {
      this.stats.hits += 1;
      this.observer.cacheLookup?.(true);
      return inProgress;
    }
    this.stats.misses += 1;
    this.observer.cacheLookup?.(false);
    const created = this.create(store, device, version, sha256).finally(() => this.pending.delete(sha256));
    this.pending.set(sha256, created);
    const entry = await created;
    this.sessions.set(sha256, entry);
    const victims = this.evicted.splice(0);
    for (const victim of victims) {
      this.stats.evictions += 1;
      await this.evict(victim);
    }
    return entry;
  }

  private async create(store: ObjectStore, device: string, version: string, sha256: string): Promise<SessionEntry> {
    const file = keys.modelOnnx(device, version);
    const bytes = await this.readOwn(store, device, version, sha256);
    const profileDir = this.checkPlacement ? await mkdtemp(join(tmpdir(), 'fleetscore-ort-')) : undefined;
    try {
      const session = await InferenceSession.create(bytes, {
        executionProviders: this.executionProviders,
        graphOptimizationLevel: 'all',
        intraOpNumThreads: this.intraOpNumThreads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        ...(profileDir ? { enableProfiling: true, profileFilePrefix: join(profileDir, 'session') } : {}),
      });
      return {
        session,
        inFlight: 0,
        evicted: false,
        released: false,
        ...(profileDir ? { profileDir, placement: { device, version, sha256 } } : {}),
      };
    } catch (err) {
      if (profileDir) await rm(profileDir, { recursive: true, force: true });
      throw new ModelSessionFailed(device, file, err);
    }
  }

  /** Marks the entry evicted and releases it now, or when its last running inference finishes. */
  private async evict(entry: SessionEntry): Promise<void> {
    entry.evicted = true;
    if (entry.inFlight === 0) await release(entry);
  }

  private async score(
    entry: SessionEntry,
    device: string,
    version: string,
    meta: ModelMeta,
    x: Float32Array,
    rows: number,
  ): Promise<Float32Array> {
    const k = meta.features.length;
    if (!Number.isInteger(rows) || rows < 0 || x.length !== rows * k) {
      throw new RangeError(`device ${device}: expected ${rows} rows × ${k} features, got ${x.length} values`);
    }
    if (rows === 0) return new Float32Array(0);
    const input = preprocess(meta, x);
    entry.inFlight += 1;
    let result: InferenceSession.ReturnType;
    const started = performance.now();
    try {
      const feeds = { [meta.input.name]: new Tensor('float32', input, [rows, k]) };
      result = await entry.session.run(feeds, [meta.output.name]).catch((err: unknown) => {
        throw new ModelInferenceFailed(device, keys.modelOnnx(device, version), err);
      });
      this.observer.inference?.((performance.now() - started) / 1000, rows);
      if (entry.profileDir) await this.reportPlacement(entry);
    } finally {
      entry.inFlight -= 1;
      if (entry.evicted && entry.inFlight === 0) await release(entry);
    }
    return readScores(result[meta.output.name], meta, rows, device, keys.modelOnnx(device, version), input);
  }

  /** Ends the session's profiling after its first inference and reports where the nodes ran. */
  private async reportPlacement(entry: SessionEntry): Promise<void> {
    const dir = entry.profileDir;
    if (!dir || !entry.placement) return;
    entry.profileDir = undefined;
    try {
      entry.session.endProfiling();
      this.observer.placement?.({ ...entry.placement, placement: await readProfiles(dir) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** Applies model.json's preprocessing to a copy; the caller's rows are never modified. */
function preprocess(meta: ModelMeta, x: Float32Array): Float32Array {
  const p = meta.preprocessing;
  if (p.type === 'none') return x;
  const k = meta.features.length;
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const j = i % k;
    out[i] = ((x[i] as number) - (p.mean[j] as number)) / (p.scale[j] as number);
  }
  return out;
}

function readScores(
  tensor: Tensor | undefined,
  meta: ModelMeta,
  rows: number,
  device: string,
  file: string,
  input: Float32Array,
): Float32Array {
  const name = meta.output.name;
  const fail = (message: string, field = 'output.name') => new ModelOutputMismatch(message, device, file, field);
  if (!tensor) throw fail(`output ${name} is missing from the result`);
  if (tensor.type !== 'float32' && tensor.type !== 'float64') {
    throw fail(`output ${name} is ${tensor.type}, expected float32 or float64`);
  }
  const data = tensor.data as Float32Array | Float64Array;
  const dims = tensor.dims;
  const cols = dims.length === 1 ? 1 : dims.length === 2 ? (dims[1] as number) : -1;
  if (cols < 1 || dims[0] !== rows || data.length !== rows * cols) {
    throw fail(`output ${name} has shape [${dims.join(', ')}] for ${rows} rows; expected [${rows}] or [${rows}, k]`);
  }
  if (meta.output.reconstructionError) {
    const k = meta.features.length;
    if (cols !== k || dims.length !== 2) {
      const message = `output ${name} has shape [${dims.join(', ')}]; a reconstruction must be [${rows}, ${k}]`;
      throw fail(message, 'output.reconstructionError');
    }
    return checkFinite(reconstructionError(meta.output.reconstructionError, input, data, rows, k), name, device, file);
  }
  const column = meta.output.column;
  if (column >= cols) {
    throw fail(`output ${name} has ${cols} column(s); column ${column} does not exist`, 'output.column');
  }
  const out = cols === 1 && data instanceof Float32Array ? data : new Float32Array(rows);
  if (out !== data) for (let r = 0; r < rows; r++) out[r] = data[r * cols + column] as number;
  return checkFinite(out, name, device, file);
}

/** Returns `out` when every score is finite: a NaN or infinite score fails the device instead of being committed. */
function checkFinite(out: Float32Array, name: string, device: string, file: string): Float32Array {
  const rows = out.length;
  let bad = 0;
  let first = -1;
  for (let r = 0; r < rows; r++) {
    const v = out[r] as number;
    if (v - v !== 0) {
      bad++;
      if (first < 0) first = r;
    }
  }
  if (bad > 0) {
    throw new ModelOutputMismatch(
      `output ${name} is ${String(out[first])} for ${bad} of ${rows} rows (first: row ${first})`,
      device,
      file,
      'output',
    );
  }
  return out;
}

async function release(entry: SessionEntry): Promise<void> {
  if (entry.released) return;
  entry.released = true;
  await entry.session.release();
  // A session released before its first inference still has its profiling folder.
  if (entry.profileDir) await rm(entry.profileDir, { recursive: true, force: true });
}

/** The model's bytes, verified against the sha256 the index and model.json record. */
async function readVerified(store: ObjectStore, device: string, version: string, sha256: string): Promise<Uint8Array> {
  const file = keys.modelOnnx(device, version);
  const bytes = await store.tryGet(file);
  if (bytes === undefined) throw new ModelNotFound(device, file);
  const actual = sha256Hex(bytes);
  if (actual !== sha256) {
    const recordedIn = `${keys.modelIndex()} and ${keys.modelMeta(device, version)}`;
    throw new ModelChecksumMismatch(device, file, sha256, actual, recordedIn);
  }
  return bytes;
}
