/**
 * The activities barrel for `Worker.create`: `createActivities(deps)` binds the scoring work in lib/ to a
 * worker's store cache and model sessions. Activities stay thin; the logic lives in lib/scoring.
 */
import { cancellationSignal, Context, log } from '@temporalio/activity';
import type { ModelSessionCache } from '../lib/models/model-sessions';
import { cachedWindowDevices, commitRun } from '../lib/scoring/commit-run';
import { planRun, type PlannedInput } from '../lib/scoring/plan-run';
import { checkInput } from '../lib/scoring/check-input';
import {
  withRunId,
  type CommitRequest,
  type CommitResult,
  type InputCheck,
  type InputCheckRequest,
  type LateWindow,
  type LateWindowsRequest,
  type PlanRequest,
  type RunPlan,
  type ShardRequest,
  type ShardSummary,
} from '../lib/shared/run-types';
import { scoreShard } from '../lib/scoring/score-shard';
import type { ShardThreads } from '../lib/scoring/shard-threads';
import { ModelFreshness } from '../lib/scoring/model-freshness';
import { checkWindows, windowsBefore } from '../lib/scoring/stale-windows';
import { runWorkflowId } from '../lib/temporal/runs';
import { parseWindow } from '../lib/shared/window';
import type { AggregatesCache } from '../lib/arrow/aggregates-cache';
import type { ObjectStore } from '../lib/store/object-store';
import { withSignal } from '../lib/store/signal-store';
import { toApplicationFailure } from '../lib/shared/error-types';
import { FleetscoreError } from '../lib/shared/errors';

/**
 * The INFO line a planning worker logs once its shard threads have read and parsed the run's parts (attributes
 * `window`, `runId`, `parts`, `startedAt`, `ms`); bench/run.ts reads it.
 */
export const READ_AHEAD_MESSAGE = 'read the window ahead of its shards';

/** The least time between two heartbeats a shard's activity passes on to the SDK. */
const HEARTBEAT_CALL_MS = 1_000;

/** What a worker gives its activities: how to open a store, its caches, and where shards are scored. */
export interface ActivityDeps {
  openStore(uri: string): ObjectStore;
  /** The session cache of shards scored on this event loop (without `shardThreads`). */
  sessions: ModelSessionCache;
  aggregates: AggregatesCache;
  /** Threads that score shards with caches of their own (the cpu pool); without them, shards run on this loop. */
  shardThreads?: ShardThreads;
}

/** Builds the activities of one worker. */
export function createActivities(deps: ActivityDeps) {
  const freshness = new ModelFreshness();
  return {
    /** Plans a window's shards; see lib/scoring/plan-run. */
    async planRun(input: PlanRequest): Promise<RunPlan> {
      const req = withRunId(input);
      const threads = deps.shardThreads;
      // This worker's shard threads read the parts while the run's shards are scheduled (most shards of a run land
      // on the worker that planned it); a thread's shard waits for that read rather than starting another.
      // Logged with when it started and how long it took: it runs while the shards are dispatched, which the run's
      // history shows as time with no activity running (the bench counts it as the worker's, not Temporal's).
      const readAhead = (planned: PlannedInput): void => {
        const window = parseWindow(req.window, req.windowHours);
        const startedAt = new Date();
        threads?.readAhead({ store: req.store, window, ...planned }).then(
          () => {
            const ms = Date.now() - startedAt.getTime();
            log.info(READ_AHEAD_MESSAGE, {
              window: req.window,
              runId: planned.runId,
              parts: planned.parts.length,
              startedAt: startedAt.toISOString(),
              ms,
            });
          },
          (err: unknown) => {
            log.warn('reading the window ahead of its shards failed; each shard reads it itself', {
              window: req.window,
              error: err instanceof Error ? err.message : String(err),
            });
          },
        );
      };
      return asFailure(() => planRun(attemptStore(deps, req.store), req, threads && readAhead));
    },

    /** Whether a window's input has arrived; see lib/scoring/check-input. */
    async checkInput(req: InputCheckRequest): Promise<InputCheck> {
      return asFailure(() => checkInput(attemptStore(deps, req.store), req));
    },

    /** The committed windows in a range whose input changed since their run read it; see lib/scoring/stale-windows. */
    async findLateWindows(req: LateWindowsRequest): Promise<LateWindow[]> {
      return asFailure(async () => {
        const windows = windowsBefore(req.fromMs, req.toMs, req.windowHours);
        const { stale } = await checkWindows(attemptStore(deps, req.store), windows);
        return stale.map((s) => ({ window: s.window, workflowId: runWorkflowId(req.store, s.window) }));
      });
    },

    /** Scores one shard on this worker's pool; see lib/scoring/score-shard. */
    async scoreShard(input: ShardRequest): Promise<ShardSummary> {
      const req = withRunId(input);
      // Captured here: a shard thread's heartbeats and logs arrive outside the activity's async context.
      const context = Context.current();
      const { info, cancellationSignal: signal } = context;
      // The SDK sends at most one heartbeat per throttle interval and keeps the latest details, but each call
      // costs about a millisecond of its RxJS pipeline (a shard calls every 25 devices): pass on one a second. The
      // first goes a second into the attempt, not at once (the SDK sends an attempt's first call straight away): a
      // shard done sooner, as warm ones are, costs the server no heartbeat (docs/benchmarks.md, 2026-12-07 15:14).
      let lastBeat = Date.now();
      const beat = (details: { devicesDone: number }): void => {
        if (Date.now() - lastBeat < HEARTBEAT_CALL_MS) return;
        lastBeat = Date.now();
        context.heartbeat(details);
      };
      const ctx = {
        signal,
        attempt: info.attempt,
        taskQueue: info.taskQueue,
        workflowId: info.workflowExecution?.workflowId ?? '',
        workflowRunId: info.workflowExecution?.runId ?? '',
        heartbeat: beat,
        log: context.log,
      };
      const threads = deps.shardThreads;
      if (threads) return asFailure(() => threads.score(req, ctx));
      const store = deps.openStore(req.store);
      const shard = {
        store: withSignal(store, signal),
        sharedStore: store,
        sessions: deps.sessions,
        aggregates: deps.aggregates,
        freshness,
      };
      return asFailure(() => scoreShard(shard, req, ctx));
    },

    /** Writes the window's manifest; see lib/scoring/commit-run. */
    async commitRun(input: CommitRequest): Promise<CommitResult> {
      const req = withRunId(input);
      const threads = deps.shardThreads;
      const result = await asFailure(() =>
        commitRun(attemptStore(deps, req.store), req, {
          // On shard threads the parts were parsed there, not on this event loop: ask one rather than parse again.
          windowDevices: threads
            ? (_store, window, parts, runId) => threads.windowDevices({ store: req.store, window, parts, runId })
            : cachedWindowDevices(deps.aggregates),
          logger: log,
        }),
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

/** The store an attempt works through: every call carries its cancellation signal, so nothing is written after it. */
function attemptStore(deps: ActivityDeps, uri: string): ObjectStore {
  return withSignal(deps.openStore(uri), cancellationSignal());
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
