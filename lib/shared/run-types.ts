/**
 * What crosses the workflow/activity boundary: store keys and small summaries, never row data. No Node
 * imports, because the workflow imports these types.
 */
import type { Duration } from '@temporalio/common';
import type { AggregatesLayout, Pool, PredictionsFormat } from './names';

/** Input of `scoringRun`, fixed in a schedule's action or given by `fleetscore runs start`. */
export interface ScoringRunInput {
  /** The store URI the run reads and writes (`s3://bucket/prefix` or a folder). */
  store: string;
  /** The schedule that starts the run; recorded in the manifest and search attributes. */
  scheduleId?: string;
  /**
   * The window to score (`2026-11-21T12`). Omitted for scheduled runs: they derive it from the nominal
   * scheduled time (`TemporalScheduledStartTime`) so late, retried and backfilled runs score the same rows.
   */
  window?: string;
  /** Window length in hours (default 1; a window id with `_<N>h`, e.g. `2026-11-21T00_24h`, names it too). */
  windowHours?: number;
  /**
   * How long after a window's end it becomes scoreable, so rows that arrive late still land (default 5 minutes for
   * runs given a window, 0 for scheduled runs: their schedule's offset already waits, and `schedules apply` passes
   * the declared `settle`). A run of a window that is not complete yet fails with `WindowNotComplete`.
   */
  settle?: Duration;
  /**
   * How long the run waits for its window's input before planning, on a durable timer (default 15 minutes; `0`:
   * look once). The input is ready when every hourly folder of the window holds a part, or its completion marker
   * with `inputMarker`. A window whose input never comes fails with `InputMissing`, never "no data" for the fleet.
   */
  inputWait?: Duration;
  /**
   * Wait for the producer's completion marker (`aggregates/window=<hour>/_SUCCESS`, see `INPUT_MARKER`) in every
   * hourly folder of the window instead of the first part (default false).
   */
  inputMarker?: boolean;
  /**
   * After committing its window, look for late data in the windows of the same length that started within this
   * horizon before it (e.g. `'6h'`): each committed window whose input changed since its run read it is scored
   * again by a run of its own (started, not awaited). Off by default.
   */
  rescoreLateWithin?: Duration;
  /**
   * The most devices per shard, the unit of retry (default 1,000). A pool of fewer devices than `maxParallelShards`
   * shards of this size is cut finer, into up to `maxParallelShards` shards of at least {@link MIN_SPLIT_SHARD}
   * devices, so that its shards run side by side (see `shardSizeFor`).
   */
  shardSize?: number;
  /** Shards in flight at once (default 8). */
  maxParallelShards?: number;
  /** Shards per child workflow when a plan has more (default 1,000); see `RUN_DEFAULTS`. */
  shardsPerChild?: number;
  /** Scores every device on this pool, whatever its model.json says. */
  pool?: Pool;
  /**
   * Where the producer puts each device's rows (default `any`): under `device-partitioned` an unreadable part
   * fails only the devices no readable part holds. See `AGGREGATES_LAYOUTS`.
   */
  aggregatesLayout?: AggregatesLayout;
  /** The format of the prediction files (default `arrow`); `parquet` for query engines. See `PREDICTIONS_FORMATS`. */
  predictionsFormat?: PredictionsFormat;
  /** Task queues of the pools when not the standard `fleetscore-cpu` / `fleetscore-gpu` (e.g. a staging fleet). */
  taskQueues?: Partial<Record<Pool, string>>;
  /** Overrides of the scoreShard activity timeouts (defaults in `SHARD_TIMEOUTS`); see {@link RunTimeouts}. */
  timeouts?: RunTimeouts;
}

/**
 * Operator knobs for the scoreShard activity's timeouts, as Temporal durations (`'30s'`, `'2 minutes'`, ms).
 * A shorter heartbeat timeout notices a dead or stuck worker sooner (the fault suite uses seconds); a longer
 * start-to-close timeout lets very large shards finish. Every other timeout and retry setting is fixed.
 */
export interface RunTimeouts {
  /** How long a shard may go without a heartbeat before Temporal retries it elsewhere (default 1 minute). */
  shardHeartbeat?: Duration;
  /** How long one attempt of a shard may take in all (default 30 minutes). */
  shardStartToClose?: Duration;
  /**
   * How long a shard may sit in its pool's task queue before the run lists it as waiting for the pool and
   * schedules it again (the activity's schedule-to-start timeout; default 5 minutes).
   */
  poolWaitNotice?: Duration;
  /** How long a shard may wait for its pool in all before its devices fail with `PoolUnavailable` (default 45 minutes). */
  poolWaitLimit?: Duration;
}

