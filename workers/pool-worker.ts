/**
 * A pool worker: polls its pool's task queue with onnxruntime execution providers that fit the pool. The cpu
 * pool also runs the scoringRun workflows and the quick planRun/commitRun activities.
 */
import { Runtime, Worker, type NativeConnection } from '@temporalio/worker';
import { createActivities } from '../activities';
import { AggregatesCache, DEFAULT_AGGREGATES_BYTES } from '../lib/arrow/aggregates-cache';
import { config, type FleetscoreConfig } from '../lib/config';
import { DEFAULT_MAX_COMPILED_BYTES } from '../lib/models/fast-paths/compiled-models';
import { sweepSavedPrograms } from '../lib/models/fast-paths/saved-programs';
import { createWorkerMetrics, placementClass } from '../lib/metrics/worker-metrics';
import {
  chooseProviders,
  LOCAL_CUDA,
  type CudaEnvironment,
  type GpuFallback,
  type ProviderChoice,
} from '../lib/models/execution-providers';
import { DEFAULT_MAX_SESSIONS, GPU_MAX_SESSIONS, ModelSessionCache } from '../lib/models/model-sessions';
import { sessionName, type ModelSessionObserver } from '../lib/models/onnx-session-pool';
import { ShardThreads } from '../lib/scoring/shard-threads';
import { describePlacement } from '../lib/models/provider-probe';
import { TASK_QUEUES, type Pool } from '../lib/shared/names';
import { openStore } from '../lib/store/open-store';
import { sweepKeptModelFiles } from '../lib/store/kept-model-files';
import type { SweepResult } from '../lib/kept-files';
import type { ObjectStore } from '../lib/store/object-store';
import { activityLogAttributes } from './activity-log-attributes';
import { shardSizing, slotOptions, type TunerMode } from './worker-slots';

/**
 * How long a stopping worker (SIGTERM, scale-down) lets running shards finish. Then the SDK cancels them: each
 * attempt sees its cancellation signal at its next device, stops, writes nothing more (every store call carries the
 * signal), and fails, so Temporal runs the shard again on another worker. Its log is left cut off; the next
 * attempt's log says so.
 */
export const DRAIN_TIMEOUT = '5 minutes';

/**
 * How often at most a running shard's heartbeats reach the server. A cancel (of the run, or of an attempt whose
 * heartbeat timed out while the worker was stalled) reaches the attempt only with the answer to a heartbeat, so this
 * bounds how long a cancelled attempt runs on: seconds, not the SDK's default of most of the heartbeat timeout.
 */
export const HEARTBEAT_THROTTLE = '3 seconds';

/** How to run one pool worker. */
export interface PoolWorkerOptions {
  pool: Pool;
  connection: NativeConnection;
  namespace: string;
  /** What the gpu pool does without CUDA (default: refuse to start). */
  gpuFallback?: GpuFallback;
  /** Shards this worker holds at once (default: two per shard thread for cpu, 2 for gpu); see `shardSizing`. */
  maxConcurrentShards?: number;
  /** Fixed slot counts (default) or the SDK's resource-based tuner (cpu pool only). */
  tuner?: TunerMode;
  identity?: string;
  /** Poll this task queue instead of the pool's standard one. */
  taskQueue?: string;
  /** Where CUDA is looked for (tests). */
  cuda?: CudaEnvironment;
  /** Stack recognised Mahalanobis models, many devices per inference call (default true). */
  batching?: boolean;
  /**
   * Threads that score shards, each with caches of its own (default: one per usable CPU for cpu, 0 for gpu). 0:
   * shards are scored on the worker's own event loop, one core's worth, with models compiled on compile threads.
   */
  shardThreads?: number;
  /** Budget of parsed Arrow parts in MiB, shared by the shard threads (default `FLEETSCORE_PARTS_CACHE_MB`, 768). */
  partsCacheMb?: number;
  /** Budget of compiled fast-path programs in MiB, shared likewise (default `FLEETSCORE_COMPILED_CACHE_MB`, 768). */
  compiledCacheMb?: number;
  /**
   * onnxruntime sessions kept, least recently used released first (default `FLEETSCORE_MAX_SESSIONS`, else 4096,
   * or {@link GPU_MAX_SESSIONS} on CUDA); shared by the shard threads.
   */
  maxSessions?: number;
  /**
   * The folder where compiled forests are kept across restarts (saved-programs.ts), null for none; default
   * `FLEETSCORE_PROGRAMS_DIR`, else `<data dir>/programs`.
   */
  programsDir?: string | null;
  /**
   * The folder where an S3 store's model files are kept across restarts (lib/store/kept-model-files.ts), null for
   * none; default `FLEETSCORE_MODEL_FILES_DIR`, else `<data dir>/model-files`.
   */
  modelFilesDir?: string | null;
  /** The bound of that folder in MiB (default `FLEETSCORE_MODEL_FILES_MB`, else {@link DEFAULT_MODEL_FILES_MB}). */
  modelFilesMb?: number;
}

