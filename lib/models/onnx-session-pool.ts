/**
 * The onnxruntime sessions of the models that no fast path takes: an LRU cache keyed by the model's sha256
 * (devices sharing the same bytes share one session), each created only after its bytes match the checksum, and
 * released when evicted once no inference is running on it.
 */
import { rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { LruCache } from '../lru-cache';
import type { ProgramOrigin } from './fast-paths/compiled-models';
import { keys } from '../shared/keys';
import type { ObjectStore } from '../store/object-store';
import {
  GpuResourcesExhausted,
  messageOf,
  ModelInferenceFailed,
  ModelOutputMismatch,
  ModelSessionFailed,
} from '../shared/errors';
import type { IndexEntry, ModelMeta } from './model-meta';
import { preprocess, readScores } from './model-output';
import { endProfile, startProfile, type NodePlacement } from './provider-probe';

/**
 * Where a new session's nodes ran on its first inference, as onnxruntime's profiler recorded it: a device model's
 * own session, or the worker's one stacked session that scores every recognised Mahalanobis model.
 */
export type SessionPlacement =
  | { session: 'model'; device: string; version: string; sha256: string; placement: NodePlacement }
  | { session: 'stacked'; placement: NodePlacement };

/** What a placement's log line calls its session: `model dev-00017@v0003`, or the stacked session. */
export function sessionName(p: SessionPlacement): string {
  return p.session === 'model' ? `model ${p.device}@${p.version}` : 'the stacked Mahalanobis session';
}

/**
 * Whether an onnxruntime error of a CUDA session says the GPU ran out of memory or handles (CUDA error 2, cuBLAS
 * status 3, cuDNN's or the arena's failed allocation) rather than that the model or its input is wrong. Seen on an
 * H200 with about 1,000 CUDA sessions alive: `CUBLAS failure 3: the resource allocation failed ...
 * expr=cublasCreate(&cublas_handle_)`. Only asked of sessions with the CUDA provider.
 */
export function isGpuExhaustion(err: unknown): boolean {
  return /CUDA failure 2:|CUBLAS failure 3:|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|out of memory|Failed to allocate memory/i.test(
    messageOf(err),
  );
}

/** Hooks for worker metrics and logs; every hook is optional and must not throw. */
export interface ModelSessionObserver {
  /** A model lookup: `hit` when its session was cached (or being created), else a new session was created. */
  cacheLookup?(hit: boolean): void;
  /** One inference call: its wall time and the rows it scored. */
  inference?(seconds: number, rows: number): void;
  /** Where a new session's nodes ran (only with `checkPlacement`). */
  placement?(placement: SessionPlacement): void;
  /** A device's compiled program: where it came from (this cache's memory, the saved programs, a compile now). */
  program?(origin: ProgramOrigin): void;
  /** A problem that costs speed but no result, e.g. a saved program that could not be read or written. */
  warning?(message: string): void;
  /**
   * S3 model files a shard thread read from the store again to keep them on the host, once idle (the files it could
   * not hold in memory: lib/store/kept-model-files.ts).
   */
  modelFilesFetched?(count: number): void;
  /**
   * How many devices' model folders the worker watches now, for all its threads (watched model files,
   * lib/scoring/model-watches.ts): said when it changes.
   */
  watchedModelFolders?(count: number): void;
  /**
   * Parts of windows a shard thread read from the store (`read`), or took from another thread's read without
   * reading it (`taken`): parsed parts shared between shard threads, lib/scoring/part-exchange.ts.
   */
  windowParts?(how: 'read' | 'taken', count: number): void;
}

/** A model ready to score: its validated model.json and a function from feature rows to scores. */
export interface LoadedModel {
  readonly device: string;
  readonly version: string;
  readonly meta: ModelMeta;
  /** Scores `rows` rows of `meta.features.length` float32 features (row-major); one score per row. */
  score(x: Float32Array, rows: number): Promise<Float32Array>;
  /**
   * {@link score} on this thread, for a model that needs no await (a compiled program): the same scores, or the same
   * error thrown. A shard's devices then cost no promise and no turn of the microtask queue each.
   */
  scoreNow?(x: Float32Array, rows: number): Float32Array;
}

/** Cache counters, for worker metrics and tests. */
export interface ModelSessionCacheStats {
  hits: number;
  misses: number;
  evictions: number;
}

/** How a {@link OnnxSessionPool} creates and keeps sessions. */
export interface OnnxSessionPoolOptions {
  executionProviders: readonly InferenceSession.ExecutionProviderConfig[];
  maxSessions: number;
  intraOpNumThreads: number;
  checkPlacement: boolean;
  observer: ModelSessionObserver;
  /** Reads a model's bytes, verified against `sha256` (the caller may remember which devices it verified). */
  readModel(store: ObjectStore, device: string, version: string, sha256: string): Promise<Uint8Array>;
  /** Creates a session (default `InferenceSession.create`; tests stand in a GPU that fills up). */
  createSession?: (bytes: Uint8Array, options: InferenceSession.SessionOptions) => Promise<InferenceSession>;
}

interface SessionEntry {
  session: InferenceSession;
  /** The key it is cached under: its model bytes' sha256. */
  sha256: string;
  inFlight: number;
  evicted: boolean;
  released: boolean;
  /** The folder the session profiles its first inference into, until that profile has been read. */
  profileDir?: string;
  placement?: { device: string; version: string; sha256: string };
}

/** The rows as the session's input takes them: float32, or float64 for a model exported with a float64 sample. */
function inputTensor(session: InferenceSession, name: string, input: Float32Array, dims: number[]): Tensor {
  const info = session.inputMetadata?.find((m) => m.name === name);
  const double = info?.isTensor === true && info.type === 'float64';
  return double ? new Tensor('float64', Float64Array.from(input), dims) : new Tensor('float32', input, dims);
}

/**
 * Verified, cached onnxruntime sessions. A `LoadedModel` whose session was evicted transparently loads (and
 * re-verifies) it again.
 */
export class OnnxSessionPool {
  readonly stats: ModelSessionCacheStats = { hits: 0, misses: 0, evictions: 0 };
  private readonly sessions: LruCache<string, SessionEntry>;
  private readonly pending = new Map<string, Promise<SessionEntry>>();
  /** Sessions the last insertion evicted, released (once idle) by `acquire`. */
  private evicted: SessionEntry[] = [];
  /** Whether sessions run on CUDA, whose running out of memory or handles is the worker's state, not the model's. */
  private readonly onGpu: boolean;

  constructor(private readonly options: OnnxSessionPoolOptions) {
    if (!Number.isInteger(options.maxSessions) || options.maxSessions < 1) {
      throw new RangeError('maxSessions must be an integer of at least 1');
    }
    this.sessions = new LruCache(options.maxSessions, (_, victim) => this.evicted.push(victim));
    this.onGpu = options.executionProviders.some((p) => (typeof p === 'string' ? p : p.name) === 'cuda');
  }

  /** Sessions held now. */
  get size(): number {
    return this.sessions.size;
  }

  /** Whether a session of the model `sha256` is held or being created. */
  holds(sha256: string): boolean {
    return this.sessions.has(sha256) || this.pending.has(sha256);
  }

  /**
   * The device's model with `meta` (its validated model.json) on a verified, cached session. Throws ModelNotFound,
   * ModelChecksumMismatch, ModelSessionFailed, or ModelOutputMismatch when the session lacks model.json's names.
   */
  async load(
    store: ObjectStore,
    device: string,
    entry: Pick<IndexEntry, 'version' | 'sha256'>,
    meta: ModelMeta,
  ): Promise<LoadedModel> {
    const { version } = entry;
    const file = keys.modelOnnx(device, version);
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

  /** Releases every session. The pool stays usable: a later `load` creates sessions again. */
  async close(): Promise<void> {
    const entries = this.sessions.values();
    this.sessions.clear();
    await Promise.all(entries.map((e) => this.evict(e)));
  }

  private async acquire(store: ObjectStore, device: string, version: string, sha256: string): Promise<SessionEntry> {
    const { observer } = this.options;
    const hit = this.sessions.get(sha256);
    if (hit) {
      this.stats.hits += 1;
      observer.cacheLookup?.(true);
      return hit;
    }
    const inProgress = this.pending.get(sha256);
    if (inProgress) {
      this.stats.hits += 1;
      observer.cacheLookup?.(true);
      return inProgress;
    }
    this.stats.misses += 1;
    observer.cacheLookup?.(false);
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
    const bytes = await this.options.readModel(store, device, version, sha256);
    const profile = this.options.checkPlacement ? await startProfile('fleetscore-ort-') : undefined;
    const options: InferenceSession.SessionOptions = {
      executionProviders: this.options.executionProviders,
      graphOptimizationLevel: 'all',
      intraOpNumThreads: this.options.intraOpNumThreads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      ...profile?.options,
    };
    const createSession = this.options.createSession ?? ((b, o) => InferenceSession.create(b, o));
    try {
      const session = await this.retryOnGpuExhaustion(() => createSession(bytes, options));
      return {
        session,
        sha256,
        inFlight: 0,
        evicted: false,
        released: false,
        ...(profile ? { profileDir: profile.dir, placement: { device, version, sha256 } } : {}),
      };
    } catch (err) {
      if (profile) await rm(profile.dir, { recursive: true, force: true });
      throw this.gpuExhausted(err)
        ? new GpuResourcesExhausted(device, file, err)
        : new ModelSessionFailed(device, file, err);
    }
  }

  /**
   * Runs `attempt`; where it fails because the GPU ran out of memory or handles, releases the idle sessions (what
   * they hold on the GPU comes back) and, if there were any, tries once more. What still fails is thrown.
   */
  private async retryOnGpuExhaustion<T>(attempt: () => Promise<T>): Promise<T> {
    try {
      return await attempt();
    } catch (err) {
      if (!this.gpuExhausted(err) || (await this.releaseIdle()) === 0) throw err;
      return attempt();
    }
  }

  /** Whether `err` is a GPU out of memory or handles (only sessions on CUDA can say so). */
  private gpuExhausted(err: unknown): boolean {
    return this.onGpu && isGpuExhaustion(err);
  }

  /** Releases every session no inference is running on, and says so; returns how many. */
  private async releaseIdle(): Promise<number> {
    const idle = this.sessions.values().filter((e) => e.inFlight === 0);
    for (const entry of idle) this.sessions.delete(entry.sha256);
    this.stats.evictions += idle.length;
    await Promise.all(idle.map((entry) => this.evict(entry)));
    if (idle.length > 0) {
      this.options.observer.warning?.(
        `the GPU ran out of memory or handles: released ${idle.length} idle model sessions and tried again ` +
          `(a worker whose models do not fit keeps fewer with --max-sessions or FLEETSCORE_MAX_SESSIONS)`,
      );
    }
    return idle.length;
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
      const feeds = { [meta.input.name]: inputTensor(entry.session, meta.input.name, input, [rows, k]) };
      const run = () => entry.session.run(feeds, [meta.output.name]);
      result = await this.retryOnGpuExhaustion(run).catch((err: unknown) => {
        const file = keys.modelOnnx(device, version);
        throw this.gpuExhausted(err)
          ? new GpuResourcesExhausted(device, file, err)
          : new ModelInferenceFailed(device, file, err);
      });
      this.options.observer.inference?.((performance.now() - started) / 1000, rows);
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
    this.options.observer.placement?.({
      session: 'model',
      ...entry.placement,
      placement: await endProfile(entry.session, dir),
    });
  }
}

async function release(entry: SessionEntry): Promise<void> {
  if (entry.released) return;
  entry.released = true;
  await entry.session.release();
  // A session released before its first inference still has its profiling folder.
  if (entry.profileDir) await rm(entry.profileDir, { recursive: true, force: true });
}
