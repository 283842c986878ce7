import { AggregatesCache } from '../arrow/aggregates-cache';
import { listAggregateParts } from '../arrow/window-input';
import { keys } from '../shared/keys';
import type { ObjectStore } from '../store/object-store';
import { parseWindow, type Window } from '../shared/window';
import { AttemptLog, type WorkerLogger } from './attempt-log';
import {
  readJsonFile,
  readRunInput,
  UNKNOWN_DEVICES_LISTED,
  parseManifest,
  type DeviceOutcome,
  type Manifest,
  type ManifestShard,
  type ShardPlanFile,
  type ShardStatusFile,
} from './manifest';
import {
  FAILURES_LISTED,
  type CommitRequest,
  type CommitResult,
  type DeviceFailure,
  type RunCounts,
} from '../shared/run-types';
import { InvalidPlan, StoreContended } from '../shared/errors';
import { forEachLimited } from '../shared/concurrency';

/**
 * The device ids with rows in a run's parts, those that could be read (a part that fails as a whole already
 * failed its devices, naming it).
 */
export type WindowDevices = (store: ObjectStore, window: Window, parts: string[], runId: string) => Promise<string[]>;

/** Where the commit runs: how it lists the window's devices, and the logger. */
export interface CommitContext {
  /**
   * Default: parsed through a new cache. A worker passes its own cache (where the shards of the run parsed the
   * parts already) or asks a shard thread, whose cache holds them.
   */
  windowDevices?: WindowDevices;
  logger: WorkerLogger;
}

/** {@link WindowDevices} read through `cache`, which is keyed by run id: a worker that scored the run's shards hits. */
export function cachedWindowDevices(cache: AggregatesCache): WindowDevices {
  return async (store, window, parts, runId) => (await cache.window(store, window, parts, runId)).devices();
}

/**
 * Commits a run: gathers every shard's status (or marks the devices of a failed shard failed), lists the device
 * ids the window's data holds but the plan has no model for, and writes the window's manifest last. Writing it
 * is the commit: before it exists, readers ignore the window. Only this plan's files are read and listed, so a
 * concurrent run of the same window cannot mix its shards into this commit; the last commit replaces the window.
 * The attempt's log (`logs/window=W/run=P/commit/attempt-A.jsonl`) records failed shards, every unknown device
 * and the commit.
 */
export async function commitRun(
  store: ObjectStore,
  req: CommitRequest,
  { windowDevices = cachedWindowDevices(new AggregatesCache()), logger }: CommitContext,
): Promise<CommitResult> {
  const window = parseWindow(req.window, req.windowHours);
  const log = await AttemptLog.next(store, window.id, req.runId, 'commit');
  log.add({ event: 'attempt-started', level: 'info', workflowId: req.workflowId, runId: req.runId });
  try {
    await log.notePreviousAttempt();
    await log.flush();
    const result = await writeManifest(store, req, window, windowDevices, log);
    log.add({ event: 'attempt-completed', level: 'info', ...result });
    await log.flush();
    return result;
  } catch (err) {
    await log.failed(err, logger);
    throw err;
  }
}

async function writeManifest(
  store: ObjectStore,
  req: CommitRequest,
  window: Window,
  windowDevices: WindowDevices,
  log: AttemptLog,
): Promise<CommitResult> {
  const failed = new Map(req.failedShards.map((f) => [f.shard, f.reason]));
  const counts: RunCounts = { devices: 0, scored: 0, noData: 0, failed: 0, rows: 0, anomalies: 0 };
  const devices: Record<string, DeviceOutcome> = {};
  const shards: ManifestShard[] = [];
  const readPlan = (shard: number) =>
    readJsonFile<ShardPlanFile>(store, keys.shardPlan(req.window, req.runId, shard), 'fleetscore.shard-plan/v1');
  const statusKey = (shard: number) => keys.shardStatus(req.window, req.runId, shard);
  // Read a few at a time (each waits for the store), then taken in shard order.
  const read = new Array<ShardPlanFile | ShardStatusFile>(req.shards.length);
  await forEachLimited(req.shards, READS_AT_ONCE, async (ref, i) => {
    read[i] = failed.has(ref.shard)
      ? await readPlan(ref.shard)
      : await readJsonFile<ShardStatusFile>(store, statusKey(ref.shard), 'fleetscore.shard-status/v1');
  });
  for (const [i, ref] of req.shards.entries()) {
    const reason = failed.get(ref.shard);
    if (reason !== undefined) {
      const plan = read[i] as ShardPlanFile;
      for (const d of plan.devices)
        devices[d.device] = { status: 'failed', version: d.version, reason: `shard failed: ${reason}` };
      counts.devices += plan.devices.length;
      counts.failed += plan.devices.length;
      shards.push({ shard: ref.shard, pool: ref.pool, devices: plan.devices.length, status: 'failed', reason });
      log.add({ event: 'shard-failed', level: 'error', shard: ref.shard, devices: plan.devices.length, reason });
      continue;
    }
    const status = read[i] as ShardStatusFile;
    if (status.window !== req.window || status.shard !== ref.shard || status.runId !== req.runId) {
      throw new InvalidPlan(
        `belongs to window ${status.window} shard ${status.shard} plan ${status.runId}, not plan ${req.runId}`,
        statusKey(ref.shard),
      );
    }
    Object.assign(devices, status.devices);
    for (const k of Object.keys(counts) as (keyof RunCounts)[]) counts[k] += status.counts[k];
    shards.push({
      shard: ref.shard,
      pool: ref.pool,
      devices: status.counts.devices,
      status: 'committed',
      predictions: status.predictions,
      attempt: status.attempt,
      ...(status.programs ? { programs: status.programs } : {}),
      ...(status.modelFiles ? { modelFiles: status.modelFiles } : {}),
    });
  }
  const parts = req.shards[0] ? (await readPlan(req.shards[0].shard)).parts : await listAggregateParts(store, window);
  const unknown = await unknownDevices(store, window, parts, req.runId, devices, windowDevices);
  for (const device of unknown)
    log.add({ event: 'unknown-device', level: 'warn', device, reason: 'rows but no model' });
  const input = await readRunInput(store, window.id, req.runId);
  const manifest: Manifest = {
    schema: 'fleetscore.manifest/v1',
    window: window.id,
    windowStart: new Date(window.startMs).toISOString(),
    windowEnd: new Date(window.endMs).toISOString(),
    scheduleId: req.scheduleId,
    workflowId: req.workflowId,
    runId: req.runId,
    // A run in flight across an upgrade passes no start time: it counts as started now, as it did before the fence.
    runStartedAt: req.runStartedAt ?? new Date().toISOString(),
    committedAt: new Date().toISOString(),
    store: store.uri,
    counts,
    ...(input ? { input: { parts: input } } : {}),
    shards,
    devices,
    ...(unknown.length > 0
      ? { unknownDevices: { count: unknown.length, devices: unknown.slice(0, UNKNOWN_DEVICES_LISTED) } }
      : {}),
  };
  const key = keys.manifest(window.id);
  const fence = await commitManifest(store, key, manifest, log);
  return { ...counts, manifest: key, unknownDevices: unknown.length, failures: listFailures(devices), ...fence };
}

