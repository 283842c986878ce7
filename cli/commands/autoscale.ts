/** `fleetscore autoscale`: local pool workers started and drained by their task queue's backlog. */
import { Command } from 'commander';
import { z } from 'zod';
import { Autoscaler, formatDecision } from '../../lib/autoscale/autoscaler';
import type { PoolScaling } from '../../lib/autoscale/policy';
import { fleetscoreWorkerLauncher, WorkerProcesses } from '../../lib/autoscale/worker-processes';
import { isPool, type Pool } from '../../lib/shared/names';
import { config } from '../../lib/config';
import { logFormatFrom } from '../../lib/temporal/runtime';
import { shardSizing } from '../../workers/worker-slots';
import { decimalNumber, portNumber, positiveInt, wholeNumber } from '../utils/options';
import { parseOptions } from '../utils/parse-options';
import { withClient } from '../utils/with-client';

const seconds = decimalNumber(0);

/** `cpu=1..8`: a pool and its minimum and maximum workers. */
const poolSpec = z.string().transform((value, ctx) => {
  const m = /^(\w+)=(\d+)\.\.(\d+)$/.exec(value);
  const [pool, min, max] = m ? [m[1], Number(m[2]), Number(m[3])] : [];
  if (!isPool(pool) || min === undefined || max === undefined || max < 1 || min > max) {
    ctx.addIssue({
      code: 'custom',
      message: `"${value}": expected POOL=MIN..MAX with MIN ≤ MAX and MAX ≥ 1, e.g. gpu=0..4`,
    });
    return z.NEVER;
  }
  return { pool, min, max };
});

/** `gpu=my-queue`: a pool's task queue. */
const queueSpec = z.string().transform((value, ctx) => {
  const [pool, name] = value.split('=', 2);
  if (!isPool(pool) || !name) {
    ctx.addIssue({ code: 'custom', message: `"${value}": expected POOL=TASK_QUEUE` });
    return z.NEVER;
  }
  return [pool, name] as const;
});

const optionsSchema = z.object({
  pool: z.array(poolSpec).min(1),
  interval: seconds,
  scaleUpCooldown: seconds,
  scaleDownCooldown: seconds,
  idle: seconds,
  minBacklogAge: seconds,
  keepWhileRunsOpen: wholeNumber(0),
  shards: positiveInt.optional(),
  gpuFallback: z.enum(['refuse', 'cpu']).optional(),
  taskQueue: z.array(queueSpec).default([]),
  workerMetricsPort: portNumber.optional(),
  logFormat: z.string().optional(),
});

const collect = (value: string, previous: string[] = []) => [...previous, value];

/**
 * `fleetscore autoscale --pool gpu=0..4 [--pool cpu=1..8]`: starts and drains local `fleetscore worker`
 * processes of each pool by its task-queue backlog, between the pool's minimum and maximum.
 */
export const autoscaleCommand = new Command('autoscale')
  .description('start and stop local pool workers by task-queue backlog; Ctrl-C drains them all')
  .requiredOption('--pool <pool=min..max>', 'a pool to scale and its bounds, e.g. gpu=0..4 (repeatable)', collect)
  .option('--interval <s>', 'seconds between looks at the backlog', '5')
  .option('--scale-up-cooldown <s>', 'seconds after a scale-up before the next', '15')
  .option('--scale-down-cooldown <s>', 'seconds after any scaling before a scale-down', '60')
  .option('--idle <s>', 'seconds a pool must be idle (no backlog, nothing added or dispatched) to scale down', '30')
  .option('--min-backlog-age <s>', 'a younger backlog is left to running workers', '2')
  .option('--keep-while-runs-open <n>', 'workers each pool keeps while scoring runs are open (0: none)', '1')
  .option('--shards <n>', 'shards per worker (passed to each worker; default: the worker default)')
  .option('--gpu-fallback <mode>', 'passed to gpu workers: refuse | cpu')
  .option('--task-queue <pool=name>', 'a pool task queue other than the standard one (repeatable)', collect)
  .option('--worker-metrics-port <port>', 'first Prometheus port; worker N serves on PORT+N-1')
  .option('--log-format <format>', 'text (default) | json (or FLEETSCORE_LOG_FORMAT); workers inherit it')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const o = parseOptions(command, optionsSchema, raw);
    const json = (o.logFormat === undefined ? config().logFormat : logFormatFrom(o.logFormat)) === 'json';
    const taskQueues: Partial<Record<Pool, string>> = Object.fromEntries(o.taskQueue);
    const pools: PoolScaling[] = o.pool.map(({ pool, min, max }) => ({
      pool,
      min,
      max,
      shardsPerWorker: shardSizing(pool, o.shards ? { shards: o.shards } : {}).scoring,
      scaleUpCooldownMs: o.scaleUpCooldown * 1000,
      scaleDownCooldownMs: o.scaleDownCooldown * 1000,
      idleMs: o.idle * 1000,
      minBacklogAgeSeconds: o.minBacklogAge,
      floorWhileRunsOpen: o.keepWhileRunsOpen,
    }));
    const line = (fields: Record<string, unknown>, text: string) =>
      process.stderr.write(`${json ? JSON.stringify({ time: new Date().toISOString(), ...fields }) : text}\n`);

    const processes = new WorkerProcesses(
      fleetscoreWorkerLauncher((pool, index) => [
        ...(o.shards ? ['--shards', String(o.shards)] : []),
        ...(pool === 'gpu' && o.gpuFallback ? ['--gpu-fallback', o.gpuFallback] : []),
        ...(taskQueues[pool] ? ['--task-queue', taskQueues[pool]] : []),
        ...(o.workerMetricsPort ? ['--metrics-port', String(o.workerMetricsPort + index - 1)] : []),
        ...(json ? ['--log-format', 'json'] : []),
      ]),
      (e) =>
        line(
          { level: e.unexpected ? 'warn' : 'info', message: `worker ${e.event}`, ...e },
          `autoscale ${e.pool}: worker pid ${e.pid} ${e.event}` +
            (e.event === 'exited' ? ` (code ${e.code ?? '-'}, signal ${e.signal ?? '-'})` : '') +
            (e.unexpected ? ' unexpectedly' : ''),
        ),
    );
    await withClient(async (client, target) => {
      const abort = new AbortController();
      const stop = () => {
        line(
          { level: 'info', message: 'stopping: draining every worker' },
          'autoscale: stopping, draining every worker',
        );
        abort.abort();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        line(
          { level: 'info', message: 'autoscale started', address: target.address, pools },
          `autoscale: watching ${pools.map((p) => `${p.pool} (${p.min}..${p.max})`).join(', ')} on ${target.address}`,
        );
        await new Autoscaler({
          client,
          pools,
          processes,
          taskQueues,
          intervalMs: o.interval * 1000,
          log: (r) => line({ level: 'info', message: 'autoscale decision', ...r }, formatDecision(r)),
          warn: (message) => line({ level: 'warn', message }, message),
        }).run(abort.signal);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
  });
