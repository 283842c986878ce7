import { Command } from 'commander';
import { z } from 'zod';
import { POOLS } from '../../lib/names';
import { connectWorker, temporalTarget } from '../../lib/temporal/connection';
import { installRuntime } from '../../lib/temporal/runtime';
import { createPoolWorker } from '../../workers/pool-worker';
import { positiveInt } from '../utils/options';

const optionsSchema = z.object({
  pool: z.enum(POOLS as ['cpu', 'gpu']),
  gpuFallback: z.enum(['refuse', 'cpu']).default('refuse'),
  shards: positiveInt.optional(),
  taskQueue: z.string().min(1).optional(),
});

/** `fleetscore worker --pool cpu|gpu`: one pool worker until SIGINT/SIGTERM, which drain it gracefully. */
export const workerCommand = new Command('worker')
  .description('run a worker of one pool (cpu runs the workflows too); stops gracefully on SIGINT/SIGTERM')
  .requiredOption('--pool <pool>', 'cpu | gpu')
  .option('--gpu-fallback <mode>', 'gpu pool without CUDA: refuse (default) | cpu')
  .option('--shards <n>', 'shards scored at once (default: CPU cores for cpu, 2 for gpu)')
  .option('--task-queue <name>', 'poll this task queue instead of the pool default')
  .action(async (raw: Record<string, unknown>) => {
    const options = optionsSchema.parse(raw);
    installRuntime();
    const target = temporalTarget();
    const connection = await connectWorker(target);
    try {
      const pool = await createPoolWorker({
        pool: options.pool,
        connection,
        namespace: target.namespace,
        gpuFallback: options.gpuFallback,
        maxConcurrentShards: options.shards,
        taskQueue: options.taskQueue,
      });
      process.stderr.write(
        `fleetscore: ${pool.providers.decision}; polling ${pool.worker.options.taskQueue} on ${target.address}\n`,
      );
      try {
        // The SDK's runtime shuts workers down on SIGINT/SIGTERM: in-flight activities finish or are handed back.
        await pool.worker.run();
      } finally {
        await pool.close();
      }
    } finally {
      await connection.close();
    }
  });
