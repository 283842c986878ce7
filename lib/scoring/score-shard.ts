import { hostname } from 'node:os';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { encodePredictionsAs } from '../arrow/predictions-encode';
import { PredictionsBuilder } from '../arrow/predictions-builder';
import type { AggregatesCache } from '../arrow/aggregates-cache';
import type { WindowAggregates } from '../arrow/window-aggregates';
import { forEachLimited, type Turns } from '../shared/concurrency';
import { keys } from '../shared/keys';
import { RowsArena, type DeviceRows } from '../arrow/device-rows';
import { markAnomalies } from '../models/model-output';
import type { ModelSessionCache, PreparedModel } from '../models/model-sessions';
import type { ObjectStore } from '../store/object-store';
import { parseWindow } from '../shared/window';
import {
  readJsonFile,
  type DeviceOutcome,
  type ProgramOriginCounts,
  type ShardPlanFile,
  type ShardStatusFile,
} from './manifest';
import type { DeviceFailure, ModelFileReads, RunCounts, ShardRequest, ShardSummary } from '../shared/run-types';
import { AttemptLog, type WorkerLogger } from './attempt-log';
import type { FreshnessScope, ModelFreshness } from './model-freshness';
import { KeptModelFiles } from '../store/kept-model-files';
import { FleetscoreError, InvalidPlan } from '../shared/errors';

/** The worker's store and caches a shard uses. */
export interface ShardDeps {
  /** What the attempt reads and writes through (in a worker: with the attempt's cancellation signal). */
  store: ObjectStore;
  /**
   * What the worker's caches read through (default `store`): the store without the attempt's signal, because a
   * part or model being loaded is shared with other shards' attempts, which a cancelled one must not fail.
   */
  sharedStore?: ObjectStore;
  /** The worker's record of the model files its caches hold; a shard without one trusts the caches. */
  freshness?: ModelFreshness;
  sessions: ModelSessionCache;
  aggregates: AggregatesCache;
  /**
   * Whose turn it is to prepare models, where shards share a thread's caches (a shard thread holding two): one
   * shard prepares at a time, so two cold shards do not interleave their reads and compiles (see shard-thread.ts).
   */
  prepareTurns?: Turns;
  /**
   * Whose turn it is to score prepared devices, where shards share a thread: one shard scores its devices at a time,
   * in the order they prepared, so the first finishes (and its slot takes the next shard) before the other, rather
   * than both together at the end.
   */
  inferTurns?: Turns;
}

/** Where the shard runs: the run and attempt, how to heartbeat, and the logger. */
export interface ShardContext {
  /** The activity's attempt number (restarts at 1 when the shard is scheduled again); logs number their own. */
  attempt: number;
  taskQueue: string;
  workflowId: string;
  /** The run id of the workflow that scheduled this attempt (a child workflow's, for a fanned-out plan). */
  workflowRunId: string;
  heartbeat(details: { devicesDone: number }): void;
  log: WorkerLogger;
  /**
   * The attempt's cancellation signal (a workflow cancel, a heartbeat timeout or a worker's drain timeout, delivered
   * with a heartbeat): checked at every device, so a cancelled attempt stops within one device's work, and ends the
   * wait for a turn (`prepareTurns`, `inferTurns`) at once.
   */
  signal?: AbortSignal;
  /** Called once the shard has prepared its models (a shard thread then takes the next shard waiting for one). */
  prepared?(): void;
}

const HEARTBEAT_EVERY = 25;
const PREPARE_HEARTBEAT_MS = 1_000;
const FAILURES_REPORTED = 20;
/** Devices a shard prepares at once from a local store; a remote one says how many it wants (`concurrentReads`). */
const PREPARE_CONCURRENCY = 8;

/**
 * Scores one shard: for each planned device, loads its pinned model, gathers its rows of the window, infers,
 * and appends the predictions; then writes the predictions file, the shard status and the attempt's log under
 * keys fixed by (window, shard), so a retry overwrites and never duplicates.
 */
