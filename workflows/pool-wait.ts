/**
 * Waiting for a pool, in workflow code: a shard whose pool has no free worker (no gpu host, scaled to zero,
 * every slot busy) sits in the pool's task queue without a sign. Each attempt to start it gets a schedule-to-start
 * timeout (the notice); when it fires, Temporal has dropped that task without running it (this timeout is never
 * retried by the retry policy), so the run lists the shard as waiting, logs it and schedules it again, until the
 * limit, when the shard fails with `PoolUnavailable` and the run commits without its devices.
 */
import { TimeoutType, type Duration } from '@temporalio/common';
import { ActivityFailure, log, TimeoutFailure } from '@temporalio/workflow';
import { toApplicationFailure } from '../lib/shared/error-types';
import { durationMs } from '../lib/shared/duration';
import { InvalidInput, PoolUnavailable } from '../lib/shared/errors';
import type { Pool, WaitingShard } from '../lib/shared/names';

/** What a shard waits for and how long. */
export interface PoolWait {
  shard: number;
  pool: Pool;
  taskQueue: string;
  window: string;
  notice: Duration;
  limit: Duration;
  /**
   * Called with the shard's waiting entry at each notice, and with `undefined` once the shard has completed or
   * failed (the workflow cannot see the moment a worker picks a task up, so a shard stays listed until then).
   */
  onWaiting(entry: WaitingShard | undefined): void;
}

/** Whether `err` is an activity that no worker started within its schedule-to-start timeout. */
export function isScheduleToStartTimeout(err: unknown): boolean {
  return (
    err instanceof ActivityFailure &&
    err.cause instanceof TimeoutFailure &&
    err.cause.timeoutType === TimeoutType.SCHEDULE_TO_START
  );
}

/**
 * Runs `start(scheduleToStartTimeout)` and schedules it again after each schedule-to-start timeout, reporting the
 * shard as waiting, until `limit` has passed since the first schedule. Uses workflow time (deterministic).
 */
export async function withPoolWait<T>(
  wait: PoolWait,
  start: (scheduleToStartTimeout: Duration) => Promise<T>,
): Promise<T> {
  const since = Date.now();
  const limitMs = durationMs(wait.limit);
  if (limitMs === undefined) {
    throw toApplicationFailure(new InvalidInput(`poolWaitLimit is not a duration: ${JSON.stringify(wait.limit)}`));
  }
  let notices = 0;
  try {
    for (;;) {
      try {
        return await start(wait.notice);
      } catch (err) {
        if (!isScheduleToStartTimeout(err)) throw err;
        notices += 1;
        const waitedMs = Date.now() - since;
        const attrs = { window: wait.window, shard: wait.shard, pool: wait.pool, taskQueue: wait.taskQueue, notices };
        if (waitedMs >= limitMs) {
          log.error(
            `shard ${wait.shard}: no worker of pool ${wait.pool} started it within ${String(wait.limit)}`,
            attrs,
          );
          throw toApplicationFailure(
            new PoolUnavailable(
              `no worker of pool ${wait.pool} (task queue ${wait.taskQueue}) started shard ${wait.shard} within ${String(wait.limit)}`,
            ),
          );
        }
        log.warn(
          `shard ${wait.shard} is waiting for pool ${wait.pool}: not started within ${String(wait.notice)}`,
          attrs,
        );
        wait.onWaiting({
          shard: wait.shard,
          pool: wait.pool,
          taskQueue: wait.taskQueue,
          since: new Date(since).toISOString(),
          notices,
        });
      }
    }
  } finally {
    if (notices > 0) wait.onWaiting(undefined);
  }
}