/** MiB of an S3 store's model files a host keeps by default: 500,000 SVMs, or 2,600 100-tree forests from skl2onnx. */
export const DEFAULT_MODEL_FILES_MB = 2048;

/** A worker's cache budgets (bytes, sessions), and how its start line states them. */
export interface CacheBudgets {
  partsBytes: number;
  compiledBytes: number;
  maxSessions: number;
  text: string;
}

/**
 * The worker's budgets for its caches that grow with the fleet: parsed Arrow parts (counted by their files' sizes)
 * and compiled fast-path programs (counted as V8 holds them: about 27 KB per 25-tree forest from skl2onnx, 3 KB per
 * SVM), given in MiB (an option, else the environment, else 768 each), and onnxruntime sessions (an option, else
 * the environment, else 4096, or {@link GPU_MAX_SESSIONS} where sessions run on CUDA: each holds GPU memory of its
 * own).
 */
export function cacheBudgets(
  given: Pick<PoolWorkerOptions, 'partsCacheMb' | 'compiledCacheMb' | 'maxSessions'>,
  cfg: Pick<FleetscoreConfig, 'partsCacheMb' | 'compiledCacheMb' | 'maxSessions'> = config(),
  cuda = false,
): CacheBudgets {
  const MIB = 2 ** 20;
  const partsBytes = (given.partsCacheMb ?? cfg.partsCacheMb ?? DEFAULT_AGGREGATES_BYTES / MIB) * MIB;
  const compiledBytes = (given.compiledCacheMb ?? cfg.compiledCacheMb ?? DEFAULT_MAX_COMPILED_BYTES / MIB) * MIB;
  const maxSessions = given.maxSessions ?? cfg.maxSessions ?? (cuda ? GPU_MAX_SESSIONS : DEFAULT_MAX_SESSIONS);
  return {
    partsBytes,
    compiledBytes,
    maxSessions,
    text: `caches: parsed parts ${partsBytes / MIB} MiB, compiled models ${compiledBytes / MIB} MiB, model sessions ${maxSessions}`,
  };
}

/** A created (not yet running) pool worker and the decisions it logged. */
export interface PoolWorker {
  worker: Worker;
  providers: ProviderChoice;
  /** Shards this worker runs at once (the upper bound under the resource-based tuner). */
  shards: number;
  /** One line: providers, slots and why. */
  decision: string;
  /** Releases model sessions; call after `worker.run()` has returned. */
  close(): Promise<void>;
}

/**
 * Creates a pool worker. Shards are CPU-bound inference, so the cpu pool scores one shard per usable CPU, each on
 * a thread of its own, and holds a second per thread to start at once after it (see `shardSizing`). GPU slots are
 * sized explicitly, since the SDK's resource-based tuner sees CPU and memory but not the GPU. On the gpu pool every
 * new model session reports where onnxruntime really ran its nodes, and a model that runs on CPU is logged.
 */
