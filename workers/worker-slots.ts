/**
 * How many shards a pool worker runs at once. A shard is CPU-bound inference (one onnxruntime thread per
 * session), so the cpu pool runs one shard per CPU it may use: the cores it is pinned to, capped by a container's
 * CPU quota (Kubernetes `resources.limits.cpu`), which Node's availableParallelism() does not see. The gpu pool
 * gets a fixed, explicit count: the SDK's resource-based tuner sees CPU and memory, never the GPU.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { WorkerOptions } from '@temporalio/worker';
import type { Pool } from '../lib/shared/names';

/** Shards a gpu worker runs at once by default: one on the GPU while the other reads Arrow or writes results. */
export const GPU_SHARDS = 2;

/** How slots are handed out: fixed counts (default) or the SDK's resource-based tuner (cpu pool only). */
export type TunerMode = 'fixed' | 'resource-based';

/** The CPU quota of this process's cgroup in CPUs (e.g. 2.5), or undefined when unlimited or unknown. */
export function cgroupCpuQuota(read: (path: string) => string = (p) => readFileSync(p, 'utf8')): number | undefined {
  const attempt = (f: () => number | undefined) => {
    try {
      return f();
    } catch {
      // Not on Linux, or not this cgroup version: no quota known.
      return undefined;
    }
  };
  // cgroup v2: "max 100000" or "<quota> <period>".
  const v2 = attempt(() => {
    const [quota, period] = read('/sys/fs/cgroup/cpu.max').trim().split(/\s+/);
    return quota === 'max' ? undefined : Number(quota) / Number(period);
  });
  if (v2 !== undefined) return Number.isFinite(v2) && v2 > 0 ? v2 : undefined;
  // cgroup v1: quota -1 means unlimited.
  const v1 = attempt(() => {
    const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
    const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us'));
    return quota > 0 && period > 0 ? quota / period : undefined;
  });
  return v1 !== undefined && Number.isFinite(v1) ? v1 : undefined;
}

/** The shards a pool worker runs at once when none is given, and the numbers that decided it. */
export function defaultShardSlots(
  pool: Pool,
  machine: { cores: number; quota: number | undefined } = { cores: availableParallelism(), quota: cgroupCpuQuota() },
): { slots: number; reason: string } {
  if (pool === 'gpu') {
    return { slots: GPU_SHARDS, reason: `${GPU_SHARDS} (gpu pool: fixed, the tuner does not see the GPU)` };
  }
  const quota = machine.quota === undefined ? undefined : Math.max(1, Math.ceil(machine.quota));
  const slots = Math.max(1, quota === undefined ? machine.cores : Math.min(machine.cores, quota));
  const quotaText = machine.quota === undefined ? 'no CPU quota' : `CPU quota ${machine.quota}`;
  return { slots, reason: `${slots} (one per CPU: ${machine.cores} cores, ${quotaText})` };
}

/**
 * The worker options that size a pool worker's slots. `fixed`: `shards` activity slots. `resource-based`
 * (cpu pool only): the SDK's tuner hands out activity slots while CPU and memory stay under 80 %, between 1 and
 * 2 × `shards`, slowly (one per second), because a shard's CPU use shows only a moment after it starts.
 */
export function slotOptions(
  pool: Pool,
  mode: TunerMode,
  shards: number,
): Pick<WorkerOptions, 'maxConcurrentActivityTaskExecutions' | 'tuner'> {
  if (mode === 'fixed' || pool === 'gpu') return { maxConcurrentActivityTaskExecutions: shards };
  return {
    tuner: {
      tunerOptions: { targetCpuUsage: 0.8, targetMemoryUsage: 0.8 },
      activityTaskSlotOptions: { minimumSlots: 1, maximumSlots: 2 * shards, rampThrottle: '1s' },
      workflowTaskSlotOptions: { minimumSlots: 2, maximumSlots: 100 },
      localActivityTaskSlotOptions: { minimumSlots: 1, maximumSlots: 10 },
    },
  };
}
