/**
 * scoringRun: scores one window for the whole fleet. Plan the shards, score them on their pools with bounded
 * parallelism, then commit the manifest. Deterministic: no I/O, clocks or randomness here.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import {
  progressQuery,
  SCHEDULED_START_TIME,
  SEARCH_ATTRIBUTES,
  TASK_QUEUES,
  type RunProgress,
  type WaitingShard,
} from '../lib/names';
import {
  MAX_SHARD_SIZE,
  NON_RETRYABLE_ERROR_TYPES,
  RUN_DEFAULTS,
  SHARD_TIMEOUTS,
  type DeviceFailure,
  type FailedShard,
  type RunSummary,
  type ScoringRunInput,
  type ShardRef,
} from '../lib/scoring/run-types';
import { parseWindow, windowBefore, type Window } from '../lib/window';
import { withPoolWait } from './pool-wait';

type Activities = ReturnType<typeof createActivities>;

/** Errors a retry cannot fix; activities also raise them as non-retryable, this list is the second guard. */
const nonRetryableErrorTypes = [...NON_RETRYABLE_ERROR_TYPES];

// Planning and committing read an index and a few small files: quick, so short timeouts surface a stuck store.
const { planRun, commitRun } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '30s',
    maximumAttempts: 10,
    nonRetryableErrorTypes,
  },
});

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
    nonRetryableErrorTypes,
  },
};
const { scoreShard } = proxyActivities<Activities>(SCORING_OPTIONS);

/** Scores one window for the whole fleet and returns the committed counts. */
export async function scoringRun(input: ScoringRunInput): Promise<RunSummary> {
  const window = resolveWindow(input);
  const shardSize = input.shardSize ?? RUN_DEFAULTS.shardSize;
  const maxParallel = input.maxParallelShards ?? RUN_DEFAULTS.maxParallelShards;
  const windowHours = input.windowHours ?? RUN_DEFAULTS.windowHours;
  if (!input.store) throw ApplicationFailure.nonRetryable('scoringRun needs a store URI', 'InvalidInput');
  if (!Number.isInteger(shardSize) || shardSize < 1 || !Number.isInteger(maxParallel) || maxParallel < 1) {
    throw ApplicationFailure.nonRetryable(
      `shardSize and maxParallelShards must be positive integers, got ${shardSize} and ${maxParallel}`,
      'InvalidInput',
    );
  }
  if (shardSize > MAX_SHARD_SIZE) {
    throw ApplicationFailure.nonRetryable(
      `shardSize ${shardSize} is over the limit of ${MAX_SHARD_SIZE} devices per shard: one shard is one retry`,
      'InvalidInput',
    );
  }
  // Operator knobs: a shorter heartbeat timeout notices a dead worker sooner (the fault suite uses seconds).
  const shardOptions: ActivityOptions = {
    ...SCORING_OPTIONS,
    heartbeatTimeout: input.timeouts?.shardHeartbeat ?? SHARD_TIMEOUTS.shardHeartbeat,
    startToCloseTimeout: input.timeouts?.shardStartToClose ?? SHARD_TIMEOUTS.shardStartToClose,
  };

  const progress: RunProgress = {
    window: window.id,
    phase: 'planning',
    shardsTotal: 0,
    shardsDone: 0,
    devicesTotal: 0,
    devicesScored: 0,
    devicesNoData: 0,
    devicesFailed: 0,
    anomalies: 0,
    waiting: [],
  };
  setHandler(progressQuery, () => progress);
  upsertSearchAttributes([
    { key: SEARCH_ATTRIBUTES.window, value: window.id },
    ...(input.scheduleId ? [{ key: SEARCH_ATTRIBUTES.schedule, value: input.scheduleId }] : []),
  ]);

  // The run id names the plan: a retried planRun rewrites the same files, another run of the window never does.
  const plan = await planRun({
    store: input.store,
    window: window.id,
    shardSize,
    pool: input.pool,
    aggregatesLayout: input.aggregatesLayout,
    planId: workflowInfo().runId,
  });
  progress.phase = 'scoring';
  progress.shardsTotal = plan.shards.length;
  progress.devicesTotal = plan.devices;
  report(progress);

  const failedShards: FailedShard[] = [];
  const failures: DeviceFailure[] = [];
  const runShard = async (ref: ShardRef): Promise<void> => {
    const taskQueue = input.taskQueues?.[ref.pool] ?? TASK_QUEUES[ref.pool];
    // A pool without a free worker must not hang the run silently: see workflows/pool-wait.ts.
    const wait = {
      shard: ref.shard,
      pool: ref.pool,
      taskQueue,
      window: window.id,
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
          [{ store: input.store, window: window.id, windowHours, planId: plan.planId, shard: ref.shard }],
        ),
      );
      progress.devicesScored += summary.scored;
      progress.devicesNoData += summary.noData;
      progress.devicesFailed += summary.failed;
      progress.anomalies += summary.anomalies;
      failures.push(...summary.failures.slice(0, Math.max(0, 20 - failures.length)));
    } catch (err) {
      if (isCancellation(err)) throw err;
      // A shard that failed for good fails its devices, not the run: the manifest names them and the reason.
      const reason =
        err instanceof ActivityFailure && err.cause
          ? err.cause.message
          : err instanceof Error
            ? err.message
            : String(err);
      failedShards.push({ shard: ref.shard, reason });
      progress.devicesFailed += ref.devices;
    } finally {
      progress.shardsDone += 1;
      report(progress);
    }
  };
  const queue = [...plan.shards];
  const lanes = Array.from({ length: Math.min(maxParallel, queue.length) }, async () => {
    for (let ref = queue.shift(); ref; ref = queue.shift()) await runShard(ref);
  });
  await Promise.all(lanes);

  progress.phase = 'committing';
  const info = workflowInfo();
  const counts = await commitRun({
    store: input.store,
    window: window.id,
    windowHours,
    scheduleId: input.scheduleId,
    workflowId: info.workflowId,
    runId: info.runId,
    planId: plan.planId,
    shards: plan.shards,
    failedShards: failedShards.sort((a, b) => a.shard - b.shard),
  });
  progress.phase = 'done';
  report(progress);
  upsertSearchAttributes([
    { key: SEARCH_ATTRIBUTES.scored, value: counts.scored },
    { key: SEARCH_ATTRIBUTES.failed, value: counts.failed },
    { key: SEARCH_ATTRIBUTES.anomalies, value: counts.anomalies },
  ]);
  const summary: RunSummary = {
    ...counts,
    window: window.id,
    manifest: counts.manifest,
    shards: plan.shards.length,
    failedShards: failedShards.length,
    failures,
    unknownDevices: counts.unknownDevices,
  };
  upsertMemo({ summary: { ...counts, window: window.id, shards: summary.shards, failedShards: summary.failedShards } });
  return summary;
}

