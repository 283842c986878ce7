/**
 * Following a run while it runs: find it by workflow id or by window (the `FleetscoreWindow` search attribute),
 * then poll its `progress` query until it closes. Gathering only; the CLI renders.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { SCORING_WORKFLOW, SEARCH_ATTRIBUTES, type RunProgress } from '../shared/names';
import { progressQuery } from '../shared/queries';
import type { RunSummary } from '../shared/run-types';
import { messageOf } from '../shared/errors';
import { appendTo } from '../shared/multimap';

/** Which run to watch. */
export type RunSelector = { workflowId: string } | { window: string };

/** One look at a run. */
export interface RunSnapshot {
  workflowId: string;
  runId: string;
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, … */
  status: string;
  /** The progress query's answer; undefined when no worker answered it (e.g. the cpu pool is down). */
  progress?: RunProgress;
  /** Why the progress is missing. */
  progressError?: string;
}

/** The end of a watched run. */
export interface WatchResult extends RunSnapshot {
  summary?: RunSummary;
  failure?: string;
}

/**
 * The workflow id of the run to watch: the id given, or for a window the open run of that window (else the most
 * recently started one).
 */
export async function findRun(client: Client, selector: RunSelector): Promise<string> {
  if ('workflowId' in selector) return selector.workflowId;
  const base = `WorkflowType = '${SCORING_WORKFLOW}' AND ${SEARCH_ATTRIBUTES.window.name} = '${selector.window}'`;
  for (const query of [`${base} AND ExecutionStatus = 'Running'`, base]) {
    let newest: { workflowId: string; startTime: Date } | undefined;
    for await (const info of client.workflow.list({ query })) {
      if (!newest || info.startTime > newest.startTime) newest = info;
    }
    if (newest) return newest.workflowId;
  }
  throw new Error(`no scoring run of window ${selector.window} is known to Temporal`);
}

/** Describes the run and, while it runs, asks it for its progress. */
export async function snapshot(handle: WorkflowHandle): Promise<RunSnapshot> {
  const description = await handle.describe();
  const base = { workflowId: description.workflowId, runId: description.runId, status: description.status.name };
  try {
    // Closed runs answer queries too (from their last state) while a worker of the cpu pool is up.
    return { ...base, progress: await handle.query(progressQuery) };
  } catch (err) {
    return { ...base, progressError: messageOf(err) };
  }
}

/**
 * Polls the run every `intervalMs`, calling `onSnapshot` each time, until it is no longer running; then returns
 * its result or failure.
 */
export async function watchRun(
  client: Client,
  workflowId: string,
  onSnapshot: (s: RunSnapshot) => void,
  intervalMs = 1_000,
): Promise<WatchResult> {
  const handle = client.workflow.getHandle(workflowId);
  for (;;) {
    const s = await snapshot(handle);
    onSnapshot(s);
    if (s.status !== 'RUNNING') {
      try {
        return { ...s, summary: (await handle.result()) as RunSummary };
      } catch (err) {
        const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
        return { ...s, failure: messageOf(cause) };
      }
    }
    await sleep(intervalMs);
  }
}

/** Devices with an outcome so far (scored, no data, failed). */
export function devicesDone(p: RunProgress): number {
  return p.devicesScored + p.devicesNoData + p.devicesFailed;
}

/** The status text after the progress bar: phase, counts, and the shards waiting for a pool. */
export function progressStatus(p: RunProgress): string {
  if (p.input) {
    return `waiting for input until ${p.input.until}: ${p.input.missing.length} folder(s) empty, e.g. ${p.input.missing[0] ?? ''}`;
  }
  const parts = [
    p.phase,
    `shards ${p.shardsDone}/${p.shardsTotal}`,
    `${p.devicesFailed} failed`,
    `${p.anomalies} anomalies`,
  ];
  const waiting = p.waiting ?? [];
  if (waiting.length) {
    const byPool = new Map<string, number[]>();
    for (const w of waiting) appendTo(byPool, w.pool, w.shard);
    for (const [pool, shards] of byPool) parts.push(`waiting for ${pool}: shard ${shards.join(', ')}`);
  }
  return parts.join(' · ');
}
