/**
 * Names shared by workflows, workers, schedules, the CLI and tests: task queues, the workflow type, search
 * attributes and the progress query's answer (the query itself is in queries.ts, so that code outside workflows,
 * such as a worker's shard threads, does not load @temporalio/workflow). This module has no Node imports because
 * workflow code imports it.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** The worker pools and the task queue each one polls. */
export const TASK_QUEUES = { cpu: 'fleetscore-cpu', gpu: 'fleetscore-gpu' } as const;

/** A worker pool: a set of workers polling one task queue. */
export type Pool = keyof typeof TASK_QUEUES;

/** Every pool, in a fixed order. */
export const POOLS: readonly Pool[] = ['cpu', 'gpu'];

/** Type guard for a pool name read from user input or a model.json. */
export function isPool(value: unknown): value is Pool {
  return value === 'cpu' || value === 'gpu';
}

/**
 * What the producer of a window's aggregates promises about where each device's rows are:
 * - `any` (the default): a device's rows may be spread over several parts (e.g. one part per ten minutes), so a
 *   part that cannot be read may hold rows of any device, and every device of the window fails naming it.
 * - `device-partitioned`: all rows of one device are in one part (parts written per device range or hash, as the
 *   demo does). A part that cannot be read then fails only the devices no readable part holds; the rest of the
 *   fleet is scored. A device found in two parts breaks the promise and fails, naming both files.
 */
export const AGGREGATES_LAYOUTS = ['any', 'device-partitioned'] as const;

/** See {@link AGGREGATES_LAYOUTS}. */
export type AggregatesLayout = (typeof AGGREGATES_LAYOUTS)[number];

/**
 * The file format a run writes its predictions in: `arrow` (Arrow IPC, the default) or `parquet` (what DuckDB,
 * Spark and Athena read without an extension; see docs/data-and-models.md for the query).
 */
export const PREDICTIONS_FORMATS = ['arrow', 'parquet'] as const;

/** See {@link PREDICTIONS_FORMATS}. */
export type PredictionsFormat = (typeof PREDICTIONS_FORMATS)[number];

/** The workflow type that scores one window for the whole fleet. */
export const SCORING_WORKFLOW = 'scoringRun';

/**
 * Custom search attributes of a run, so the Web UI and `runs list` can find a window and see its counts.
 * They must exist on the namespace: the dev server is started with them and `ensureSearchAttributes` adds them
 * elsewhere. Three Int attributes at most: the dev server's SQLite visibility allows no more.
 */
export const SEARCH_ATTRIBUTES = {
  window: defineSearchAttributeKey('FleetscoreWindow', SearchAttributeType.KEYWORD),
  schedule: defineSearchAttributeKey('FleetscoreSchedule', SearchAttributeType.KEYWORD),
  /** The store URI the run reads and writes: a run is its store, window and window length. */
  store: defineSearchAttributeKey('FleetscoreStore', SearchAttributeType.KEYWORD),
  scored: defineSearchAttributeKey('FleetscoreScored', SearchAttributeType.INT),
  failed: defineSearchAttributeKey('FleetscoreFailed', SearchAttributeType.INT),
  anomalies: defineSearchAttributeKey('FleetscoreAnomalies', SearchAttributeType.INT),
} as const;

/** The search attribute Temporal sets on every workflow a schedule starts: the nominal (unjittered) time. */
export const SCHEDULED_START_TIME = defineSearchAttributeKey(
  'TemporalScheduledStartTime',
  SearchAttributeType.DATETIME,
);

/** The search attribute Temporal sets to the id of the schedule that started a workflow. */
export const SCHEDULED_BY_ID = defineSearchAttributeKey('TemporalScheduledById', SearchAttributeType.KEYWORD);

/** Progress of a running run, as counts of shards and devices. */
export interface RunProgress {
  window: string;
  phase: 'waiting-for-input' | 'planning' | 'scoring' | 'committing' | 'done';
  shardsTotal: number;
  shardsDone: number;
  devicesTotal: number;
  devicesScored: number;
  devicesNoData: number;
  devicesFailed: number;
  anomalies: number;
  /**
   * Shards no worker of their pool has started within the pool-wait notice (no worker polls the pool's queue, or
   * all of its slots are busy), oldest first. Absent in runs started before this field existed.
   */
  waiting?: WaitingShard[];
  /** The first failed devices and why, once the run has committed. */
  failures?: { device: string; reason: string }[];
  /** Planned devices per pool, once the run has planned. */
  pools?: Partial<Record<Pool, number>>;
  /** While the run waits for its window's input: since when, until when, and the folders still empty. */
  input?: InputWaiting;
}

/** A run waiting for its window's input (see `ScoringRunInput.inputWait`). */
export interface InputWaiting {
  /** When the run first looked (workflow time, ISO 8601). */
  since: string;
  /** When it stops waiting and fails with `InputMissing`. */
  until: string;
  /** The input folders without a part (or completion marker), as full store locations. */
  missing: string[];
  /** Looks so far. */
  checks: number;
}

/** A shard waiting for a worker of its pool. */
export interface WaitingShard {
  shard: number;
  pool: Pool;
  taskQueue: string;
  /** When the shard was first scheduled (workflow time, ISO 8601). */
  since: string;
  /** Schedule-to-start timeouts so far: how many notice periods it has waited. */
  notices: number;
}