export async function scoreShard(deps: ShardDeps, req: ShardRequest, ctx: ShardContext): Promise<ShardSummary> {
  const started = Date.now();
  const window = parseWindow(req.window, req.windowHours);
  // Every change to watched model files made before the shard started is known to the freshness check once this
  // resolves (a turn of the worker's event loop): asked now, so the round trip overlaps the shard's first reads
  // instead of delaying its devices.
  const settled = deps.freshness?.settle();
  // Numbered after the logs already there, not by the activity's attempt: a shard scheduled again (after a pool
  // wait, or by another run of the same plan) starts again at activity attempt 1, and must not overwrite a log.
  const log = await AttemptLog.next(deps.store, window.id, req.runId, req.shard);
  log.add({
    event: 'attempt-started',
    level: 'info',
    activityAttempt: ctx.attempt,
    taskQueue: ctx.taskQueue,
    workflowId: ctx.workflowId,
    workflowRunId: ctx.workflowRunId,
    host: hostname(),
    pid: process.pid,
  });
  try {
    // Written before any work, so an attempt whose worker dies leaves at least where and when it started.
    await log.notePreviousAttempt();
    await log.flush();
    const plan = await readJsonFile<ShardPlanFile>(
      deps.store,
      keys.shardPlan(window.id, req.runId, req.shard),
      'fleetscore.shard-plan/v1',
    );
    if (plan.runId !== req.runId || plan.shard !== req.shard || plan.window !== window.id) {
      const file = keys.shardPlan(window.id, req.runId, req.shard);
      throw new InvalidPlan(`belongs to plan ${plan.runId} shard ${plan.shard} of window ${plan.window}`, file);
    }
    const shared = deps.sharedStore ?? deps.store;
    // Model files kept on the host (S3): where this shard's came from is counted for its log and status.
    const modelFiles: ModelFileReads = { host: 0, store: 0 };
    const models = shared instanceof KeptModelFiles ? shared.counting(modelFiles) : shared;
    // The devices whose model files one listing covers (S3): this shard's.
    const scope: FreshnessScope = { runId: req.runId, shard: req.shard, devices: plan.devices };
    deps.freshness?.prefetch(models, scope);
    const aggregates = await deps.aggregates.window(shared, window, plan.parts, plan.runId, plan.layout);
    const predictions = new PredictionsBuilder(aggregates.tsType);
    const outcomes = new ShardOutcomes(plan.devices.length, log, ctx);

    // 1. Each device's rows of the window and, only for a device that has rows, its model (stacked parameters, a
    //    compiled program, or a session of its own). Models are read a few at a time: on a cold worker this is the
    //    store's latency, and compiling runs in threads off this event loop.
    const ready = new Array<Ready | undefined>(plan.devices.length);
    const arena = new RowsArena();
    // A large model can take seconds to compile (in a thread), and a shard that shares a thread waits for its turns:
    // heartbeat on a timer meanwhile, until the shard scores its devices, not only per device.
    let prepared = 0;
    const beat = setInterval(() => ctx.heartbeat({ devicesDone: prepared }), PREPARE_HEARTBEAT_MS);
    const progress = (devicesDone: number) => {
      ctx.heartbeat({ devicesDone });
      return log.checkpoint({ event: 'progress', level: 'info', phase: 'prepare', devicesDone });
    };
    const prepareAll = async () => {
      await settled;
      // A warm worker on a local store has most devices' models at hand: those are taken first, without a promise
      // each; the others are read and compiled a few at a time.
      const rest: number[] = [];
      for (let i = 0; i < plan.devices.length; i++) {
        const planned = plan.devices[i]!;
        ctx.signal?.throwIfAborted();
        if (i % HEARTBEAT_EVERY === 0) await progress(prepared + 1);
        try {
          const warm = prepareWarm(deps, models, planned, aggregates, arena);
          if (warm === NOT_AT_HAND) {
            rest.push(i);
            continue;
          }
          ready[i] = warm;
        } catch (err) {
          outcomes.failed(planned.device, planned.version, err);
        }
        prepared++;
      }
      await forEachLimited(rest, models.concurrentReads ?? PREPARE_CONCURRENCY, async (i, j) => {
        const planned = plan.devices[i]!;
        ctx.signal?.throwIfAborted();
        if (j % HEARTBEAT_EVERY === 0) await progress(prepared + 1);
        try {
          ready[i] = await prepareDevice(deps, models, scope, planned, aggregates, arena);
        } catch (err) {
          outcomes.failed(planned.device, planned.version, err);
        }
        prepared++;
      });
    };
    // 2. Inference: recognised Mahalanobis models stacked, a few hundred devices per call; the rest one by one.
    // 3. Predictions and outcomes, in plan order; how many devices each fast path scored goes to the log.
    const inferAndCollect = async () => {
      clearInterval(beat);
      return collect(plan.devices, ready, await inferAll(deps.sessions, ready, ctx, log), outcomes, predictions);
    };
    // Where shards share a thread, each step waits for the shard's turn (which a cancel ends at once).
    const inTurn = <T>(turns: Turns | undefined, work: () => Promise<T>) =>
      turns ? turns.run(work, ctx.signal) : work();
    let collected: ReturnType<typeof collect>;
    try {
      try {
        await inTurn(deps.prepareTurns, prepareAll);
      } finally {
        deps.freshness?.flush();
      }
      ctx.prepared?.();
      collected = await inTurn(deps.inferTurns, inferAndCollect);
    } finally {
      clearInterval(beat);
    }
    const { paths, programs, refused } = collected;
    // The rows were copied into the predictions: their buffers serve the thread's next shard.
    arena.release();
    const { counts, failures } = outcomes;

    ctx.signal?.throwIfAborted();
    const format = plan.predictionsFormat ?? 'arrow';
    const predictionsKey = predictions.rows > 0 ? keys.predictions(window.id, req.runId, req.shard, format) : undefined;
    if (predictionsKey) await deps.store.put(predictionsKey, encodePredictionsAs(predictions.columns(), format));
    const status: ShardStatusFile = {
      schema: 'fleetscore.shard-status/v1',
      window: window.id,
      shard: req.shard,
      pool: plan.pool,
      runId: req.runId,
      attempt: log.attempt,
      predictions: predictionsKey,
      counts,
      ...(Object.keys(programs).length > 0 ? { programs } : {}),
      ...(modelFiles.host + modelFiles.store > 0 ? { modelFiles } : {}),
      devices: outcomes.devices,
    };
    await deps.store.put(keys.shardStatus(window.id, req.runId, req.shard), JSON.stringify(status));
    log.add({
      event: 'fast-paths',
      level: 'info',
      devices: paths,
      programs,
      ...(refused ? { refused } : {}),
      ...(status.modelFiles ? { modelFiles } : {}),
    });
    const durationMs = Date.now() - started;
    log.add({ event: 'attempt-completed', level: 'info', ...counts, durationMs });
    await log.flush();
    ctx.log.info('shard scored', { window: window.id, shard: req.shard, ...counts, durationMs });
    const summary = { shard: req.shard, pool: plan.pool, attempt: log.attempt, ...counts, failures, durationMs };
    return status.modelFiles ? { ...summary, modelFiles } : summary;
  } catch (err) {
    // A cancelled attempt writes nothing more, not even its log's last line: the next attempt notes it cut off.
    if (ctx.signal?.aborted) throw err;
    await log.failed(err, ctx.log);
    throw err;
  }
}

