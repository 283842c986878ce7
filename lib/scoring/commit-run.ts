import { keys } from '../keys';
import type { ObjectStore } from '../store/object-store';
import { parseWindow } from '../window';
import {
  InvalidPlan,
  readJsonFile,
  type DeviceOutcome,
  type Manifest,
  type ManifestShard,
  type ShardPlanFile,
  type ShardStatusFile,
} from './manifest';
import type { CommitRequest, CommitResult, RunCounts } from './run-types';

/**
 * Commits a run: gathers every shard's status (or marks the devices of a failed shard failed), and writes the
 * window's manifest last. Writing it is the commit: before it exists, readers ignore the window.
 */
export async function commitRun(store: ObjectStore, req: CommitRequest): Promise<CommitResult> {
  const window = parseWindow(req.window, req.windowHours);
  const failed = new Map(req.failedShards.map((f) => [f.shard, f.reason]));
  const counts: RunCounts = { devices: 0, scored: 0, noData: 0, failed: 0, rows: 0, anomalies: 0 };
  const devices: Record<string, DeviceOutcome> = {};
  const shards: ManifestShard[] = [];
  for (const ref of req.shards) {
    const reason = failed.get(ref.shard);
    if (reason !== undefined) {
      const plan = await readJsonFile<ShardPlanFile>(
        store,
        keys.shardPlan(req.window, ref.shard),
        'fleetscore.shard-plan/v1',
      );
      for (const d of plan.devices)
        devices[d.device] = { status: 'failed', version: d.version, reason: `shard failed: ${reason}` };
      counts.devices += plan.devices.length;
      counts.failed += plan.devices.length;
      shards.push({ shard: ref.shard, pool: ref.pool, devices: plan.devices.length, status: 'failed', reason });
      continue;
    }
    const status = await readJsonFile<ShardStatusFile>(
      store,
      keys.shardStatus(req.window, ref.shard),
      'fleetscore.shard-status/v1',
    );
    if (status.window !== req.window || status.shard !== ref.shard) {
      throw new InvalidPlan(
        `belongs to window ${status.window} shard ${status.shard}`,
        keys.shardStatus(req.window, ref.shard),
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
    });
  }
  const manifest: Manifest = {
    schema: 'fleetscore.manifest/v1',
    window: window.id,
    windowStart: new Date(window.startMs).toISOString(),
    windowEnd: new Date(window.endMs).toISOString(),
    scheduleId: req.scheduleId,
    workflowId: req.workflowId,
    runId: req.runId,
    committedAt: new Date().toISOString(),
    store: store.uri,
    counts,
    shards,
    devices,
  };
  const key = keys.manifest(window.id);
  await store.put(key, JSON.stringify(manifest, null, 1));
  return { ...counts, manifest: key };
}
