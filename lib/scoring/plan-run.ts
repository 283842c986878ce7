import { randomUUID } from 'node:crypto';
import { keys } from '../shared/keys';
import { listWindowInput } from '../arrow/window-input';
import { parseWindow } from '../shared/window';
import { readIndex } from '../models/model-index';
import type { Pool } from '../shared/names';
import type { ObjectStore } from '../store/object-store';
import { inputPart, type PlannedDevice, type RunInputFile, type ShardPlanFile } from './manifest';
import { MIN_SPLIT_SHARD, type PlanRequest, type RunPlan, type ShardRef } from '../shared/run-types';

/** The parts a run's shards will read, for a worker to read them ahead of its shards. */
export interface PlannedInput {
  runId: string;
  parts: string[];
}

/**
 * Plans a run: pins each device's model version from the index and the window's aggregate parts, groups
 * devices into shards per pool (of {@link shardSizeFor} devices), and writes one plan file per shard under the
 * plan's own folder. The workflow gets only shard numbers and counts, so its history stays small however large the
 * fleet. `planned` is told the run's parts once its plan is written.
 */
export async function planRun(
  store: ObjectStore,
  req: PlanRequest,
  planned?: (input: PlannedInput) => void,
): Promise<RunPlan> {
  const index = await readIndex(store);
  const listed = (await listWindowInput(store, parseWindow(req.window, req.windowHours))).parts;
  const parts = listed.map((p) => p.key);
  const byPool = new Map<Pool, PlannedDevice[]>();
  for (const device of Object.keys(index.devices).sort()) {
    const entry = index.devices[device];
    if (!entry) continue;
    const pool = req.pool ?? entry.pool;
    const list = byPool.get(pool) ?? [];
    list.push({ device, version: entry.version, sha256: entry.sha256 });
    byPool.set(pool, list);
  }
  const runId = req.runId ?? randomUUID();
  const shards: ShardRef[] = [];
  const writes: Promise<void>[] = [];
  for (const pool of [...byPool.keys()].sort()) {
    const devices = byPool.get(pool) ?? [];
    const size = shardSizeFor(devices.length, req.shardSize, req.maxParallelShards);
    for (let i = 0; i < devices.length; i += size) {
      const shard = shards.length;
      const slice = devices.slice(i, i + size);
      const file: ShardPlanFile = {
        schema: 'fleetscore.shard-plan/v1',
        window: req.window,
        shard,
        pool,
        runId,
        parts,
        layout: req.aggregatesLayout ?? 'any',
        ...(req.predictionsFormat === undefined ? {} : { predictionsFormat: req.predictionsFormat }),
        devices: slice,
      };
      shards.push({ shard, pool, devices: slice.length });
      writes.push(store.put(keys.shardPlan(req.window, runId, shard), JSON.stringify(file)));
    }
  }
  const input: RunInputFile = {
    schema: 'fleetscore.run-input/v1',
    window: req.window,
    runId,
    parts: listed.map(inputPart),
  };
  writes.push(store.put(keys.runInput(req.window, runId), JSON.stringify(input)));
  await Promise.all(writes);
  planned?.({ runId, parts });
  const devices = shards.reduce((n, s) => n + s.devices, 0);
  return { window: req.window, runId, devices, parts: parts.length, shards };
}

/**
 * Devices per shard for a pool of `devices`: `shardSize`, or, when the pool would make fewer than `maxParallel`
 * shards of it, the size that makes `maxParallel` shards, but not under {@link MIN_SPLIT_SHARD} (nor over
 * `shardSize`). One shard runs on one shard thread of one worker: a fleet of 1,000 devices in one shard of 1,000
 * left a two-thread worker's second thread idle (and every other worker of the pool); in four shards of 250 it
 * does not.
 */
export function shardSizeFor(devices: number, shardSize: number, maxParallel: number | undefined): number {
  if (maxParallel === undefined) return shardSize;
  return Math.min(shardSize, Math.max(MIN_SPLIT_SHARD, Math.ceil(devices / maxParallel)));
}