/** A device's rows of the window and its model, ready to score. */
interface Ready {
  model: PreparedModel;
  rows: DeviceRows;
}

/** What {@link prepareWarm} answers for a device whose model is not at hand, or whose files changed. */
const NOT_AT_HAND = Symbol('not at hand');

/**
 * One device's rows and, only when it has rows, its model, at once where everything it takes is at hand: its model
 * cached by this worker, and its files unchanged by a look that waits on nothing (or no freshness check); else
 * {@link NOT_AT_HAND}, and {@link prepareDevice} prepares it.
 */
function prepareWarm(
  deps: ShardDeps,
  shared: ObjectStore,
  planned: ShardPlanFile['devices'][number],
  aggregates: WindowAggregates,
  arena: RowsArena,
): Ready | undefined | typeof NOT_AT_HAND {
  const { device, version } = planned;
  if (deps.freshness && !deps.freshness.unchangedNow(shared, device, version)) return NOT_AT_HAND;
  const model = deps.sessions.prepareCached(shared, device, planned);
  if (!model) return NOT_AT_HAND;
  const rows = aggregates.device(device, model.meta.features, arena, model.meta.missingValues);
  return rows && rows.rows > 0 ? { model, rows } : undefined;
}

/**
 * One device's rows and, only when it has rows, its model; undefined for a device without rows. The per-device
 * steps live in functions of their own, outside the long scoreShard: V8 then optimises these small hot loops, not
 * the whole shard function again and again (100 ms and more of compile time each, on a cold worker's two cores).
 */