/** The window from the input (manual and CLI runs) or from the schedule's nominal time (scheduled runs). */
function resolveWindow(input: ScoringRunInput): Window {
  const hours = input.windowHours ?? RUN_DEFAULTS.windowHours;
  try {
    if (input.window) return parseWindow(input.window, hours);
    const scheduled = workflowInfo().typedSearchAttributes.get(SCHEDULED_START_TIME);
    if (scheduled) return windowBefore(scheduled.getTime(), hours);
  } catch (err) {
    throw ApplicationFailure.nonRetryable(err instanceof Error ? err.message : String(err), 'InvalidInput');
  }
  throw ApplicationFailure.nonRetryable(
    'no window: pass `window` (e.g. 2026-11-21T12) or start the run from a schedule',
    'InvalidInput',
  );
}

/** Shows progress in the Web UI's "current details", with the shards waiting for a pool. */
function report(p: RunProgress): void {
  const waiting = (p.waiting ?? []).map(
    (w) => `- shard ${w.shard} waiting for pool **${w.pool}** (task queue \`${w.taskQueue}\`) since ${w.since}`,
  );
  setCurrentDetails(
    `**Window ${p.window}** · ${p.phase}\n\n` +
      `shards ${p.shardsDone}/${p.shardsTotal} · devices ${p.devicesTotal} · scored ${p.devicesScored} · ` +
      `no data ${p.devicesNoData} · failed ${p.devicesFailed} · anomalies ${p.anomalies}` +
      (waiting.length ? `\n\n${waiting.join('\n')}` : ''),
  );
}
