import { PredictionsBuilder } from '../arrow/predictions';
import type { AggregatesCache } from '../arrow/aggregates-cache';
import { keys } from '../keys';
import { isAnomaly, type ModelSessionCache } from '../models/model-sessions';
import type { ObjectStore } from '../store/object-store';
import { parseWindow } from '../window';
import { InvalidPlan, readJsonFile, type DeviceOutcome, type ShardPlanFile, type ShardStatusFile } from './manifest';
import type { DeviceFailure, RunCounts, ShardRequest, ShardSummary } from './run-types';
import { ShardLog } from './shard-log';

/** The worker's store and caches a shard uses. */
export interface ShardDeps {
  store: ObjectStore;
  sessions: ModelSessionCache;
  aggregates: AggregatesCache;
}

/** Structured logger (the Temporal activity logger in a worker). */
export interface ShardLogger {
  info(message: string, attrs?: Record<string, unknown>): void;
  warn(message: string, attrs?: Record<string, unknown>): void;
}

/** Where the shard runs: the run and attempt, how to heartbeat, and the logger. */
export interface ShardContext {
  attempt: number;
  taskQueue: string;
  workflowId: string;
  runId: string;
  heartbeat(details: { devicesDone: number }): void;
  log: ShardLogger;
}

/**
 * Errors that concern one device's data or model: the device is recorded as failed with the reason, the rest
 * of the shard is scored. Anything else (store or network errors) fails the attempt, and Temporal retries it.
 */
const DEVICE_ERRORS = new Set([
  'InvalidAggregates',
  'InvalidModel',
  'ModelChecksumMismatch',
  'ModelNotFound',
  'ModelOutputMismatch',
  'ModelSessionFailed',
  'ModelInferenceFailed',
  'InvalidPathSegment',
]);

const HEARTBEAT_EVERY = 25;
const FAILURES_REPORTED = 20;

/**
 * Scores one shard: for each planned device, loads its pinned model, gathers its rows of the window, infers,
 * and appends the predictions; then writes the predictions file, the shard status and the attempt's log under
 * keys fixed by (window, shard), so a retry overwrites and never duplicates.
 */
export async function scoreShard(deps: ShardDeps, req: ShardRequest, ctx: ShardContext): Promise<ShardSummary> {
  const started = Date.now();
  const window = parseWindow(req.window, req.windowHours);
  const log = new ShardLog(deps.store, window.id, req.planId, req.shard, ctx.attempt);
  log.add({
    event: 'attempt-started',
    level: 'info',
    taskQueue: ctx.taskQueue,
    workflowId: ctx.workflowId,
    runId: ctx.runId,
  });
  try {
    const plan = await readJsonFile<ShardPlanFile>(
      deps.store,
      keys.shardPlan(window.id, req.planId, req.shard),
      'fleetscore.shard-plan/v1',
    );
    if (plan.planId !== req.planId || plan.shard !== req.shard || plan.window !== window.id) {
      const file = keys.shardPlan(window.id, req.planId, req.shard);
      throw new InvalidPlan(`belongs to plan ${plan.planId} shard ${plan.shard} of window ${plan.window}`, file);
    }
    const aggregates = await deps.aggregates.window(deps.store, window, plan.parts, plan.planId);
    const predictions = new PredictionsBuilder();
    const outcomes: Record<string, DeviceOutcome> = {};
    const counts: RunCounts = { devices: plan.devices.length, scored: 0, noData: 0, failed: 0, rows: 0, anomalies: 0 };
    const failures: DeviceFailure[] = [];

    for (const [i, planned] of plan.devices.entries()) {
      if (i % HEARTBEAT_EVERY === 0) ctx.heartbeat({ devicesDone: i });
      const { device, version } = planned;
      try {
        const model = await deps.sessions.load(deps.store, device, planned);
        const rows = aggregates.device(device, model.meta.features);
        if (!rows || rows.rows === 0) {
          outcomes[device] = { status: 'no-data', version };
          counts.noData++;
          log.add({ event: 'device-no-data', level: 'info', device });
          continue;
        }
        const scores = await model.score(rows.x, rows.rows);
        const flags = new Uint8Array(rows.rows);
        let anomalies = 0;
        for (let r = 0; r < rows.rows; r++) {
          if (isAnomaly(model.meta, scores[r]!)) {
            flags[r] = 1;
            anomalies++;
          }
        }
        predictions.append(device, version, rows.ts, scores, flags);
        outcomes[device] = { status: 'scored', version, rows: rows.rows, anomalies };
        counts.scored++;
        counts.rows += rows.rows;
        counts.anomalies += anomalies;
        if (rows.droppedOutsideWindow > 0) {
          log.add({ event: 'rows-outside-window', level: 'warn', device, dropped: rows.droppedOutsideWindow });
        }
      } catch (err) {
        if (!(err instanceof Error) || !DEVICE_ERRORS.has(err.name)) throw err;
        const { file, field } = err as Error & { file?: string; field?: string };
        outcomes[device] = { status: 'failed', version, reason: `${err.name}: ${err.message}`, file, field };
        counts.failed++;
        if (failures.length < FAILURES_REPORTED) failures.push({ device, reason: `${err.name}: ${err.message}` });
        log.add({ event: 'device-failed', level: 'error', device, error: err.name, reason: err.message, file, field });
        ctx.log.warn('device failed', { device, error: err.name, reason: err.message, file, field });
      }
    }

    const predictionsKey = predictions.rows > 0 ? keys.predictions(window.id, req.planId, req.shard) : undefined;
    if (predictionsKey) await deps.store.put(predictionsKey, predictions.encode());
    const status: ShardStatusFile = {
      schema: 'fleetscore.shard-status/v1',
      window: window.id,
      shard: req.shard,
      pool: plan.pool,
      planId: req.planId,
      attempt: ctx.attempt,
      predictions: predictionsKey,
      counts,
      devices: outcomes,
    };
    await deps.store.put(keys.shardStatus(window.id, req.planId, req.shard), JSON.stringify(status));
    const durationMs = Date.now() - started;
    log.add({ event: 'attempt-completed', level: 'info', ...counts, durationMs });
    await log.flush();
    ctx.log.info('shard scored', { window: window.id, shard: req.shard, ...counts, durationMs });
    return { shard: req.shard, pool: plan.pool, attempt: ctx.attempt, ...counts, failures, durationMs };
  } catch (err) {
    log.add({
      event: 'attempt-failed',
      level: 'error',
      error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
    });
    // The attempt's log is written even when the attempt fails; the original error is what Temporal sees.
    await log.flush().catch((flushErr: unknown) => {
      ctx.log.warn('could not write the shard log of a failed attempt', { error: String(flushErr) });
    });
    throw err;
  }
}