/** Shard status files a commit reads at once. */
const READS_AT_ONCE = 8;

/** How many times a commit reads the window's manifest again after losing a race to another commit. */
const COMMIT_RACES = 5;

/**
 * Writes the window's manifest if this run moves the window forward: a window committed by a run that started
 * later is left as it is (`superseded`), a window this run already committed is not written again
 * (`already-committed`, e.g. a retried commit whose first attempt succeeded but whose reply was lost), and a run
 * whose every device failed does not replace a commit that scored devices (`kept`: a broken re-run, such as one
 * reading a duplicated part, must not take a window's predictions away). The write is conditional on the manifest
 * read, so of two racing commits one wins and the other decides again on what won.
 */
async function commitManifest(
  store: ObjectStore,
  key: string,
  manifest: Manifest,
  log: AttemptLog,
): Promise<Pick<CommitResult, 'outcome' | 'supersededBy'>> {
  for (let race = 0; race < COMMIT_RACES; race++) {
    const current = await store.getVersioned(key);
    const committed = current && parseManifest(current.body, key);
    if (committed?.runId === manifest.runId) {
      log.add({ event: 'already-committed', level: 'info', committedAt: committed.committedAt });
      return { outcome: 'already-committed' };
    }
    if (committed && startedLater(committed, manifest)) {
      log.add({
        event: 'superseded',
        level: 'warn',
        by: committed.runId,
        byStartedAt: committed.runStartedAt,
        reason: 'a run that started later has committed the window; this run writes nothing',
      });
      return { outcome: 'superseded', supersededBy: committed.runId };
    }
    if (committed && committed.counts.scored > 0 && manifest.counts.scored === 0 && manifest.counts.failed > 0) {
      log.add({
        event: 'kept',
        level: 'warn',
        by: committed.runId,
        scored: committed.counts.scored,
        reason: `every device of this run failed; the window keeps the commit of run ${committed.runId}`,
      });
      return { outcome: 'kept', supersededBy: committed.runId };
    }
    const body: Manifest = {
      ...manifest,
      ...(committed ? { supersedes: { runId: committed.runId, committedAt: committed.committedAt } } : {}),
    };
    if (await store.putIf(key, JSON.stringify(body, null, 1), current?.version ?? null)) {
      if (committed) log.add({ event: 'replaced', level: 'info', supersedes: committed.runId });
      return { outcome: 'committed' };
    }
    log.add({ event: 'commit-race-lost', level: 'info', race: race + 1 });
  }
  throw new StoreContended(`${key}: commits of other runs won the race to write it ${COMMIT_RACES} times in a row`, {
    file: key,
  });
}

/** Whether `a` comes after `b` in the order commits must follow: run start time, then run id. */
function startedLater(
  a: Pick<Manifest, 'runId' | 'runStartedAt'>,
  b: Pick<Manifest, 'runId' | 'runStartedAt'>,
): boolean {
  // Manifests written before the fence have no start time: any run that has one replaces them.
  const ta = a.runStartedAt ?? '';
  const tb = b.runStartedAt ?? '';
  return ta !== tb ? ta > tb : a.runId > b.runId;
}

/**
 * Device ids with rows in the plan's parts but no entry in the plan, sorted. Parts that cannot be read are
 * skipped here: their devices already failed with the file named.
 */
async function unknownDevices(
  store: ObjectStore,
  window: Window,
  parts: string[],
  runId: string,
  planned: Record<string, DeviceOutcome>,
  windowDevices: WindowDevices,
): Promise<string[]> {
  if (parts.length === 0) return [];
  return (await windowDevices(store, window, parts, runId)).filter((d) => !Object.hasOwn(planned, d)).sort();
}

/** The first failed devices (by id) and why, whole-shard failures included: the list a run's result carries. */
export function listFailures(devices: Record<string, DeviceOutcome>): DeviceFailure[] {
  const failed: DeviceFailure[] = [];
  for (const device of Object.keys(devices).sort()) {
    const outcome = devices[device];
    if (outcome?.status === 'failed') failed.push({ device, reason: outcome.reason });
    if (failed.length === FAILURES_LISTED) break;
  }
  return failed;
}