async function prepareDevice(
  deps: ShardDeps,
  shared: ObjectStore,
  scope: FreshnessScope,
  planned: ShardPlanFile['devices'][number],
  aggregates: WindowAggregates,
  arena: RowsArena,
): Promise<Ready | undefined> {
  const { device, version } = planned;
  const { sessions, freshness } = deps;
  const fingerprint = await freshness?.check(shared, scope, device, version, sessions);
  // A warm worker has most devices' model.json and model at hand: taken without a promise each. Nothing is read or
  // compiled for a device without rows.
  const cached = sessions.prepareCached(shared, device, planned);
  const meta = cached?.meta ?? (await sessions.modelMeta(shared, device, planned));
  const rows = aggregates.device(device, meta.features, arena, meta.missingValues);
  const ready =
    rows && rows.rows > 0
      ? { model: cached ?? (await sessions.prepareUncached(shared, device, planned)), rows }
      : undefined;
  if (fingerprint !== undefined) await freshness?.prepared(shared, device, version, fingerprint);
  return ready;
}

/** Scores every prepared device: stacked models many per call, the rest one by one; a device's error is its score. */
async function inferAll(
  sessions: ModelSessionCache,
  ready: readonly (Ready | undefined)[],
  ctx: ShardContext,
  log: AttemptLog,
): Promise<(Float32Array | Error | undefined)[]> {
  const scores = new Array<Float32Array | Error | undefined>(ready.length);
  const stacked = ready.flatMap((r, i) => (r?.model.kind === 'stacked' ? [i] : []));
  ctx.signal?.throwIfAborted();
  const stackedScores = await sessions.scoreStacked(
    stacked.map((i) => ({
      model: ready[i]!.model as Extract<PreparedModel, { kind: 'stacked' }>,
      x: ready[i]!.rows.x,
      rows: ready[i]!.rows.rows,
    })),
  );
  stacked.forEach((i, j) => (scores[i] = stackedScores[j]));
  for (let i = 0; i < ready.length; i++) {
    const r = ready[i];
    if (r?.model.kind !== 'session') continue;
    ctx.signal?.throwIfAborted();
    if (i % HEARTBEAT_EVERY === 0) {
      ctx.heartbeat({ devicesDone: i });
      await log.checkpoint({ event: 'progress', level: 'info', phase: 'infer', devicesDone: i });
      // Compiled models score synchronously: let timers and I/O (heartbeats, polls) run between batches.
      await yieldToEventLoop();
    }
    try {
      const { model } = r.model;
      scores[i] = model.scoreNow ? model.scoreNow(r.rows.x, r.rows.rows) : await model.score(r.rows.x, r.rows.rows);
    } catch (err) {
      if (!isDeviceError(err)) throw err;
      scores[i] = err;
    }
  }
  return scores;
}

/** Distinct reasons a shard's log lists for models on their own session; more are counted under "others". */
const REFUSALS_LISTED = 10;

/** How many devices each fast path scored, where their programs came from, and why the compiler refused models. */
interface PathCounts {
  paths: Record<string, number>;
  programs: ProgramOriginCounts;
  refused: Record<string, number> | undefined;
}

/**
 * Appends every scored device's predictions and records each device's outcome, in plan order. Returns how many
 * devices each fast path scored, where their programs came from, and why the devices scored by their own session
 * were refused by the compiler (devices per reason; undefined when none was).
 */