export async function createPoolWorker(options: PoolWorkerOptions): Promise<PoolWorker> {
  const logger = Runtime.instance().logger;
  const providers = await chooseProviders(options.pool, options.gpuFallback, options.cuda ?? LOCAL_CUDA);
  const tuner = options.tuner ?? 'fixed';
  const sizing = shardSizing(options.pool, {
    ...(options.maxConcurrentShards ? { shards: options.maxConcurrentShards } : {}),
    ...(options.shardThreads !== undefined ? { threads: options.shardThreads } : {}),
  });
  const tunerText =
    tuner === 'resource-based' && options.pool === 'cpu'
      ? `resource-based tuner (CPU and memory ≤ 80 %), 1 to ${2 * sizing.scoring} shards`
      : `${sizing.reason} shards at once`;
  const threadText =
    sizing.threads > 0
      ? `scored on ${sizing.threads} shard thread${sizing.threads === 1 ? '' : 's'}`
      : 'scored on the event loop';
  const budgets = cacheBudgets(options, config(), providers.gpu);
  const programsDir = options.programsDir === undefined ? config().programsDir : (options.programsDir ?? undefined);
  const programsText = programsDir ? `compiled forests kept in ${programsDir}` : 'compiled forests not kept';
  const modelFilesDir =
    options.modelFilesDir === undefined ? config().modelFilesDir : (options.modelFilesDir ?? undefined);
  const modelFilesMb = options.modelFilesMb ?? config().modelFilesMb ?? DEFAULT_MODEL_FILES_MB;
  const modelFiles = modelFilesDir ? { dir: modelFilesDir, maxBytes: modelFilesMb * 2 ** 20 } : undefined;
  const modelFilesText = modelFiles
    ? `S3 model files kept in ${modelFiles.dir} (${modelFilesMb} MiB)`
    : 'S3 model files not kept';
  const decision = `${providers.decision}; ${tunerText}, ${threadText}; ${budgets.text}; ${programsText}; ${modelFilesText}`;
  logger.info(decision, { pool: providers.pool, providers: providers.executionProviders, shards: sizing.slots });

  const metrics = createWorkerMetrics(Runtime.instance().metricMeter, options.pool, (p) => {
    const { placement, ...session } = p;
    const attrs = { pool: options.pool, ...session, placement };
    const where = describePlacement(placement);
    // Only worth a warning where CUDA was meant to run the model.
    if (providers.gpu && placementClass(placement) !== 'cuda')
      logger.warn(`${sessionName(p)} runs (partly) on CPU in the gpu pool: ${where}`, attrs);
    // One stacked session per worker: its placement is worth a line; one per device model is not.
    else if (p.session === 'stacked') logger.info(`${sessionName(p)} placement: ${where}`, attrs);
    else logger.debug(`${sessionName(p)} placement: ${where}`, attrs);
  });
  const cache = {
    executionProviders: providers.executionProviders,
    checkPlacement: providers.gpu,
    maxSessions: budgets.maxSessions,
    batching: options.batching,
    maxCompiledBytes: budgets.compiledBytes,
    ...(programsDir ? { programsDir } : {}),
  };
  const observer: ModelSessionObserver = {
    ...metrics.sessions,
    warning: (message) => {
      logger.warn(message);
    },
  };
  const sessions = new ModelSessionCache({ ...cache, observer });
  const shardThreads =
    sizing.threads > 0
      ? new ShardThreads({
          threads: sizing.threads,
          cache,
          aggregatesBytes: budgets.partsBytes,
          ...(modelFiles ? { modelFiles } : {}),
          observer,
        })
      : undefined;
  // Files not read for a week go, in the background: a sweep of 100,000 files takes seconds, and a failed one costs
  // disk space, never a result.
  const sweep = (what: string, dir: string, swept: Promise<SweepResult>, deleted: string): void =>
    void swept.then(
      (r) => {
        const kept = `${r.kept} kept (${Math.round(r.keptBytes / 2 ** 20)} MiB)`;
        logger.info(`${what} in ${dir}: ${kept}, ${r.deleted} ${deleted} deleted`);
      },
      (err: unknown) => {
        logger.warn(`${what} in ${dir} could not be swept: ${String(err)}`);
      },
    );
  if (programsDir) sweep('saved programs', programsDir, sweepSavedPrograms(programsDir), 'not read for a week');
  if (modelFiles) {
    const deleted = 'not read for a week or past the bound';
    sweep('kept model files', modelFiles.dir, sweepKeptModelFiles(modelFiles), deleted);
  }
  // Threads start with the worker, so a cold shard does not wait for them.
  if (shardThreads) shardThreads.start();
  else if (options.batching !== false) sessions.startCompileThreads();
  const stores = new Map<string, ObjectStore>();
  const activities = createActivities({
    openStore(uri) {
      let store = stores.get(uri);
      if (!store) stores.set(uri, (store = openStore(uri, { modelFiles, warn: (m) => void logger.warn(m) })));
      return store;
    },
    sessions,
    aggregates: new AggregatesCache(budgets.partsBytes),
    ...(shardThreads ? { shardThreads } : {}),
  });
  const worker = await Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue ?? TASK_QUEUES[options.pool],
    ...(options.identity ? { identity: options.identity } : {}),
    ...(options.pool === 'cpu' ? { workflowsPath: require.resolve('../workflows') } : {}),
    activities: {
      ...activities,
      // Same name and signature; counts each attempt for the worker's metrics.
      async scoreShard(req: Parameters<typeof activities.scoreShard>[0]) {
        try {
          const summary = await activities.scoreShard(req);
          metrics.shardScored(summary);
          return summary;
        } catch (err) {
          metrics.shardAttemptFailed();
          throw err;
        }
      },
    },
    interceptors: { activity: [activityLogAttributes] },
    // The tuner's range is 1 to 2 × the shards scored at once; fixed slots are the slots.
    ...slotOptions(options.pool, tuner, tuner === 'fixed' ? sizing.slots : sizing.scoring),
    // Scale-down and deploys send SIGTERM: stop polling, let running shards finish, then cancel them and exit.
    shutdownGraceTime: DRAIN_TIMEOUT,
    maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
  });
  return {
    worker,
    providers,
    shards: sizing.slots,
    decision,
    close: async () => {
      await shardThreads?.close();
      await sessions.close();
    },
  };
}
