/**
 * A pool worker: polls its pool's task queue with onnxruntime execution providers that fit the pool. The cpu
 * pool also runs the scoringRun workflows and the quick planRun/commitRun activities.
 */
import { availableParallelism } from 'node:os';
import { Runtime, Worker, type NativeConnection } from '@temporalio/worker';
import { createActivities } from '../activities';
import { AggregatesCache } from '../lib/arrow/aggregates-cache';
import { chooseProviders, type GpuFallback, type ProviderChoice } from '../lib/models/execution-providers';
import { ModelSessionCache } from '../lib/models/model-sessions';
import { TASK_QUEUES, type Pool } from '../lib/names';
import { openStore } from '../lib/store/open-store';
import type { ObjectStore } from '../lib/store/object-store';

/** How to run one pool worker. */
export interface PoolWorkerOptions {
  pool: Pool;
  connection: NativeConnection;
  namespace: string;
  /** What the gpu pool does without CUDA (default: refuse to start). */
  gpuFallback?: GpuFallback;
  /** Shards scored at once by this worker (default: one per CPU core for cpu, 2 for gpu). */
  maxConcurrentShards?: number;
  identity?: string;
  /** Poll this task queue instead of the pool's standard one. */
  taskQueue?: string;
}

/** A created (not yet running) pool worker and the provider decision it logged. */
export interface PoolWorker {
  worker: Worker;
  providers: ProviderChoice;
  /** Releases model sessions; call after `worker.run()` has returned. */
  close(): Promise<void>;
}

/**
 * Creates a pool worker. Shards are CPU-bound inference, so the cpu pool runs one per core: more only queue
 * inside onnxruntime, fewer leave cores idle. GPU slots are sized explicitly, since the SDK's resource-based
 * tuner sees CPU and memory but not the GPU.
 */
export async function createPoolWorker(options: PoolWorkerOptions): Promise<PoolWorker> {
  const providers = chooseProviders(options.pool, options.gpuFallback);
  Runtime.instance().logger.info(providers.decision, { pool: providers.pool, providers: providers.executionProviders });
  const sessions = new ModelSessionCache({ executionProviders: providers.executionProviders });
  const stores = new Map<string, ObjectStore>();
  const activities = createActivities({
    openStore(uri) {
      let store = stores.get(uri);
      if (!store) stores.set(uri, (store = openStore(uri)));
      return store;
    },
    sessions,
    aggregates: new AggregatesCache(),
  });
  const shards = options.maxConcurrentShards ?? (options.pool === 'gpu' ? 2 : availableParallelism());
  const worker = await Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue ?? TASK_QUEUES[options.pool],
    ...(options.identity ? { identity: options.identity } : {}),
    ...(options.pool === 'cpu' ? { workflowsPath: require.resolve('../workflows') } : {}),
    activities,
    maxConcurrentActivityTaskExecutions: shards,
  });
  return { worker, providers, close: () => sessions.close() };
}
