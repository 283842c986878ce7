/**
 * A real Temporal dev server for integration tests, started from the same CLI binary `npm start` uses, with
 * fleetscore's search attributes registered.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { SEARCH_ATTRIBUTES, TASK_QUEUES } from '../../lib/shared/names';
import { installRuntime, type RuntimeSettings } from '../../lib/temporal/runtime';
import { requireTemporalCli } from '../../lib/temporal/temporal-cli';
import { createPoolWorker } from '../../workers/pool-worker';
import { freePort } from './free-port';

/**
 * Starts a local dev server (in-memory) and returns the SDK's test environment around it. `runtime` installs the
 * worker runtime first (once per test file): quiet by default; tests of logs and metrics pass their own. The port is
 * the tests' own pick, below the ephemeral range (the SDK's would come from it: see `freePort`).
 */
export async function startTemporal(runtime: RuntimeSettings = { quiet: true }): Promise<TestWorkflowEnvironment> {
  installRuntime(runtime);
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: requireTemporalCli() },
      port: await freePort(),
      searchAttributes: Object.values(SEARCH_ATTRIBUTES),
      extraArgs: ['--log-level', 'error'],
    },
  });
}

/** A task queue name no other test uses. */
export function uniqueTaskQueue(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** A cpu and a gpu pool worker running in the test process; `stop` drains them and releases their sessions. */
export interface RunningPools {
  stop(): Promise<void>;
}

/**
 * Runs both pool workers on `taskQueues` against the test server: the cpu pool with 2 shard slots, the gpu pool
 * on the CPU provider (no GPU in tests).
 */
export async function runPoolWorkers(
  env: TestWorkflowEnvironment,
  taskQueues: { cpu: string; gpu: string },
): Promise<RunningPools> {
  const connection = env.nativeConnection;
  const namespace = env.namespace ?? 'default';
  const cpu = await createPoolWorker({
    pool: 'cpu',
    connection,
    namespace,
    taskQueue: taskQueues.cpu,
    maxConcurrentShards: 2,
  });
  const gpu = await createPoolWorker({
    pool: 'gpu',
    connection,
    namespace,
    taskQueue: taskQueues.gpu,
    gpuFallback: 'cpu',
  });
  const running = Promise.all([cpu.worker.run(), gpu.worker.run()]);
  return {
    async stop() {
      cpu.worker.shutdown();
      gpu.worker.shutdown();
      await running;
      await Promise.all([cpu.close(), gpu.close()]);
    },
  };
}

/**
 * Runs one cpu pool worker (one shard at a time) on `taskQueue` against the test server: by default the standard
 * cpu queue, the one the CLI starts runs on, for tests that drive the real `fleetscore` commands.
 */
export async function runCpuWorker(
  env: TestWorkflowEnvironment,
  taskQueue: string = TASK_QUEUES.cpu,
): Promise<RunningPools> {
  const cpu = await createPoolWorker({
    pool: 'cpu',
    connection: env.nativeConnection,
    namespace: env.namespace ?? 'default',
    taskQueue,
    maxConcurrentShards: 1,
  });
  const running = cpu.worker.run();
  return {
    async stop() {
      cpu.worker.shutdown();
      await running;
      await cpu.close();
    },
  };
}
