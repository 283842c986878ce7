/**
 * scoringRun: scores one window for the whole fleet. Plan the shards, score them on their pools with bounded
 * parallelism, then commit the manifest. Deterministic: no I/O, clocks or randomness here.
 */
import {
  executeChild,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { SCHEDULED_START_TIME, SEARCH_ATTRIBUTES, type RunProgress } from '../lib/shared/names';
import { progressQuery } from '../lib/shared/queries';
import { NON_RETRYABLE_ERROR_TYPES, toApplicationFailure } from '../lib/shared/error-types';
import { InvalidInput, messageOf, WindowNotComplete } from '../lib/shared/errors';
import { durationMs } from '../lib/shared/duration';
import {
  FAILURES_LISTED,
  MAX_SHARD_SIZE,
  RUN_DEFAULTS,
  type RunSummary,
  type ScoringRunInput,
  type ShardBatchInput,
  type ShardBatchResult,
} from '../lib/shared/run-types';
import { assertComplete, hoursOf, parseWindow, windowBefore, type Window } from '../lib/shared/window';
import {
  addBatchResult,
  addToProgress,
  emptyBatchResult,
  initialProgress,
  progressDetails,
  scoreShardLanes,
  scoringRunShards,
} from './score-shards';
import { waitForInput } from './input-wait';
import { rescoreLate } from './rescore-late';

type Activities = ReturnType<typeof createActivities>;

/** Errors a retry cannot fix; activities also raise them as non-retryable, this list is the second guard. */
const nonRetryableErrorTypes = [...NON_RETRYABLE_ERROR_TYPES];

// Planning and committing read an index and a few small files: quick, so short timeouts surface a stuck store.
const QUICK_OPTIONS = {
  startToCloseTimeout: '5 minutes',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '30s',
    maximumAttempts: 10,
    nonRetryableErrorTypes,
  },
} satisfies LocalActivityOptions;
// Local activities run on the worker that runs this workflow (the cpu pool, where planRun and commitRun always
// ran), inside the workflow task that calls them: no trip through the task queue to start, no workflow task of
// their own to deliver the result. Those round trips were a tenth of a 10,000-device run. Same code, timeout and
// retry policy; every backoff stays under the SDK's 1-minute local retry threshold, so retries stay on the worker.
// A worker that dies mid-step is noticed at the workflow task timeout (10 s) and the step runs again on another
// worker, as safe as any retry: both steps only write keys fixed by (window, plan).
const localQuick = proxyLocalActivities<Activities>(QUICK_OPTIONS);
// Runs that started before the patch below scheduled both as ordinary activities; they replay only like that.
const remoteQuick = proxyActivities<Activities>(QUICK_OPTIONS);
/** Patch id of running planRun and commitRun as local activities. */
const LOCAL_PLAN_AND_COMMIT = 'local-plan-and-commit';

/** Patch id of scoring a plan of more than `shardsPerChild` shards with child workflows. */
const CHILD_FAN_OUT = 'child-fan-out';

/** Patch id of refusing a window that is not complete, and of the `FleetscoreStore` search attribute. */
const COMPLETE_WINDOWS = 'complete-windows';

/** Patch id of waiting for the window's input before planning. */
const INPUT_READINESS = 'input-readiness';

/** Patch id of re-scoring earlier windows with late data after the commit (`rescoreLateWithin`). */
const RESCORE_LATE = 'rescore-late';

