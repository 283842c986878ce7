/**
 * Scoring a plan's shards on their pools, `maxParallel` at a time: the loop a run uses for its shards, and the
 * child workflow `scoringRunShards` that runs the same loop over one slice of a very large plan, so that no
 * history grows with the whole fleet (see `RUN_DEFAULTS.shardsPerChild`). Deterministic: no I/O, clocks or
 * randomness here.
 */
import {
  ActivityFailure,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { TASK_QUEUES, type RunProgress, type WaitingShard } from '../lib/shared/names';
import { progressQuery } from '../lib/shared/queries';
import { NON_RETRYABLE_ERROR_TYPES } from '../lib/shared/error-types';
import {
  FAILURES_LISTED,
  SHARD_TIMEOUTS,
  type ShardBatchInput,
  type ShardBatchResult,
  type ShardRef,
} from '../lib/shared/run-types';
import { withPoolWait } from './pool-wait';
import { forEachLimited } from '../lib/shared/concurrency';

type Activities = ReturnType<typeof createActivities>;

// A shard scores hundreds of devices and heartbeats as it goes, so a dead or stuck worker is noticed within the
// heartbeat timeout rather than the start-to-close timeout; the retry rewrites the shard's files whole.
const SCORING_OPTIONS: ActivityOptions = {
  startToCloseTimeout: SHARD_TIMEOUTS.shardStartToClose,
  heartbeatTimeout: SHARD_TIMEOUTS.shardHeartbeat,
  retry: {
    initialInterval: '2s',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [...NON_RETRYABLE_ERROR_TYPES],
  },
};
const { scoreShard } = proxyActivities<Activities>(SCORING_OPTIONS);

/** A batch result with nothing in it yet. */
export function emptyBatchResult(): ShardBatchResult {
  return { scored: 0, noData: 0, failed: 0, anomalies: 0, failures: [], failedShards: [] };
}

/** Adds `part` into `total` (failures up to the listed limit). */
export function addBatchResult(total: ShardBatchResult, part: ShardBatchResult): void {
  total.scored += part.scored;
  total.noData += part.noData;
  total.failed += part.failed;
  total.anomalies += part.anomalies;
  total.failures.push(...part.failures.slice(0, Math.max(0, FAILURES_LISTED - total.failures.length)));
  total.failedShards.push(...part.failedShards);
}

/** Adds scored shards' device counts to a run's progress. */
export function addToProgress(
  progress: RunProgress,
  done: Pick<ShardBatchResult, 'scored' | 'noData' | 'failed' | 'anomalies'>,
): void {
  progress.devicesScored += done.scored;
  progress.devicesNoData += done.noData;
  progress.devicesFailed += done.failed;
  progress.anomalies += done.anomalies;
}

/**
 * Scores `input.shards`, at most `input.maxParallel` at once, each on its pool's task queue with the pool-wait
 * notice and limit. A shard that fails for good fails its devices, not the run. `progress` is updated as shards
 * finish, and `report` called with it.
 */
export async function scoreShardLanes(
  input: ShardBatchInput,
  progress: RunProgress,
  report: (p: RunProgress) => void,
): Promise<ShardBatchResult> {
  const result = emptyBatchResult();
  // Operator knobs: a shorter heartbeat timeout notices a dead worker sooner (the fault suite uses seconds).
  const shardOptions: ActivityOptions = {
    ...SCORING_OPTIONS,
    heartbeatTimeout: input.timeouts?.shardHeartbeat ?? SHARD_TIMEOUTS.shardHeartbeat,
    startToCloseTimeout: input.timeouts?.shardStartToClose ?? SHARD_TIMEOUTS.shardStartToClose,
  };
  const runShard = async (ref: ShardRef): Promise<void> => {
    const taskQueue = input.taskQueues?.[ref.pool] ?? TASK_QUEUES[ref.pool];
    // A pool without a free worker must not hang the run silently: see workflows/pool-wait.ts.
    const wait = {
      shard: ref.shard,
      pool: ref.pool,
      taskQueue,
      window: input.window,
      notice: input.timeouts?.poolWaitNotice ?? SHARD_TIMEOUTS.poolWaitNotice,
      limit: input.timeouts?.poolWaitLimit ?? SHARD_TIMEOUTS.poolWaitLimit,
      onWaiting: (entry: WaitingShard | undefined) => {
        progress.waiting = [
          ...(progress.waiting ?? []).filter((w) => w.shard !== ref.shard),
          ...(entry ? [entry] : []),
        ];
        report(progress);
      },
    };
    try {
      const summary = await withPoolWait(wait, (scheduleToStartTimeout) =>
        scoreShard.executeWithOptions(
          {
            ...shardOptions,
            scheduleToStartTimeout,
            taskQueue,
            summary: `shard ${ref.shard} · ${ref.pool} · ${ref.devices} devices`,
          },
          [
            {
              store: input.store,
              window: input.window,
              windowHours: input.windowHours,
              runId: input.runId,
              shard: ref.shard,
            },
          ],
        ),
      );
      addBatchResult(result, { ...summary, failedShards: [] });
      addToProgress(progress, summary);
    } catch (err) {
      if (isCancellation(err)) throw err;
      // A shard that failed for good fails its devices, not the run: the manifest names them and the reason.
      const reason =
        err instanceof ActivityFailure && err.cause
          ? err.cause.message
          : err instanceof Error
            ? err.message
            : String(err);
      result.failedShards.push({ shard: ref.shard, reason });
      result.failed += ref.devices;
      progress.devicesFailed += ref.devices;
    } finally {
      progress.shardsDone += 1;
      report(progress);
    }
  };
  await forEachLimited(input.shards, input.maxParallel, runShard);
  return result;
}

/**
 * Child workflow of a run whose plan has more shards than one history should hold: scores one slice of the
 * plan's shards and returns their counts; the parent run commits. Its progress query covers its own slice.
 */
export async function scoringRunShards(input: ShardBatchInput): Promise<ShardBatchResult> {
  const progress = initialProgress(input.window, 'scoring', input.shards);
  setHandler(progressQuery, () => progress);
  const report = (p: RunProgress) => setCurrentDetails(progressDetails(p));
  const result = await scoreShardLanes(input, progress, report);
  progress.phase = 'done';
  report(progress);
  return result;
}

/** The progress of a run (or a child) of `window` that has not finished a shard yet. */
export function initialProgress(window: string, phase: RunProgress['phase'], shards: ShardRef[]): RunProgress {
  return {
    window,
    phase,
    shardsTotal: shards.length,
    shardsDone: 0,
    devicesTotal: shards.reduce((n, s) => n + s.devices, 0),
    devicesScored: 0,
    devicesNoData: 0,
    devicesFailed: 0,
    anomalies: 0,
    waiting: [],
  };
}

/**
 * Progress as the Web UI's "current details", where a run's page opens: one summary line (window, fleet size and
 * pools, phase), the counts so far, and what the run is waiting for (its input, a pool).
 */
export function progressDetails(p: RunProgress): string {
  const pools = Object.entries(p.pools ?? {})
    .map(([pool, n]) => `${pool} ${n}`)
    .join(', ');
  const fleet = p.phase === 'planning' || p.phase === 'waiting-for-input' ? '' : ` · ${p.devicesTotal} devices`;
  const waits = [
    ...(p.input
      ? [
          `- waiting for input since ${p.input.since} (fails at ${p.input.until} without it): ` +
            p.input.missing.map((m) => `\`${m}\``).join(', '),
        ]
      : []),
    ...(p.waiting ?? []).map(
      (w) => `- shard ${w.shard} waiting for pool **${w.pool}** (task queue \`${w.taskQueue}\`) since ${w.since}`,
    ),
    ...(p.failures ?? []).map((f) => `- failed \`${f.device}\`: ${f.reason}`),
    ...(p.devicesFailed > (p.failures?.length ?? 0) && p.failures
      ? [`- and ${p.devicesFailed - p.failures.length} more failed devices: \`fleetscore runs show ${p.window}\``]
      : []),
  ];
  return (
    `**Window ${p.window}**${fleet}${pools ? ` (${pools})` : ''} · ${p.phase}\n\n` +
    `shards ${p.shardsDone}/${p.shardsTotal} · scored ${p.devicesScored} · ` +
    `no data ${p.devicesNoData} · failed ${p.devicesFailed} · anomalies ${p.anomalies}` +
    (waits.length ? `\n\n${waits.join('\n')}` : '')
  );
}
