import { Client } from '@temporalio/client';
import { Runtime } from '@temporalio/worker';
/** `fleetscore worker --pool cpu|gpu`: one pool worker, until SIGINT or SIGTERM drain it. */
import { Command } from 'commander';
import { z } from 'zod';
import { POOLS } from '../../lib/shared/names';
import { connectWorker, temporalTarget } from '../../lib/temporal/connection';
import { config, workerFolder } from '../../lib/config';
import { installRuntime, logFormatFrom } from '../../lib/temporal/runtime';
import { startBacklogGauges } from '../../workers/backlog-gauges';
import { createPoolWorker } from '../../workers/pool-worker';
import { portNumber, positiveInt, wholeNumber } from '../utils/options';
import { parseOptions } from '../utils/parse-options';

const optionsSchema = z.object({
  pool: z.enum(POOLS as ['cpu', 'gpu']),
  gpuFallback: z.enum(['refuse', 'cpu']).default('refuse'),
  shards: positiveInt.optional(),
  shardThreads: wholeNumber(0, 256).optional(),
  tuner: z.enum(['fixed', 'resource-based']).default('fixed'),
  taskQueue: z.string().min(1).optional(),
  metricsPort: portNumber.optional(),
  logFormat: z.string().optional(),
  batching: z.boolean(),
  partsCacheMb: wholeNumber(1, 1024 * 1024).optional(),
  compiledCacheMb: wholeNumber(1, 1024 * 1024).optional(),
  maxSessions: wholeNumber(1, 1_000_000).optional(),
  programsDir: z.string().min(1).optional(),
  modelFilesDir: z.string().min(1).optional(),
  modelFilesMb: wholeNumber(1, 1024 * 1024).optional(),
});

/** `fleetscore worker --pool cpu|gpu`: one pool worker until SIGINT/SIGTERM, which drain it gracefully. */
export const workerCommand = new Command('worker')
  .description('run a worker of one pool (cpu runs the workflows too); stops gracefully on SIGINT/SIGTERM')
  .requiredOption('--pool <pool>', 'cpu | gpu')
  .option('--gpu-fallback <mode>', 'gpu pool without a working CUDA provider: refuse (default) | cpu')
  .option(
    '--shards <n>',
    'shards held at once (default: two per shard thread for cpu, 2 for gpu); for cpu, up to one thread per CPU scores them',
  )
  .option(
    '--shard-threads <n>',
    'threads that score shards, each with its own model caches; 0 scores on the event loop (default: one per usable CPU for cpu, 0 for gpu)',
  )
  .option('--tuner <mode>', 'fixed (default) | resource-based (cpu pool: the SDK tuner, CPU and memory ≤ 80 %)')
  .option('--task-queue <name>', 'poll this task queue instead of the pool default')
  .option('--metrics-port <port>', 'serve Prometheus metrics on 0.0.0.0:PORT/metrics (or FLEETSCORE_METRICS_PORT)')
  .option('--log-format <format>', 'text (default) | json (or FLEETSCORE_LOG_FORMAT)')
  .option('--parts-cache-mb <n>', 'MiB of parsed Arrow parts the worker keeps (or FLEETSCORE_PARTS_CACHE_MB; 768)')
  .option('--compiled-cache-mb <n>', 'MiB of compiled models the worker keeps (or FLEETSCORE_COMPILED_CACHE_MB; 768)')
  .option(
    '--max-sessions <n>',
    'onnxruntime sessions the worker keeps (or FLEETSCORE_MAX_SESSIONS; 4096, gpu 64: each CUDA session holds ~150 MiB of GPU memory)',
  )
  .option(
    '--programs-dir <dir>',
    'folder where compiled forests are kept across restarts; off for nowhere (or FLEETSCORE_PROGRAMS_DIR; <data dir>/programs)',
  )
  .option(
    '--model-files-dir <dir>',
    "folder where an S3 store's model files are kept across restarts; off for nowhere (or FLEETSCORE_MODEL_FILES_DIR; <data dir>/model-files)",
  )
  .option('--model-files-mb <n>', 'MiB of model files that folder keeps (or FLEETSCORE_MODEL_FILES_MB; 2048)')
  .option('--no-batching', 'give every model its own session, even Mahalanobis models that could be stacked')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const options = parseOptions(command, optionsSchema, raw);
    // Checked before connecting: a bad folder fails at once, naming itself.
    const folder = (what: 'programs' | 'model files', given: string | undefined) =>
      given === undefined ? undefined : (workerFolder(what, given, config().dataDir) ?? null);
    const programs = folder('programs', options.programsDir);
    const modelFiles = folder('model files', options.modelFilesDir);
    const metricsAddress =
      options.metricsPort === undefined ? config().metricsAddress : `0.0.0.0:${options.metricsPort}`;
    installRuntime({
      logFormat: options.logFormat === undefined ? config().logFormat : logFormatFrom(options.logFormat),
      metricsAddress,
    });
    const target = temporalTarget();
    const connection = await connectWorker(target);
    try {
      const pool = await createPoolWorker({
        pool: options.pool,
        connection,
        namespace: target.namespace,
        gpuFallback: options.gpuFallback,
        maxConcurrentShards: options.shards,
        shardThreads: options.shardThreads,
        tuner: options.tuner,
        taskQueue: options.taskQueue,
        batching: options.batching,
        partsCacheMb: options.partsCacheMb,
        compiledCacheMb: options.compiledCacheMb,
        maxSessions: options.maxSessions,
        ...(programs === undefined ? {} : { programsDir: programs }),
        ...(modelFiles === undefined ? {} : { modelFilesDir: modelFiles }),
        modelFilesMb: options.modelFilesMb,
      });
      process.stderr.write(
        `fleetscore: ${pool.decision}; polling ${pool.worker.options.taskQueue} on ${target.address}\n`,
      );
      // With a metrics endpoint, the pool's backlog is exported too (deploy/grafana shows it).
      const backlog = metricsAddress
        ? startBacklogGauges({
            client: new Client({ connection, namespace: target.namespace }),
            pool: options.pool,
            taskQueue: pool.worker.options.taskQueue,
            meter: Runtime.instance().metricMeter,
            logger: Runtime.instance().logger,
          })
        : undefined;
      try {
        // The SDK's runtime shuts workers down on SIGINT/SIGTERM: polling stops, running shards finish (up to
        // the drain timeout), then run() resolves.
        await pool.worker.run();
      } finally {
        await backlog?.stop();
        await pool.close();
      }
    } finally {
      await connection.close();
    }
  });