/** Scores one window for the whole fleet and returns the committed counts. */
export async function scoringRun(input: ScoringRunInput): Promise<RunSummary> {
  const window = resolveWindow(input);
  const shardSize = input.shardSize ?? RUN_DEFAULTS.shardSize;
  const maxParallel = input.maxParallelShards ?? RUN_DEFAULTS.maxParallelShards;
  const shardsPerChild = input.shardsPerChild ?? RUN_DEFAULTS.shardsPerChild;
  // From the window, which a window id with `_<N>h` names too; runs from before that had no other source.
  const windowHours = hoursOf(window);
  if (!input.store) throw invalidInput('scoringRun needs a store URI');
  for (const [name, value] of Object.entries({ shardSize, maxParallelShards: maxParallel, shardsPerChild })) {
    if (!Number.isInteger(value) || value < 1) {
      throw invalidInput(`${name} must be a positive integer, got ${value}`);
    }
  }
  if (shardSize > MAX_SHARD_SIZE) {
    throw invalidInput(
      `shardSize ${shardSize} is over the limit of ${MAX_SHARD_SIZE} devices per shard: one shard is one retry`,
    );
  }
  const progress = initialProgress(window.id, 'planning', []);
  setHandler(progressQuery, () => progress);
  const completeOnly = patched(COMPLETE_WINDOWS);
  upsertSearchAttributes([
    { key: SEARCH_ATTRIBUTES.window, value: window.id },
    ...(input.scheduleId ? [{ key: SEARCH_ATTRIBUTES.schedule, value: input.scheduleId }] : []),
    ...(completeOnly ? [{ key: SEARCH_ATTRIBUTES.store, value: input.store }] : []),
  ]);
  // Refused after the search attributes are set, so the refused run is found by its window.
  if (completeOnly) refuseIncomplete(window, input);

  // Decided once, before the first step, so a run plans and commits the same way, also on replay.
  const { planRun, commitRun, checkInput, findLateWindows } = patched(LOCAL_PLAN_AND_COMMIT) ? localQuick : remoteQuick;
  if (patched(INPUT_READINESS)) {
    const marker = input.inputMarker ?? false;
    await waitForInput({
      window: window.id,
      wait: input.inputWait ?? RUN_DEFAULTS.inputWait,
      marker,
      check: () => checkInput({ store: input.store, window: window.id, marker }),
      onWaiting: (state) => {
        progress.phase = state ? 'waiting-for-input' : 'planning';
        progress.input = state;
        report(progress);
      },
    });
  }
  // The run id names the plan: a retried planRun rewrites the same files, another run of the window never does.
  const plan = await planRun({
    store: input.store,
    window: window.id,
    shardSize,
    maxParallelShards: maxParallel,
    pool: input.pool,
    aggregatesLayout: input.aggregatesLayout,
    predictionsFormat: input.predictionsFormat,
    runId: workflowInfo().runId,
  });
  progress.phase = 'scoring';
  progress.shardsTotal = plan.shards.length;
  progress.devicesTotal = plan.devices;
  progress.pools = {};
  for (const s of plan.shards) progress.pools[s.pool] = (progress.pools[s.pool] ?? 0) + s.devices;
  report(progress);

  const batch: ShardBatchInput = {
    store: input.store,
    window: window.id,
    windowHours,
    runId: plan.runId,
    shards: plan.shards,
    maxParallel,
    ...(input.taskQueues ? { taskQueues: input.taskQueues } : {}),
    ...(input.timeouts ? { timeouts: input.timeouts } : {}),
  };
  let scored: ShardBatchResult;
  if (plan.shards.length > shardsPerChild && patched(CHILD_FAN_OUT)) {
    // A plan this large is scored by child workflows of `shardsPerChild` shards, one after another, so that no
    // history grows with the fleet. Each child reports its own progress; this run's advances per child.
    scored = emptyBatchResult();
    const { workflowId, runId } = workflowInfo();
    for (let first = 0; first < plan.shards.length; first += shardsPerChild) {
      const shards = plan.shards.slice(first, first + shardsPerChild);
      const part = await executeChild(scoringRunShards, {
        args: [{ ...batch, shards }],
        workflowId: `${workflowId}-shards-${first}-${runId.slice(0, 8)}`,
        staticSummary: `fleetscore: window ${window.id}, shards ${first}-${first + shards.length - 1}`,
      });
      addBatchResult(scored, part);
      progress.shardsDone += shards.length;
      addToProgress(progress, part);
      report(progress);
    }
  } else {
    scored = await scoreShardLanes(batch, progress, report);
  }
  const { failedShards, failures } = scored;

  progress.phase = 'committing';
  const info = workflowInfo();
  const counts = await commitRun({
    store: input.store,
    window: window.id,
    windowHours,
    scheduleId: input.scheduleId,
    workflowId: info.workflowId,
    runId: plan.runId,
    // When the run was started (its WorkflowExecutionStarted event), not when a worker first took it up
    // (`runStartTime`): runs started while no worker polled must still commit in the order they were started.
    runStartedAt: info.startTime.toISOString(),
    shards: plan.shards,
    failedShards: failedShards.sort((a, b) => a.shard - b.shard),
  });
  // Commits of this version list every failed device, whole-shard failures included; older ones only the first
  // failures the shards reported.
  const listed = counts.failures ?? failures;
  progress.phase = 'done';
  progress.failures = listed;
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
    failures: listed,
    shardFailures: failedShards.slice(0, FAILURES_LISTED),
    unknownDevices: counts.unknownDevices,
  };
  if (input.rescoreLateWithin !== undefined && patched(RESCORE_LATE)) {
    summary.rescored = await rescoreLate(input, window, findLateWindows);
  }
  // The Web UI shows the memo beside the result: the counts and who failed, for people who never open the store.
  upsertMemo({ summary });
  return summary;
}

/** The window from the input (manual and CLI runs) or from the schedule's nominal time (scheduled runs). */
function resolveWindow(input: ScoringRunInput): Window {
  const hours = input.windowHours;
  try {
    if (input.window) return parseWindow(input.window, hours);
    const scheduled = workflowInfo().typedSearchAttributes.get(SCHEDULED_START_TIME);
    if (scheduled) return windowBefore(scheduled.getTime(), hours ?? RUN_DEFAULTS.windowHours);
  } catch (err) {
    throw invalidInput(messageOf(err));
  }
  throw invalidInput('no window: pass `window` (e.g. 2026-11-21T12) or start the run from a schedule');
}

/**
 * Fails the run, non-retryably, when its window has not ended plus its settle time by workflow time: the rows of
 * an incomplete window are still to come. Scheduled runs start after their window's end by the schedule's offset.
 */
function refuseIncomplete(window: Window, input: ScoringRunInput): void {
  const settle = input.settle ?? (input.window ? RUN_DEFAULTS.settle : 0);
  const settleMs = durationMs(settle);
  if (settleMs === undefined || settleMs < 0) throw invalidInput(`settle is not a duration: ${JSON.stringify(settle)}`);
  try {
    assertComplete(window, settleMs, Date.now());
  } catch (err) {
    if (err instanceof WindowNotComplete) throw toApplicationFailure(err);
    throw err;
  }
}

/** Input the run cannot start from: fails the run at once (a workflow-task error would retry forever). */
function invalidInput(message: string) {
  return toApplicationFailure(new InvalidInput(message));
}

/** Shows progress in the Web UI's "current details", with the shards waiting for a pool. */
function report(p: RunProgress): void {
  setCurrentDetails(progressDetails(p));
}