/**
 * The defaults applied to a `ScoringRunInput`. `shardsPerChild`: a plan with more shards than this is scored by
 * child workflows of this many shards each, one after another, so that each history holds about 5 events per shard
 * (a few thousand) however large the fleet; below it (at 1,000 devices per shard, fleets up to 1,000,000 devices)
 * the run scores its shards itself. `shardSize`: each shard costs the worker and the server a fixed share of
 * every run (its activity, four durable writes, its workflow task), so 1,000 rather than 500: warm 10,000-device
 * runs took a median 1.26 s against 1.79 s (ocsvm-rbf, 18 warm runs each way, docs/benchmarks.md).
 */
export const RUN_DEFAULTS = {
  windowHours: 1,
  shardSize: 1000,
  maxParallelShards: 8,
  shardsPerChild: 1000,
  settle: '5m',
  inputWait: '15m',
} as const;

/** The scoreShard timeouts a run uses unless `ScoringRunInput.timeouts` overrides them. */
export const SHARD_TIMEOUTS = {
  shardHeartbeat: '1 minute',
  shardStartToClose: '30 minutes',
  // An hourly run that waits for a missing pool still commits (its devices failed) before the next run is due.
  poolWaitNotice: '5 minutes',
  poolWaitLimit: '45 minutes',
} as const;

/**
 * The most devices one shard may hold. A shard is one activity attempt with its plan file, its parsed rows and
 * its predictions in memory; bigger shards risk the start-to-close timeout and a retry that redoes too much.
 */
export const MAX_SHARD_SIZE = 20_000;

/**
 * The fewest devices a shard holds when a small pool is cut finer than `shardSize`: a shard costs a run a fixed
 * share (its activity, four durable writes, a workflow task). At 1,000 devices (`npm run bench`, one worker of two
 * shard threads, 2026-12-04) four shards of 250 against one of 1,000: 100-tree forests cold in 6.4 s against 8.6 s,
 * warm in 0.32 s against 0.51 s; the five small families (SVMs, PCA, autoencoder, Mahalanobis) within 0.02 s
 * warm (their cold runs 0.03 to 0.09 s slower; docs/benchmarks.md). In 125-device shards a warm run of one-class SVMs
 * took longer than in one shard.
 */
export const MIN_SPLIT_SHARD = 250;

/** Input of planRun. */
export interface PlanRequest {
  store: string;
  window: string;
  /** The window's length; a window id with `_<N>h` names it too (default 1). */
  windowHours?: number;
  /** The most devices per shard. */
  shardSize: number;
  /**
   * The run's shards in flight at once: when given, a pool of fewer than this many shards of `shardSize` is cut
   * into this many, of at least {@link MIN_SPLIT_SHARD} devices (`shardSizeFor`). Without it, shards of
   * `shardSize` (plans of runs started before this was passed).
   */
  maxParallelShards?: number;
  pool?: Pool;
  /** Recorded in every shard's plan file; default `any`. */
  aggregatesLayout?: AggregatesLayout;
  /** Recorded in every shard's plan file, so all shards of a run write one format; default `arrow`. */
  predictionsFormat?: PredictionsFormat;
  /**
   * Names this run's plan and fences its files (`predictions/window=W/run=<runId>/`): the workflow passes its
   * run id, so a retried planRun rewrites the same files and two runs of one window never share any. Default:
   * a random UUID.
   */
  runId?: string;
}

/** Input of findLateWindows: a store's committed windows of one length starting in `[fromMs, toMs)`. */
export interface LateWindowsRequest {
  store: string;
  windowHours: number;
  fromMs: number;
  toMs: number;
}

/** A committed window whose input changed since its run read it, and the id of the run that scores it again. */
export interface LateWindow {
  window: string;
  workflowId: string;
}

/** Input of checkInput: whether a window's input has arrived. */
export interface InputCheckRequest {
  store: string;
  window: string;
  /** Ready only when every hourly folder holds the producer's completion marker, not just a part. */
  marker: boolean;
}

/** What checkInput found. */
export interface InputCheck {
  ready: boolean;
  /** Parts found in all of the window's hourly folders. */
  parts: number;
  /** The folders still without a part (or marker), as full store locations (`s3://bucket/aggregates/window=…/`). */
  missing: string[];
}

/** One shard of a plan: which pool scores it and how many devices it holds (the list is in the store). */
export interface ShardRef {
  shard: number;
  pool: Pool;
  devices: number;
}

/** What planRun returns: the shards, the aggregate parts found, and where the full plan is. */
export interface RunPlan {
  window: string;
  /** The run id every shard and the commit of this run use. */
  runId: string;
  devices: number;
  parts: number;
  shards: ShardRef[];
}

