/**
 * The activities barrel for `Worker.create`: `createActivities(deps)` binds the scoring work in lib/ to a
 * worker's store cache and model sessions. Activities stay thin; the logic lives in lib/scoring.
 */
import { activityInfo, heartbeat, log } from '@temporalio/activity';
import type { ModelSessionCache } from '../lib/models/model-sessions';
import { commitRun } from '../lib/scoring/commit-run';
import { planRun } from '../lib/scoring/plan-run';
import {
  withRunId,
  type CommitRequest,
  type CommitResult,
  type PlanRequest,
  type RunPlan,
  type ShardRequest,
  type ShardSummary,
} from '../lib/shared/run-types';
import { scoreShard } from '../lib/scoring/score-shard';
import type { AggregatesCache } from '../lib/arrow/aggregates-cache';
import type { ObjectStore } from '../lib/store/object-store';
import { toApplicationFailure } from '../lib/shared/error-types';
import { FleetscoreError } from '../lib/shared/errors';

/** What a worker gives its activities: how to open a store, and its caches. */
export interface ActivityDeps {
  openStore(uri: string): ObjectStore;
  sessions: ModelSessionCache;
  aggregates: AggregatesCache;
}

/** Builds the activities of one worker. */
export function createActivities(deps: ActivityDeps) {
  return {
    /** Plans a window's shards; see lib/scoring/plan-run. */
    async planRun(req: PlanRequest): Promise<RunPlan> {
      return asFailure(() => planRun(deps.openStore(req.store), withRunId(req)));
    },

    /** Scores one shard on this worker's pool; see lib/scoring/score-shard. */
    async scoreShard(input: ShardRequest): Promise<ShardSummary> {
      const req = withRunId(input);
      const info = activityInfo();
      return asFailure(() =>
        scoreShard({ store: deps.openStore(req.store), sessions: deps.sessions, aggregates: deps.aggregates }, req, {
          attempt: info.attempt,
          taskQueue: info.taskQueue,
          workflowId: info.workflowExecution?.workflowId ?? '',
          workflowRunId: info.workflowExecution?.runId ?? '',
          heartbeat: (details) => heartbeat(details),
          log,
        }),
      );
    },

    /** Writes the window's manifest; see lib/scoring/commit-run. */
    async commitRun(input: CommitRequest): Promise<CommitResult> {
      const req = withRunId(input);
      const result = await asFailure(() =>
        commitRun(deps.openStore(req.store), req, { aggregates: deps.aggregates, logger: log }),
      );
      if (result.unknownDevices > 0) {
        // Rows for devices without a model are not an error of this run, but someone should see them.
        log.warn('the window has rows of devices with no model; listed in the manifest as unknownDevices', {
          window: req.window,
          unknownDevices: result.unknownDevices,
          manifest: result.manifest,
        });
      }
      return result;
    },
  };
}

/**
 * Runs `work`, turning a fleetscore error into an ApplicationFailure of its class's name (non-retryable when a
 * retry cannot fix it), so Temporal stops at once instead of retrying until the attempts run out.
 */
async function asFailure<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof FleetscoreError) throw toApplicationFailure(err);
    throw err;
  }
}