function collect(
  devices: ShardPlanFile['devices'],
  ready: readonly (Ready | undefined)[],
  scores: readonly (Float32Array | Error | undefined)[],
  outcomes: ShardOutcomes,
  predictions: PredictionsBuilder,
): PathCounts {
  const counts: PathCounts = { paths: {}, programs: {}, refused: undefined };
  for (let i = 0; i < devices.length; i++) {
    const { device, version } = devices[i]!;
    if (outcomes.devices[device]) continue;
    const r = ready[i];
    const score = scores[i];
    if (!r || !score) outcomes.noData(device, version);
    else if (score instanceof Error) outcomes.failed(device, version, score);
    else collectScored(device, version, r, score, outcomes, predictions, counts);
  }
  return counts;
}

/**
 * One scored device's predictions and outcome, and its fast path counted: a function of its own, called per device,
 * which V8 optimises once, where the loop of {@link collect} (called once a shard) was compiled on stack again and
 * again, and deoptimised, in every shard of a warm run.
 */
function collectScored(
  device: string,
  version: string,
  r: Ready,
  score: Float32Array,
  outcomes: ShardOutcomes,
  predictions: PredictionsBuilder,
  counts: PathCounts,
): void {
  const { paths, programs } = counts;
  const flags = new Uint8Array(r.rows.rows);
  const anomalies = markAnomalies(r.model.meta, score, flags);
  predictions.append(device, version, r.rows.ts, score, flags, r.rows.tsNanos);
  outcomes.scored(device, version, r, anomalies);
  paths[r.model.path] = (paths[r.model.path] ?? 0) + 1;
  if (r.model.kind !== 'session') return;
  const { program: origin, refused: why } = r.model;
  if (origin) programs[origin] = (programs[origin] ?? 0) + 1;
  if (why !== undefined) {
    const refused = (counts.refused ??= {});
    const listed = Object.hasOwn(refused, why) || Object.keys(refused).length < REFUSALS_LISTED;
    const reason = listed ? why : 'others';
    refused[reason] = (refused[reason] ?? 0) + 1;
  }
}

/** A shard's device outcomes, counts and first failures, with the log lines they write. */
class ShardOutcomes {
  readonly devices: Record<string, DeviceOutcome> = {};
  readonly counts: RunCounts;
  readonly failures: DeviceFailure[] = [];

  constructor(
    devices: number,
    private readonly log: AttemptLog,
    private readonly ctx: ShardContext,
  ) {
    this.counts = { devices, scored: 0, noData: 0, failed: 0, rows: 0, anomalies: 0 };
  }

  scored(device: string, version: string, { model, rows }: Ready, anomalies: number): void {
    this.devices[device] = { status: 'scored', version, rows: rows.rows, anomalies, path: model.path };
    this.counts.scored++;
    this.counts.rows += rows.rows;
    this.counts.anomalies += anomalies;
    if (rows.droppedOutsideWindow > 0) {
      this.log.add({ event: 'rows-outside-window', level: 'warn', device, dropped: rows.droppedOutsideWindow });
    }
  }

  noData(device: string, version: string): void {
    this.devices[device] = { status: 'no-data', version };
    this.counts.noData++;
    this.log.add({ event: 'device-no-data', level: 'info', device });
  }

  /** A device's data or model error fails that device only; anything else (a store outage) fails the attempt. */
  failed(device: string, version: string, err: unknown): void {
    if (!isDeviceError(err)) throw err;
    const { file, field } = err;
    const reason = `${err.name}: ${err.message}`;
    this.devices[device] = { status: 'failed', version, reason, file, field };
    this.counts.failed++;
    if (this.failures.length < FAILURES_REPORTED) this.failures.push({ device, reason });
    this.log.add({ event: 'device-failed', level: 'error', device, error: err.name, reason: err.message, file, field });
    this.ctx.log.warn('device failed', { device, error: err.name, reason: err.message, file, field });
  }
}

/** Whether `err` fails one device (its data or model) rather than the attempt. */
function isDeviceError(err: unknown): err is FleetscoreError {
  return err instanceof FleetscoreError && err.scope === 'device';
}
