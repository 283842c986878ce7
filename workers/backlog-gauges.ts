/**
 * A pool's backlog as worker metrics: a worker that exports Prometheus metrics also samples its own task queue's
 * backlog (DescribeTaskQueue, the numbers `fleetscore autoscale` and KEDA read) every interval and records it as
 * gauges, so a dashboard shows how many shards wait for the pool and for how long next to what the workers do.
 * Every worker of a pool reports the same queue: aggregate with `max`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import type { Logger, MetricMeter } from '@temporalio/common';
import { describeBacklog, type TaskKind } from '../lib/autoscale/backlog';
import { messageOf } from '../lib/shared/errors';
import type { Pool } from '../lib/shared/names';

/** Gauge names of the backlog of a pool's task queue. */
export const BACKLOG_METRIC_NAMES = {
  tasks: 'fleetscore_pool_backlog_tasks',
  ageSeconds: 'fleetscore_pool_backlog_age_seconds',
} as const;

/** What to sample and where to record it. */
export interface BacklogGaugeOptions {
  client: Client;
  pool: Pool;
  taskQueue: string;
  meter: MetricMeter;
  logger: Logger;
  /** Seconds between samples (default 15, a common Prometheus scrape interval). */
  intervalSeconds?: number;
}

/**
 * Samples at once, then every interval, until the returned `stop` is called (it resolves when the loop has ended).
 * A failed sample (the server unreachable, or too old to report backlog: before Temporal 1.25) is logged once, not
 * every interval, and the gauges keep their last value until a sample succeeds again.
 */
export function startBacklogGauges(options: BacklogGaugeOptions): { stop(): Promise<void> } {
  const m = options.meter.withTags({ pool: options.pool, task_queue: options.taskQueue });
  const tasks = m.createGauge(BACKLOG_METRIC_NAMES.tasks, 'int', undefined, 'tasks waiting in the pool task queue');
  const age = m.createGauge(BACKLOG_METRIC_NAMES.ageSeconds, 'float', 's', 'age of the oldest waiting task');
  // The cpu pool also runs the workflows: their tasks wait in the same queue.
  const kinds: TaskKind[] = options.pool === 'cpu' ? ['workflow', 'activity'] : ['activity'];
  const abort = new AbortController();
  const loop = (async () => {
    let failing = '';
    while (!abort.signal.aborted) {
      try {
        const stats = await describeBacklog(options.client, options.taskQueue, kinds);
        tasks.set(stats.backlog);
        age.set(stats.ageSeconds);
        if (failing) options.logger.info(`backlog of ${options.taskQueue} readable again`);
        failing = '';
      } catch (err) {
        const message = messageOf(err);
        if (message !== failing) options.logger.warn(`cannot read the backlog of ${options.taskQueue}: ${message}`);
        failing = message;
      }
      await sleep((options.intervalSeconds ?? 15) * 1000, undefined, { signal: abort.signal }).catch((err: unknown) => {
        // stop() aborts the wait; anything else is a bug to see.
        if (!abort.signal.aborted) throw err;
      });
    }
  })();
  return {
    async stop() {
      abort.abort();
      await loop;
    },
  };
}
