/**
 * One run of a window without servers: the real planRun, every scoreShard and commitRun against a store, in the
 * order the workflow calls them. For tests of what a run commits and logs.
 */
import { AggregatesCache } from '../../lib/arrow/aggregates-cache';
import { keys } from '../../lib/shared/keys';
import { ModelSessionCache } from '../../lib/models/model-sessions';
import type { WorkerLogger } from '../../lib/scoring/attempt-log';
import { commitRun } from '../../lib/scoring/commit-run';
import { readManifest, type Manifest } from '../../lib/scoring/manifest';
import { planRun } from '../../lib/scoring/plan-run';
import type { CommitRequest, CommitResult, PlanRequest } from '../../lib/shared/run-types';
import { scoreShard } from '../../lib/scoring/score-shard';
import type { ObjectStore } from '../../lib/store/object-store';

/** A logger that drops everything. */
export const quiet: WorkerLogger = { info: () => undefined, warn: () => undefined };

/**
 * How a test run plans: shard size, aggregates layout, predictions format, and whether devices go to the pools
 * their model.json names (`perModelPools`) instead of all to cpu.
 */
export type RunOptions = Pick<PlanRequest, 'aggregatesLayout' | 'predictionsFormat'> & {
  shardSize?: number;
  perModelPools?: boolean;
};

/** A planned and scored run, ready to commit. */
export interface ScoredRun {
  request: Omit<CommitRequest, 'runStartedAt'>;
}

/** Plans and scores every shard of `window` (the run's files are written, the window not yet committed). */
export async function planAndScore(
  store: ObjectStore,
  window: string,
  { shardSize = 500, aggregatesLayout, predictionsFormat, perModelPools = false }: RunOptions = {},
): Promise<ScoredRun & { beats: number }> {
  // Every device on the cpu pool unless `perModelPools`: then shards per pool, as model.json says (one worker here).
  const pool = perModelPools ? undefined : 'cpu';
  const plan = await planRun(store, { store: store.uri, window, shardSize, pool, aggregatesLayout, predictionsFormat });
  const deps = { store, sessions: new ModelSessionCache(), aggregates: new AggregatesCache() };
  let beats = 0;
  try {
    for (const ref of plan.shards) {
      const ctx = {
        attempt: 1,
        taskQueue: 'test',
        workflowId: 'wf',
        workflowRunId: plan.runId,
        heartbeat: () => void beats++,
        log: quiet,
      };
      await scoreShard(deps, { store: store.uri, window, windowHours: 1, runId: plan.runId, shard: ref.shard }, ctx);
    }
  } finally {
    await deps.sessions.close();
  }
  const { runId, shards } = plan;
  return {
    request: { store: store.uri, window, windowHours: 1, workflowId: 'wf', runId, shards, failedShards: [] },
    beats,
  };
}

/** Commits a scored run as if it had started at `runStartedAt`. */
export function commit(store: ObjectStore, run: ScoredRun, runStartedAt = new Date()): Promise<CommitResult> {
  return commitRun(store, { ...run.request, runStartedAt: runStartedAt.toISOString() }, { logger: quiet });
}

/** Plans, scores every shard and commits `window`; returns the manifest, every attempt log's text and heartbeats. */
export async function runWindow(
  store: ObjectStore,
  window: string,
  options: RunOptions = {},
): Promise<{ manifest: Manifest; logs: string; beats: number }> {
  const run = await planAndScore(store, window, options);
  await commit(store, run);
  let logs = '';
  for (const key of await store.list(keys.logsPrefix(window))) logs += Buffer.from(await store.get(key)).toString();
  const manifest = await readManifest(store, window);
  if (!manifest) throw new Error(`window ${window} was not committed`);
  return { manifest, logs, beats: run.beats };
}
