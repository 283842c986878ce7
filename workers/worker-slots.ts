/**
 * How many shards a pool worker holds and scores at once. A shard is CPU-bound inference, so the cpu pool scores
 * on one thread per CPU it may use: the cores it is pinned to, capped by a container's CPU quota (Kubernetes
 * `resources.limits.cpu`), which Node's availableParallelism() does not see. The gpu pool gets a fixed, explicit
 * count: the SDK's resource-based tuner sees CPU and memory, never the GPU.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { WorkerOptions } from '@temporalio/worker';
import type { Pool } from '../lib/shared/names';

/** Shards a gpu worker holds at once by default: one on the GPU while the other reads Arrow or writes results. */
export const GPU_SHARDS = 2;
/** Shards a cpu worker holds per shard thread by default: one scoring while the other waits its turn (below). */
const SHARDS_PER_THREAD = 2;

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

/** The machine a worker sizes itself for: its cores and its cgroup CPU quota. */
export interface Machine {
  cores: number;
  quota: number | undefined;
}

/** How a pool worker runs its shards, and the numbers that decided it. */
export interface ShardSizing {
  /** Activity slots: shards the worker holds at once. */
  slots: number;
  /** Threads that score them (0: the worker's event loop). */
  threads: number;
  /** Shards scored at the same moment (the threads, else the slots): the backlog one more worker takes. */
  scoring: number;
  reason: string;
}

/**
 * Sizes a pool worker. The cpu pool scores on one thread per CPU it may use (the cores, capped by a container's
 * CPU quota) and holds two shards per thread, so a thread scores one while the other waits for its turn, writes its
 * results or is being fetched from Temporal: with one per thread, a warm run of 10,000 SVMs left the threads idle
 * about 40 % of the time (1.8 to 2.3 s against 1.5 to 1.6 s). The two shards of a thread prepare their models in
 * turns (score-shard.ts), which keeps compile-bound cold runs as fast as with one per thread (docs/benchmarks.md).
 * The gpu pool holds a fixed 2 on the event loop: the SDK's resource-based tuner sees CPU and memory, never the
 * GPU. `shards` (`--shards`) and `threads` (`--shard-threads`) override.
 */
export function shardSizing(
  pool: Pool,
  given: { shards?: number; threads?: number } = {},
  machine: Machine = { cores: availableParallelism(), quota: cgroupCpuQuota() },
): ShardSizing {
  const quota = machine.quota === undefined ? undefined : Math.max(1, Math.ceil(machine.quota));
  const cpus = Math.max(1, quota === undefined ? machine.cores : Math.min(machine.cores, quota));
  const cpuText = `${machine.cores} cores, ${machine.quota === undefined ? 'no CPU quota' : `CPU quota ${machine.quota}`}`;
  const threads = given.threads ?? (pool === 'cpu' ? Math.min(cpus, given.shards ?? cpus) : 0);
  const sized = (slots: number, reason: string): ShardSizing => ({
    slots,
    threads,
    scoring: threads > 0 ? Math.min(threads, slots) : slots,
    reason,
  });
  if (given.shards !== undefined) return sized(given.shards, `${given.shards} (--shards)`);
  if (pool === 'gpu') return sized(GPU_SHARDS, `${GPU_SHARDS} (gpu pool: fixed, the tuner does not see the GPU)`);
  if (threads > 0) {
    const why = given.threads === undefined ? `one thread per CPU: ${cpuText}` : '--shard-threads';
    return sized(SHARDS_PER_THREAD * threads, `${SHARDS_PER_THREAD * threads} (two per shard thread, ${why})`);
  }
  return sized(cpus, `${cpus} (one per CPU: ${cpuText})`);
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