/** Input of scoreShard. */
export interface ShardRequest {
  store: string;
  window: string;
  windowHours: number;
  runId: string;
  shard: number;
}

/** A device that could not be scored and why, as reported to the workflow (bounded list). */
export interface DeviceFailure {
  device: string;
  reason: string;
}

/** What scoreShard returns: counts only. Per-device status is in the shard status file. */
export interface ShardSummary extends RunCounts {
  shard: number;
  pool: Pool;
  attempt: number;
  /** The first few failures, for the run summary; all of them are in the manifest and the shard log. */
  failures: DeviceFailure[];
  durationMs: number;
  /** Where the S3 model files it read came from (the worker's metrics count them); absent when it read none. */
  modelFiles?: ModelFileReads;
}

/** Model files read, by where from: the host's folder (or the memory of files not yet written), or the store. */
export type ModelFileReads = {
  host: number;
  store: number;
};

/** Input of the `scoringRunShards` child workflow, and of the shard loop a run runs itself. */
export interface ShardBatchInput {
  store: string;
  window: string;
  windowHours: number;
  runId: string;
  shards: ShardRef[];
  maxParallel: number;
  taskQueues?: Partial<Record<Pool, string>>;
  timeouts?: RunTimeouts;
}

/** What scoring a batch of shards adds up to: device counts, the first failures and the shards that failed. */
export interface ShardBatchResult {
  scored: number;
  noData: number;
  failed: number;
  anomalies: number;
  failures: DeviceFailure[];
  failedShards: FailedShard[];
}

/** A shard whose activity failed for good (retries exhausted or non-retryable): all its devices fail. */
export interface FailedShard {
  shard: number;
  reason: string;
}

/** Input of commitRun. */
export interface CommitRequest {
  store: string;
  window: string;
  windowHours: number;
  scheduleId?: string;
  workflowId: string;
  runId: string;
  /** When the run started (ISO 8601): orders commits, so an older run never replaces a newer one's. */
  runStartedAt?: string;
  shards: ShardRef[];
  failedShards: FailedShard[];
}

/**
 * What a commit did: `committed` (the manifest is this run's), `already-committed` (this run's commit was
 * already there: a retried commit writes nothing again), `superseded` (a run that started later had committed
 * the window; nothing was written) or `kept` (every device of this run failed while the window's commit scored
 * devices: nothing was written, and the earlier predictions stand rather than being replaced by none).
 */
export type CommitOutcome = 'committed' | 'already-committed' | 'superseded' | 'kept';

/** Counts of one committed run; the workflow's result and the manifest's head. */
export interface RunCounts {
  devices: number;
  scored: number;
  noData: number;
  failed: number;
  rows: number;
  anomalies: number;
}

/** How many failed devices a run's result, memo and Web UI list by name; the manifest keeps all of them. */
export const FAILURES_LISTED = 20;

/** What commitRun returns: the counts and the manifest's key. */
export interface CommitResult extends RunCounts {
  manifest: string;
  outcome: CommitOutcome;
  /** The run whose commit stands, when this one was superseded or the earlier commit was kept. */
  supersededBy?: string;
  /**
   * The first failed devices by id (at most `FAILURES_LISTED`) and why, whole-shard failures included. Absent from
   * commits of runs from before it existed.
   */
  failures?: DeviceFailure[];
  /** Device ids with rows in the window but no model in the plan (listed in the manifest's `unknownDevices`). */
  unknownDevices: number;
}

/** What scoringRun returns. */
export interface RunSummary extends RunCounts {
  window: string;
  manifest: string;
  shards: number;
  failedShards: number;
  /**
   * The first failed devices and why (at most `FAILURES_LISTED`; `failed` counts them all, the manifest lists them
   * all), whole-shard failures included.
   */
  failures: DeviceFailure[];
  /** The shards that failed whole and why (at most `FAILURES_LISTED`). */
  shardFailures?: FailedShard[];
  /** Earlier windows with late data this run started runs for (`rescoreLateWithin`). */
  rescored?: string[];
  /** Device ids with rows in the window but no model: not scored, listed in the manifest. */
  unknownDevices: number;
  /** What the commit did; a `superseded` run's counts are its own, but the window keeps the newer run's. */
  outcome?: CommitOutcome;
  supersededBy?: string;
}

/**
 * `value` with its `runId`: activity inputs, plan and status files written before the run id had one name call it
 * `planId` (a run in flight while workers are upgraded still reads them).
 */
export function withRunId<T extends object>(value: T): T {
  const legacy = value as { runId?: unknown; planId?: unknown };
  return legacy.runId === undefined && typeof legacy.planId === 'string' ? { ...value, runId: legacy.planId } : value;
}
