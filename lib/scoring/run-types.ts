/**
 * What crosses the workflow/activity boundary: store keys and small summaries, never row data. No Node
 * imports, because the workflow imports these types.
 */
import type { Pool } from '../names';

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
  /** Window length in hours (default 1). */
  windowHours?: number;
  /** Devices per shard, the unit of retry (default 500). */
  shardSize?: number;
  /** Shards in flight at once (default 8). */
  maxParallelShards?: number;
  /** Scores every device on this pool, whatever its model.json says. */
  pool?: Pool;
  /** Task queues of the pools when not the standard `fleetscore-cpu` / `fleetscore-gpu` (e.g. a staging fleet). */
  taskQueues?: Partial<Record<Pool, string>>;
}

/** The defaults applied to a `ScoringRunInput`. */
export const RUN_DEFAULTS = { windowHours: 1, shardSize: 500, maxParallelShards: 8 } as const;

/** Input of planRun. */
export interface PlanRequest {
  store: string;
  window: string;
  shardSize: number;
  pool?: Pool;
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
  devices: number;
  parts: number;
  shards: ShardRef[];
}

/** Input of scoreShard. */
export interface ShardRequest {
  store: string;
  window: string;
  windowHours: number;
  shard: number;
}

/** A device that could not be scored and why, as reported to the workflow (bounded list). */
export interface DeviceFailure {
  device: string;
  reason: string;
}

/** What scoreShard returns: counts only. Per-device status is in the shard status file. */
export interface ShardSummary {
  shard: number;
  pool: Pool;
  attempt: number;
  devices: number;
  scored: number;
  noData: number;
  failed: number;
  rows: number;
  anomalies: number;
  /** The first few failures, for the run summary; all of them are in the manifest and the shard log. */
  failures: DeviceFailure[];
  durationMs: number;
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
  shards: ShardRef[];
  failedShards: FailedShard[];
}

/**
 * Error types a retry cannot fix (bad input, bad models, invalid keys). Activities raise them as non-retryable;
 * retry policies list them too.
 */
export const NON_RETRYABLE_ERROR_TYPES = [
  'InvalidInput',
  'InvalidWindow',
  'InvalidPathSegment',
  'InvalidKey',
  'InvalidPlan',
  'InvalidModelIndex',
] as const;

/** Counts of one committed run; the workflow's result and the manifest's head. */
export interface RunCounts {
  devices: number;
  scored: number;
  noData: number;
  failed: number;
  rows: number;
  anomalies: number;
}

/** What commitRun returns: the counts and the manifest's key. */
export interface CommitResult extends RunCounts {
  manifest: string;
}

/** What scoringRun returns. */
export interface RunSummary extends RunCounts {
  window: string;
  manifest: string;
  shards: number;
  failedShards: number;
  failures: DeviceFailure[];
}
